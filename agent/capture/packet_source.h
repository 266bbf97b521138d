// Where packets come from: a capture file now, a live interface later (same interface),
// fakes in tests. A source is owned and used by one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

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
};

class PacketSource {
 public:
  virtual ~PacketSource() = default;

  // Fills *packet and returns true, or returns false at the end of a file. A broken
  // capture (truncated record, I/O error) returns an error naming the source; packets
  // already returned stay valid for the caller's accounting.
  [[nodiscard]] virtual Result<bool> Next(RawPacket* packet) = 0;
  // The pcap link type (DLT_*) of every packet this source returns.
  virtual int link_type() const = 0;
  // The interface name, or for files the file name: this is the flow's `interface`.
  virtual const std::string& name() const = 0;
  virtual CaptureCounters counters() const = 0;
};

// Opens a pcap or pcapng file. Fails with a one-line message for a missing or unreadable
// file ("cannot open capture 'x': No such file or directory"), or a file that is not a
// capture ("'x' is not a pcap or pcapng capture (<libpcap's message>)").
Result<std::unique_ptr<PacketSource>> OpenCaptureFile(const std::string& path);

}  // namespace flowgate::capture
