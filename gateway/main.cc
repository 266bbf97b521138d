// flowgate-gateway: receive agents' flow events, store them, serve them.
#include <csignal>
#include <cstdio>
#include <ctime>

#include "core/gateway_app.h"
#include "flowgate/common/flags.h"
#include "flowgate/common/log.h"

int main(int argc, char** argv) {
  using namespace flowgate;
  gateway::GatewayOptions options;
  options.json_sockets.clear();
  FlagParser flags(
      "flowgate-gateway",
      "flowgate-gateway --data-dir DIR [--agents-listen tcp://HOST:PORT] [--json-socket PATH] "
      "[options]",
      "Receives flow events from flowgate agents over ZeroMQ, stores them in RocksDB under\n"
      "--data-dir, and streams the merged fleet stream in netifyd's JSON socket format:\n"
      "  nc -U /run/flowgate/flowgate.sock | jq -c 'select(.type==\"flow\")'\n"
      "Stops cleanly on SIGINT or SIGTERM.");
  flags.AddString("data-dir", "", "DIR", "RocksDB directory (created if missing)",
                  &options.data_dir);
  flags.AddString("agents-listen", "", "ENDPOINT",
                  "ZeroMQ endpoint for agents ('*' as port picks one)", &options.agents_listen);
  flags.AddOption("json-socket", "", "PATH", "Serve the JSON stream on a Unix socket (repeatable)",
                  [&](std::string_view v) {
                    options.json_sockets.emplace_back(v);
                    return Status::Ok();
                  });
  flags.AddOption("json-tcp", "", "HOST:PORT", "Serve the JSON stream on TCP (repeatable)",
                  [&](std::string_view v) {
                    options.json_tcp.emplace_back(v);
                    return Status::Ok();
                  });
  flags.AddOption(
      "json-client-buffer", "", "SIZE",
      "Bytes queued per JSON client before its oldest messages are dropped (default: 4MiB)",
      [&](std::string_view v) -> Status {
        Result<uint64_t> bytes = ParseByteSize(v);
        if (!bytes.ok())
          return Status::InvalidArgument("--json-client-buffer: " + bytes.status().message());
        if (*bytes < 4096)
          return Status::InvalidArgument("--json-client-buffer must be at least 4KiB");
        options.json_client_buffer_bytes = *bytes;
        return Status::Ok();
      });
  flags.AddDuration("status-interval", "Interval of the gateway's agent_status messages",
                    &options.status_interval_ms);
  flags.AddBool("sync-writes", "fsync the store on every batch (survives power loss)",
                &options.sync_writes);
  std::string log_level = "info";
  flags.AddString("log-level", "", "LEVEL", "debug, info, warning or error", &log_level);

  Status parsed = flags.Parse(argc, argv);
  if (flags.help_requested()) {
    std::fputs(flags.Help().c_str(), stdout);
    return 0;
  }
  LogLevel level;
  if (parsed.ok() && !ParseLogLevel(log_level, &level)) {
    parsed = Status::InvalidArgument("--log-level must be debug, info, warning or error");
  }
  if (parsed.ok() && !flags.positional().empty()) {
    parsed = Status::InvalidArgument("unexpected argument '" + flags.positional().front() + "'");
  }
  if (parsed.ok() && options.data_dir.empty()) {
    parsed = Status::InvalidArgument("no data dir given: use --data-dir DIR (see --help)");
  }
  if (parsed.ok() && options.status_interval_ms < 1000) {
    parsed = Status::InvalidArgument("--status-interval must be at least 1s");
  }
  if (!parsed.ok()) {
    std::fprintf(stderr, "flowgate-gateway: %s\n", parsed.message().c_str());
    return 2;
  }
  SetLogLevel(level);

  // Block the stop signals before any thread starts, so that only sigtimedwait below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  Result<std::unique_ptr<gateway::Gateway>> gw = gateway::Gateway::Start(options);
  if (!gw.ok()) {
    std::fprintf(stderr, "flowgate-gateway: %s\n", gw.status().message().c_str());
    return 1;
  }
  Log(LogLevel::kInfo, "gateway", "ready");
  const timespec interval{static_cast<time_t>(options.status_interval_ms / 1000),
                          static_cast<long>(options.status_interval_ms % 1000) * 1'000'000};
  while (true) {
    int signal = sigtimedwait(&stop_signals, nullptr, &interval);
    if (signal == SIGINT || signal == SIGTERM) break;
    (*gw)->PublishStatus();
  }
  Log(LogLevel::kInfo, "gateway", "stopping");
  (*gw)->Stop();
  return 0;
}
