// Where packets come from: a capture file, a live interface, fakes in tests. A source is
// owned and used by one thread; only Interrupt() may be called from another.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "flowgate/common/status.h"

namespace flowgate::capture {

struct RawPacket {
  uint64_t timestamp_us = 0;      // packet time, microseconds since the Unix epoch
  const uint8_t* data = nullptr;  // valid until the next call to Next()
  uint32_t captured_length = 0;
  uint32_t wire_length = 0;  // original frame length; counts as the flow's bytes
};

struct CaptureCounters {
  uint64_t packets = 0;         // delivered by the source
  uint64_t kernel_dropped = 0;  // live capture only (pcap_stats ps_drop + ps_ifdrop)
  uint64_t file_offset = 0;     // files only: bytes of the file read so far
  uint64_t file_bytes = 0;      // files only: its size (0: unknown, e.g. a pipe)
};

struct CaptureOptions {
  // A BPF filter expression (pcap-filter(7)) applied to the capture. Default: none.
  std::string bpf;
  // Live only: put the interface in promiscuous mode. Default: true.
  bool promiscuous = true;
  // Live only: kernel capture buffer, sized for bursts. Default: 16 MiB.
  uint64_t buffer_bytes = 16 << 20;
  // Live only: bytes kept of each frame. Default: 65535 (whole frames).
  int snaplen = 65535;
  // Live only: longest wait in Next() before it returns "no packet now". Default: 100 ms.
  int poll_ms = 100;
};

class PacketSource {
 public:
  virtual ~PacketSource() = default;

  // Fills *packet and returns true, or returns false at the end of a file (live: when no
  // packet came within the poll time, or after Interrupt()). A broken capture (truncated
  // record, I/O error, an interface gone down) returns an error naming the source; packets
  // already returned stay valid for the caller's accounting.
  [[nodiscard]] virtual Result<bool> Next(RawPacket* packet) = 0;
  // True for an interface: false from Next() then means "nothing now", not "the end".
  virtual bool live() const { return false; }
  // Makes a Next() blocked in another thread return soon. Thread-safe.
  virtual void Interrupt() {}
  // Live only: switches to non-blocking reads, so that the caller can drain what the kernel
  // already holds (Next() returns false once it is empty).
  virtual void SetNonBlocking() {}
  // The pcap link type (DLT_*) of every packet this source returns.
  virtual int link_type() const = 0;
  // The interface name, or for files the file name: this is the flow's `interface`.
  virtual const std::string& name() const = 0;
  virtual CaptureCounters counters() const = 0;
};

// Opens a pcap or pcapng file. Fails with a one-line message for a missing or unreadable
// file ("cannot open capture 'x': No such file or directory"), or a file that is not a
// capture ("'x' is not a pcap or pcapng capture (<libpcap's message>)").
Result<std::unique_ptr<PacketSource>> OpenCaptureFile(const std::string& path,
                                                      const CaptureOptions& options = {});

// Opens interface `name` for live capture (pcap_create/pcap_activate) with `options`. Fails
// with libpcap's message naming the interface (no such device, permission denied, a BPF
// expression that does not compile).
Result<std::unique_ptr<PacketSource>> OpenLiveCapture(const std::string& name,
                                                      const CaptureOptions& options);

// The addresses assigned to interface `name` ("192.0.2.1/24", "2001:db8::1/64"), for the
// local networks of flow orientation. Empty when it has none or does not exist.
std::vector<std::string> InterfaceNetworks(const std::string& name);
// The interface's MAC address as "aa:bb:cc:dd:ee:ff", or empty.
std::string InterfaceMac(const std::string& name);

}  // namespace flowgate::capture
