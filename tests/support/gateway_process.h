// A real flowgate-gateway for a test: started with the given flags (agents on a port of
// its choosing), ready when its log says so, stopped with SIGTERM.
#pragma once

#include <string>
#include <vector>

#include <signal.h>

#include "process.h"

namespace flowgate::testing {

class GatewayProcess {
 public:
  // `args` are flowgate-gateway flags; `--agents-listen tcp://127.0.0.1:*` is added, and
  // `--agents-plaintext` unless `args` hold `--agents-key`.
  explicit GatewayProcess(const std::vector<std::string>& args);

  bool ready() const { return ready_; }
  // The ZeroMQ endpoint agents connect to.
  const std::string& endpoint() const { return endpoint_; }
  // "127.0.0.1:PORT" of each --json-tcp listener, in order.
  const std::vector<std::string>& json_tcp() const { return json_tcp_; }
  pid_t pid() const { return process_.pid(); }
  // Waits (bounded) for a log line containing `needle`.
  bool WaitForLog(const std::string& needle);
  int Stop() { return process_.StopWith(SIGTERM); }
  int Kill() { return process_.StopWith(SIGKILL); }
  std::string log() const { return process_.stderr_text(); }

 private:
  BackgroundProcess process_;
  std::string endpoint_;
  std::vector<std::string> json_tcp_;
  bool ready_ = false;
};

}  // namespace flowgate::testing
