#include "gateway_process.h"

#include <signal.h>

#include <algorithm>

namespace flowgate::testing {
namespace {

constexpr std::chrono::seconds kStartTimeout(30);

std::vector<std::string> GatewayArgv(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {BinaryPath("flowgate-gateway"), "--agents-listen",
                                   "tcp://127.0.0.1:*"};
  argv.insert(argv.end(), args.begin(), args.end());
  // Test agents speak plain text unless the test passes keys (transport_security_test).
  if (std::find(args.begin(), args.end(), "--agents-key") == args.end()) {
    argv.push_back("--agents-plaintext");
  }
  return argv;
}

}  // namespace

GatewayProcess::GatewayProcess(const std::vector<std::string>& args) : process_(GatewayArgv(args)) {
  // The gateway logs each listener before "ready", in a fixed order.
  std::optional<std::string> line =
      process_.WaitForStderrLine("agents listening on", kStartTimeout);
  if (!line) return;
  endpoint_ = line->substr(line->find("tcp://"));
  size_t tcp_listeners = 0;
  for (const std::string& arg : args) tcp_listeners += arg == "--json-tcp";
  for (size_t i = 0; i < tcp_listeners; ++i) {
    std::optional<std::string> tcp =
        process_.WaitForStderrLine("JSON TCP listener at ", kStartTimeout);
    if (!tcp) return;
    json_tcp_.push_back(tcp->substr(tcp->find(" at ") + 4));
  }
  ready_ = process_.WaitForStderrLine("ready", kStartTimeout).has_value();
}

bool GatewayProcess::WaitForLog(const std::string& needle) {
  if (process_.stderr_text().find(needle) != std::string::npos) return true;
  return process_.WaitForStderrLine(needle, kStartTimeout).has_value();
}

}  // namespace flowgate::testing
