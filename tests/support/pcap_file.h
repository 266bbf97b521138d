// Classic pcap files (microsecond timestamps, host byte order, Ethernet) read and written
// record by record, for tests and benchmarks that count, retime or replay captures.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace flowgate::testing {

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
