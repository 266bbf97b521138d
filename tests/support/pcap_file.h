// Classic pcap files (microsecond timestamps, host byte order, Ethernet) read and written
// record by record, for tests and benchmarks that count, retime or replay captures.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace flowgate::testing {

constexpr uint32_t kPcapMagicMicroseconds = 0xa1b2c3d4;
constexpr uint32_t kLinkTypeEthernet = 1;

struct PcapRecordHeader {
  uint32_t ts_sec;
  uint32_t ts_usec;
  uint32_t captured_length;
  uint32_t wire_length;
};
static_assert(sizeof(PcapRecordHeader) == 16);

// The 24-byte file header of a microsecond Ethernet capture.
std::string PcapFileHeader();

struct PcapRecord {
  uint64_t time_us;
  std::string bytes;  // the record header and the frame
};

// The records of a classic Ethernet pcap file, or nothing for any other file (pcapng,
// another link type, unreadable). A truncated last record is left out.
std::optional<std::vector<PcapRecord>> ReadEthernetPcap(const std::string& path);

// Sets the timestamp in the record header at `record`.
void SetRecordTime(char* record, uint64_t time_us);

}  // namespace flowgate::testing
