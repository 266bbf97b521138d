// Writes events as the netifyd JSON stream to a file descriptor (stdout or a file).
#pragma once

#include <string>

#include "export/event_sink.h"

namespace flowgate::agent {

class JsonStreamSink final : public EventSink {
 public:
  // "-" means stdout. Fails with a message naming the path when it cannot be opened.
  static Result<std::unique_ptr<JsonStreamSink>> Open(const std::string& path);
  ~JsonStreamSink() override;

  void Emit(const v1::Event& event) override;
  Status Flush(uint64_t timeout_ms) override;

 private:
  JsonStreamSink(int fd, bool owned, std::string path)
      : fd_(fd), owned_(owned), path_(std::move(path)) {}
  int fd_;
  bool owned_;
  std::string path_;
  std::string buffer_;
  Status failure_;  // the first write error; reported by Flush
};

}  // namespace flowgate::agent
