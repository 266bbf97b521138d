#include "pcap_file.h"

#include <cstring>

#include "flowgate/common/text_file.h"
#include "pcap_format.h"

namespace flowgate::testing {

using trafficgen::PcapRecordHeader;

std::string PcapFileHeader() {
  const trafficgen::PcapGlobalHeader header = trafficgen::EthernetPcapHeader();
  return std::string(reinterpret_cast<const char*>(&header), sizeof header);
}

std::optional<std::vector<PcapRecord>> ReadEthernetPcap(const std::string& path) {
  Result<std::string> file = ReadTextFile(path, "capture");  // binary-safe
  trafficgen::PcapGlobalHeader file_header;
  if (!file.ok() || file->size() < sizeof file_header) return std::nullopt;
  const std::string& data = *file;
  std::memcpy(&file_header, data.data(), sizeof file_header);
  if (file_header.magic != trafficgen::kPcapMagicMicroseconds ||
      file_header.linktype != trafficgen::kLinkTypeEthernet) {
    return std::nullopt;
  }
  std::vector<PcapRecord> records;
  size_t offset = sizeof file_header;
  while (offset + sizeof(PcapRecordHeader) <= data.size()) {
    PcapRecordHeader header;
    std::memcpy(&header, data.data() + offset, sizeof header);
    const size_t size = sizeof header + header.captured_length;
    if (offset + size > data.size()) break;
    records.push_back(
        {uint64_t{header.ts_sec} * 1'000'000 + header.ts_usec, data.substr(offset, size)});
    offset += size;
  }
  return records;
}

void SetRecordTime(char* record, uint64_t time_us) {
  PcapRecordHeader header;
  std::memcpy(&header, record, sizeof header);
  header.ts_sec = static_cast<uint32_t>(time_us / 1'000'000);
  header.ts_usec = static_cast<uint32_t>(time_us % 1'000'000);
  std::memcpy(record, &header, sizeof header);
}

}  // namespace flowgate::testing
