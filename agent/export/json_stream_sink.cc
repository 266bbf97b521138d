#include "export/json_stream_sink.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "flowgate/common/netifyd_json.h"

namespace flowgate::agent {
namespace {
// Frames are gathered and written in chunks of about this size: one write per event would
// dominate the cost of a busy stream.
constexpr size_t kWriteChunk = 64 * 1024;
}  // namespace

Result<std::unique_ptr<JsonStreamSink>> JsonStreamSink::Open(const std::string& path) {
  if (path == "-")
    return std::unique_ptr<JsonStreamSink>(new JsonStreamSink(STDOUT_FILENO, false, "stdout"));
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return Status::IoError("cannot write JSON output '" + path + "': " + std::strerror(errno));
  }
  return std::unique_ptr<JsonStreamSink>(new JsonStreamSink(fd, true, path));
}

JsonStreamSink::~JsonStreamSink() {
  Flush(0).IgnoreError();
  if (owned_) ::close(fd_);
}

void JsonStreamSink::Emit(const v1::Event& event) {
  buffer_ += EncodeNetifydFrame(event, nullptr);
  if (buffer_.size() >= kWriteChunk) Flush(0).IgnoreError();
}

Status JsonStreamSink::Flush(uint64_t /*timeout_ms*/) {
  size_t written = 0;
  while (failure_.ok() && written < buffer_.size()) {
    ssize_t n = ::write(fd_, buffer_.data() + written, buffer_.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      failure_ = Status::IoError("writing JSON output to " + path_ + ": " + std::strerror(errno));
      break;
    }
    written += static_cast<size_t>(n);
  }
  buffer_.clear();
  return failure_;
}

}  // namespace flowgate::agent
