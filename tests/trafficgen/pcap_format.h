// The classic libpcap file format as flowgate writes and reads it in its tools, tests and
// benchmarks: magic a1b2c3d4 (microsecond timestamps) in the host's byte order, version
// 2.4, LINKTYPE_ETHERNET; what pcap_dump() writes and every reader (tcpreplay, nDPI)
// takes. Header-only, so that the unit-test-only build's support library can use it
// without the traffic generator.
#pragma once

#include <cstdint>

namespace flowgate::trafficgen {

constexpr uint32_t kPcapMagicMicroseconds = 0xa1b2c3d4;
constexpr uint32_t kLinkTypeEthernet = 1;
constexpr uint32_t kPcapSnapLength = 262144;  // what tcpdump uses by default

struct PcapGlobalHeader {
  uint32_t magic;
  uint16_t version_major, version_minor;
  int32_t thiszone;
  uint32_t sigfigs, snaplen, linktype;
};
static_assert(sizeof(PcapGlobalHeader) == 24);

struct PcapRecordHeader {
  uint32_t ts_sec;
  uint32_t ts_usec;
  uint32_t captured_length;
  uint32_t wire_length;
};
static_assert(sizeof(PcapRecordHeader) == 16);

// The file header of an Ethernet capture with microsecond timestamps.
constexpr PcapGlobalHeader EthernetPcapHeader() {
  return {kPcapMagicMicroseconds, 2, 4, 0, 0, kPcapSnapLength, kLinkTypeEthernet};
}

// A record header for a frame captured whole at `time_us`.
constexpr PcapRecordHeader PcapRecordAt(uint64_t time_us, uint32_t frame_length) {
  return {static_cast<uint32_t>(time_us / 1'000'000), static_cast<uint32_t>(time_us % 1'000'000),
          frame_length, frame_length};
}

}  // namespace flowgate::trafficgen
