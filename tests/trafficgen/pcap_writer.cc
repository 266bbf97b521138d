#include "pcap_writer.h"

#include <cerrno>
#include <cstring>

namespace flowgate::trafficgen {
namespace {

constexpr uint32_t kPcapMagicMicroseconds = 0xa1b2c3d4;
constexpr uint32_t kLinkTypeEthernet = 1;
constexpr uint32_t kSnapLength = 262144;  // what tcpdump uses by default

struct FileHeader {
  uint32_t magic;
  uint16_t version_major, version_minor;
  int32_t thiszone;
  uint32_t sigfigs, snaplen, linktype;
};
struct RecordHeader {
  uint32_t ts_sec, ts_usec, incl_len, orig_len;
};

}  // namespace

Result<PcapWriter> PcapWriter::Open(const std::string& path) {
  FilePtr file(path == "-" ? stdout : std::fopen(path.c_str(), "wb"));
  if (!file) return Status::IoError("cannot write " + path + ": " + std::strerror(errno));
  PcapWriter writer(std::move(file), path);
  const FileHeader header{kPcapMagicMicroseconds, 2, 4, 0, 0, kSnapLength, kLinkTypeEthernet};
  if (Status s = writer.WriteRaw(&header, sizeof(header)); !s.ok()) return s;
  return writer;
}

Status PcapWriter::Write(uint64_t time_us, std::span<const uint8_t> frame) {
  const RecordHeader record{
      static_cast<uint32_t>(time_us / 1000000), static_cast<uint32_t>(time_us % 1000000),
      static_cast<uint32_t>(frame.size()), static_cast<uint32_t>(frame.size())};
  if (Status s = WriteRaw(&record, sizeof(record)); !s.ok()) return s;
  return WriteRaw(frame.data(), frame.size());
}

Status PcapWriter::Close() {
  if (!file_) return Status::Ok();
  const bool flushed = std::fflush(file_.get()) == 0 && !std::ferror(file_.get());
  const int saved_errno = errno;
  std::FILE* raw = file_.release();
  const bool closed = raw == stdout || std::fclose(raw) == 0;
  if (!flushed || !closed) {
    return Status::IoError("cannot write " + path_ + ": " +
                           std::strerror(flushed ? errno : saved_errno));
  }
  return Status::Ok();
}

Status PcapWriter::WriteRaw(const void* data, size_t size) {
  if (std::fwrite(data, 1, size, file_.get()) != size) {
    return Status::IoError("cannot write " + path_ + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace flowgate::trafficgen
