// The RAII owner of a pcap_t, and the one place libpcap's error conventions become Status.
// Private to capture/.
#pragma once

#include <pcap/pcap.h>

#include <memory>
#include <string>

#include "capture/packet_source.h"

namespace flowgate::capture {

struct PcapCloser {
  void operator()(pcap_t* handle) const { pcap_close(handle); }
};
using PcapHandle = std::unique_ptr<pcap_t, PcapCloser>;

// Fills *packet from one record libpcap returned. A hostile file can carry times before
// the epoch, which the unsigned field cannot hold; they become 0 rather than a wrapped date.
inline void FillRawPacket(const pcap_pkthdr& header, const u_char* data, RawPacket* packet) {
  const auto seconds = header.ts.tv_sec;
  const auto microseconds = header.ts.tv_usec;
  packet->timestamp_us =
      seconds < 0 || microseconds < 0
          ? 0
          : static_cast<uint64_t>(seconds) * 1'000'000 + static_cast<uint64_t>(microseconds);
  packet->data = data;
  packet->captured_length = header.caplen;
  packet->wire_length = header.len;
}

// Reads the next record with pcap_next_ex. On a packet (1) fills *packet and counts it in
// *counters; any other code is returned for the caller to give it its own meaning (a live
// capture's timeout, a file's end, an interface gone).
inline int NextRecord(pcap_t* handle, RawPacket* packet, CaptureCounters* counters) {
  pcap_pkthdr* header = nullptr;
  const u_char* data = nullptr;
  const int rc = pcap_next_ex(handle, &header, &data);
  if (rc == 1) {
    FillRawPacket(*header, data, packet);
    ++counters->packets;
  }
  return rc;
}

// Compiles and installs `expression` on `handle`; `what` names the capture in errors.
Status ApplyBpf(pcap_t* handle, const std::string& expression, const std::string& what);

}  // namespace flowgate::capture
