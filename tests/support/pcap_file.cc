#include "pcap_file.h"

#include <cstring>

#include "flowgate/common/text_file.h"

namespace flowgate::testing {

std::string PcapFileHeader() {
  const uint32_t words[] = {
      kPcapMagicMicroseconds, 0x00040002u /* version 2.4 */, 0, 0, 262144 /* snaplen */,
      kLinkTypeEthernet};
  return std::string(reinterpret_cast<const char*>(words), sizeof words);
}

std::optional<std::vector<PcapRecord>> ReadEthernetPcap(const std::string& path) {
  Result<std::string> file = ReadTextFile(path, "capture");  // binary-safe
  if (!file.ok() || file->size() < 24) return std::nullopt;
  const std::string& data = *file;
  uint32_t magic, link_type;
  std::memcpy(&magic, data.data(), 4);
  std::memcpy(&link_type, data.data() + 20, 4);
  if (magic != kPcapMagicMicroseconds || link_type != kLinkTypeEthernet) return std::nullopt;
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
