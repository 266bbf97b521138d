// PacketSource over a pcap or pcapng file, read with libpcap.
#include <pcap/pcap.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "capture/pcap_handle.h"

namespace flowgate::capture {

Status ApplyBpf(pcap_t* handle, const std::string& expression, const std::string& what) {
  if (expression.empty()) return Status::Ok();
  bpf_program program{};
  if (pcap_compile(handle, &program, expression.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
    return Status::InvalidArgument("bad --bpf expression '" + expression + "' for " + what + ": " +
                                   pcap_geterr(handle));
  }
  const int rc = pcap_setfilter(handle, &program);
  pcap_freecode(&program);
  if (rc != 0)
    return Status::IoError("cannot set BPF filter on " + what + ": " + pcap_geterr(handle));
  return Status::Ok();
}

namespace {

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

class PcapFileSource final : public PacketSource {
 public:
  PcapFileSource(PcapHandle handle, std::string path, uint64_t file_bytes)
      : handle_(std::move(handle)),
        path_(std::move(path)),
        name_(std::filesystem::path(path_).filename().string()),
        link_type_(pcap_datalink(handle_.get())) {
    counters_.file_bytes = file_bytes;
  }

  Result<bool> Next(RawPacket* packet) override {
    // libpcap's state after a read error is not specified: keep reporting the first error.
    if (!broken_.ok()) return broken_;
    const int rc = NextRecord(handle_.get(), packet, &counters_);
    if (rc == 1) return true;
    if (rc == PCAP_ERROR_BREAK) return false;  // end of file
    if (rc == 0) {
      // Only live captures time out; a file never should.
      broken_ = Status::Internal("capture '" + path_ + "' returned no packet and no error");
    } else {
      broken_ = Status::Corruption("capture '" + path_ + "' is broken after " +
                                   std::to_string(counters_.packets) +
                                   " packets: " + pcap_geterr(handle_.get()));
    }
    return broken_;
  }

  int link_type() const override { return link_type_; }
  const std::string& name() const override { return name_; }
  CaptureCounters counters() const override {
    CaptureCounters counters = counters_;
    // Where libpcap's buffered reads have got to: for progress, so a little ahead is fine.
    if (const long at = std::ftell(pcap_file(handle_.get())); at > 0) {
      counters.file_offset = static_cast<uint64_t>(at);
    }
    return counters;
  }

 private:
  PcapHandle handle_;
  const std::string path_;
  const std::string name_;
  const int link_type_;
  CaptureCounters counters_;
  Status broken_;
};

Status CannotOpen(const std::string& path, int error) {
  std::string message = "cannot open capture '" + path + "': " + std::strerror(error);
  if (error == ENOENT || error == ENOTDIR) return Status::NotFound(std::move(message));
  if (error == EISDIR) return Status::InvalidArgument(std::move(message));
  return Status::IoError(std::move(message));
}

}  // namespace

Result<std::unique_ptr<PacketSource>> OpenCaptureFile(const std::string& path,
                                                      const CaptureOptions& options) {
  // The file is opened here rather than by libpcap so that a missing, unreadable or
  // directory path gets an errno message, and libpcap's errors can only mean "not a
  // capture". Checking the opened descriptor also avoids a race with a separate stat().
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (file == nullptr) return CannotOpen(path, errno);
  struct stat info;
  if (fstat(fileno(file.get()), &info) != 0) return CannotOpen(path, errno);
  if (S_ISDIR(info.st_mode)) return CannotOpen(path, EISDIR);

  char errbuf[PCAP_ERRBUF_SIZE] = {};
  // Nanosecond pcapng files are scaled to microseconds by libpcap.
  PcapHandle handle(
      pcap_fopen_offline_with_tstamp_precision(file.get(), PCAP_TSTAMP_PRECISION_MICRO, errbuf));
  if (handle == nullptr) {
    // On failure libpcap leaves the FILE to its caller, which `file` closes.
    return Status::InvalidArgument("'" + path + "' is not a pcap or pcapng capture (" + errbuf +
                                   ")");
  }
  file.release();  // pcap_close() closes it from now on
  FLOWGATE_RETURN_IF_ERROR(ApplyBpf(handle.get(), options.bpf, "'" + path + "'"));
  // A pipe or FIFO has no size: its progress is shown in packets only.
  const uint64_t file_bytes = S_ISREG(info.st_mode) ? static_cast<uint64_t>(info.st_size) : 0;
  return std::unique_ptr<PacketSource>(
      std::make_unique<PcapFileSource>(std::move(handle), path, file_bytes));
}

}  // namespace flowgate::capture
