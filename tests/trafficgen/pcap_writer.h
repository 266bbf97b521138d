// Writes a classic libpcap capture (magic a1b2c3d4, microsecond timestamps,
// LINKTYPE_ETHERNET) in the host's byte order, exactly as pcap_dump() would. Written
// directly instead of through libpcap so that "-" (stdout) needs no special handling and
// the generator has no run-time library dependency.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>

#include "flowgate/common/status.h"

namespace flowgate::trafficgen {

class PcapWriter {
 public:
  // Opens `path` for writing ("-" = standard output) and writes the file header.
  static Result<PcapWriter> Open(const std::string& path);

  Status Write(uint64_t time_us, std::span<const uint8_t> frame);
  // Flushes and closes; reports a failed write (e.g. a full disk) that fwrite() hid.
  Status Close();

 private:
  struct FileCloser {
    void operator()(std::FILE* f) const {
      if (f != stdout) std::fclose(f);
    }
  };
  using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

  PcapWriter(FilePtr file, std::string path) : file_(std::move(file)), path_(std::move(path)) {}
  Status WriteRaw(const void* data, size_t size);

  FilePtr file_;
  std::string path_;
};

}  // namespace flowgate::trafficgen
