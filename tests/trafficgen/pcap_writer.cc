#include "pcap_writer.h"

#include <cerrno>
#include <cstring>

#include "pcap_format.h"

namespace flowgate::trafficgen {

Result<PcapWriter> PcapWriter::Open(const std::string& path) {
  FilePtr file(path == "-" ? stdout : std::fopen(path.c_str(), "wb"));
  if (!file) return Status::IoError("cannot write " + path + ": " + std::strerror(errno));
  PcapWriter writer(std::move(file), path);
  const PcapGlobalHeader header = EthernetPcapHeader();
  if (Status s = writer.WriteRaw(&header, sizeof(header)); !s.ok()) return s;
  return writer;
}

Status PcapWriter::Write(uint64_t time_us, std::span<const uint8_t> frame) {
  const PcapRecordHeader record = PcapRecordAt(time_us, static_cast<uint32_t>(frame.size()));
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
