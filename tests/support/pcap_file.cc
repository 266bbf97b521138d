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
  if (!file.ok() || file->size() < 24) return std::nullopt;
  const std::string& data = *file;
  uint32_t magic, link_type;
  std::memcpy(&magic, data.data(), 4);
  std::memcpy(&link_type, data.data() + 20, 4);
  if (magic != trafficgen::kPcapMagicMicroseconds || link_type != trafficgen::kLinkTypeEthernet) {
    return std::nullopt;
  }
  std::vector<PcapRecord> records;
  size_t offset = 24;
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
