// flowgate-gateway: receive agents' flow events, store them, serve them.
#include <google/protobuf/stubs/logging.h>
#if FLOWGATE_WITH_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif
#include <sys/stat.h>

#include <csignal>
#include <cstdio>
#include <ctime>
#include <optional>
#include <string>

#include "core/gateway_app.h"
#include "flowgate/common/filter.h"
#include "flowgate/common/flags.h"
#include "flowgate/common/log.h"

namespace {
constexpr char kDefaultJsonSocket[] = "/run/flowgate/flowgate.sock";

// protobuf logs a line for each problem it meets while parsing, e.g. every string that is
// not UTF-8 in a hostile agent frame (which the listener refuses and counts anyway): a peer
// could flood the log, so those lines pass through a limiter.
void RateLimitedProtobufLog(google::protobuf::LogLevel level, const char* filename, int line,
                            const std::string& message) {
  static flowgate::LogLimiter limiter("protobuf", "protobuf lines", 5);
  const std::string text = message + " (" + filename + ":" + std::to_string(line) + ")";
  if (level == google::protobuf::LOGLEVEL_FATAL) {
    flowgate::Log(flowgate::LogLevel::kError, "protobuf", text);  // protobuf aborts next
    return;
  }
  limiter.Log(level >= google::protobuf::LOGLEVEL_ERROR ? flowgate::LogLevel::kError
                                                        : flowgate::LogLevel::kWarning,
              text);
}

// Which malloc the gateway runs on, for its startup line: its CPU per event depends on it
// (see FLOWGATE_JEMALLOC in CMakeLists.txt).
std::string AllocatorName() {
#if FLOWGATE_WITH_JEMALLOC
  const char* version = nullptr;
  size_t size = sizeof version;
  if (mallctl("version", &version, &size, nullptr, 0) == 0 && version != nullptr) {
    return std::string("jemalloc ") + version;
  }
  return "jemalloc";
#else
  return "glibc malloc";
#endif
}
}  // namespace

int main(int argc, char** argv) {
  using namespace flowgate;
  google::protobuf::SetLogHandler(&RateLimitedProtobufLog);
  gateway::GatewayOptions options;
  options.json_sockets.clear();
  FlagParser flags(
      "flowgate-gateway",
      "flowgate-gateway {--data-dir DIR | --store clickhouse --clickhouse-url URL...} "
      "[--agents-listen tcp://HOST:PORT] [--json-socket PATH] [options]",
      "Receives flow events from flowgate agents over ZeroMQ, stores them in RocksDB under\n"
      "--data-dir (or in ClickHouse with --store clickhouse), and streams the merged fleet\n"
      "stream in netifyd's JSON socket format:\n"
      "  nc -U /run/flowgate/flowgate.sock | jq -c 'select(.type==\"flow\")'\n"
      "Stops cleanly on SIGINT or SIGTERM; SIGHUP re-reads the agent allow-list.");
  flags.AddString("store", "", "rocksdb|clickhouse",
                  "Where flows are stored: embedded RocksDB in --data-dir, or a ClickHouse server "
                  "or cluster that several gateways share",
                  &options.store);
  flags.AddString("data-dir", "", "DIR", "RocksDB directory (created if missing)",
                  &options.data_dir);
  flags.AddOption("clickhouse-url", "", "URL",
                  "ClickHouse HTTP interface, http://HOST:PORT; with --clickhouse-cluster once "
                  "per shard, in the cluster's shard order (repeatable)",
                  [&options](std::string_view url) {
                    options.clickhouse_urls.emplace_back(url);
                    return Status::Ok();
                  });
  flags.AddString("clickhouse-cluster", "", "NAME",
                  "ClickHouse cluster (in the servers' <remote_servers>) to spread flows over; "
                  "queries read Distributed tables over it",
                  &options.clickhouse_cluster);
  flags.AddString("clickhouse-database", "", "NAME", "ClickHouse database of flowgate's tables",
                  &options.clickhouse_database);
  flags.AddString("agents-listen", "", "ENDPOINT",
                  "ZeroMQ endpoint for agents ('*' as port picks one)", &options.agents_listen);
  flags.AddString("agents-key", "", "FILE",
                  "The gateway's CURVE key pair for agents (flowgate keygen)",
                  &options.agents_key_file);
  flags.AddString("agents-allow", "", "FILE",
                  "Agent public keys allowed to deliver, one per line (re-read on SIGHUP)",
                  &options.agents_allow_file);
  flags.AddBool("agents-plaintext", "Accept agents unencrypted and unauthenticated",
                &options.agents_plaintext);
  uint64_t offline_after = options.agent_offline_after;
  flags.AddUint("agent-offline-after", "N",
                "List an agent offline after N status intervals without a batch (default: 3)",
                &offline_after, 1, 1000);
  // --json-filter applies to the listener named just before it.
  std::string last_listener;
  flags.AddOption("json-socket", "", "PATH",
                  std::string("Serve the JSON stream on a Unix socket (repeatable; default: ") +
                      kDefaultJsonSocket + " when no --json-socket or --json-tcp is given)",
                  [&](std::string_view v) {
                    options.json_sockets.emplace_back(v);
                    last_listener = v;
                    return Status::Ok();
                  });
  flags.AddOption("json-tcp", "", "HOST:PORT",
                  "Serve the JSON stream on TCP, numeric host, loopback advised (repeatable)",
                  [&](std::string_view v) {
                    options.json_tcp.emplace_back(v);
                    last_listener = v;
                    return Status::Ok();
                  });
  flags.AddOption("json-filter", "", "EXPR",
                  "Only events matching EXPR go to the listener given just before it",
                  [&](std::string_view v) -> Status {
                    if (last_listener.empty()) {
                      return Status::InvalidArgument(
                          "--json-filter must follow the --json-socket or --json-tcp it filters");
                    }
                    Result<Filter> filter = Filter::Parse(v);
                    if (!filter.ok()) {
                      return Status::InvalidArgument("--json-filter: " + filter.status().message());
                    }
                    options.json_filters[last_listener] = std::string(v);
                    return Status::Ok();
                  });
  flags.AddOption("json-socket-mode", "", "MODE",
                  "Permission bits of the socket files, octal (default: 0660)",
                  [&](std::string_view v) -> Status {
                    unsigned mode = 0;
                    bool valid = !v.empty() && v.size() <= 4;
                    for (char c : v) {
                      valid = valid && c >= '0' && c <= '7';
                      mode = mode * 8 + static_cast<unsigned>(c - '0');
                    }
                    if (!valid) {
                      return Status::InvalidArgument(
                          "--json-socket-mode takes octal permission bits such as 0660, not '" +
                          std::string(v) + "'");
                    }
                    options.json_socket_mode = mode;
                    return Status::Ok();
                  });
  flags.AddString("json-socket-group", "", "GROUP", "Group owning the socket files",
                  &options.json_socket_group);
  flags.AddBool("replay-active",
                "On connect, send every active flow with \"established\": true (netifyd v3)",
                &options.replay_active);
  flags.AddByteSize("json-client-buffer",
                    "Bytes queued per JSON client before its oldest messages are dropped",
                    &options.json_client_buffer_bytes, 4096);
  flags.AddDuration("status-interval", "Interval of the gateway's agent_status messages",
                    &options.status_interval_ms);
  flags.AddBool("sync-writes", "fsync the store on every batch (survives power loss)",
                &options.sync_writes);
  flags.AddString("grpc-listen", "", "HOST:PORT",
                  "Serve the gRPC API (queries, top, subscribe, agents; health and reflection) "
                  "on HOST:PORT, e.g. 127.0.0.1:7152 (default: off)",
                  &options.grpc_listen);
  flags.AddString("grpc-tls-cert", "", "FILE", "PEM certificate chain for gRPC TLS",
                  &options.grpc_tls_cert);
  flags.AddString("grpc-tls-key", "", "FILE", "PEM private key for gRPC TLS",
                  &options.grpc_tls_key);
  flags.AddString("grpc-token-file", "", "FILE",
                  "Require 'authorization: Bearer TOKEN' on gRPC calls, TOKEN read from FILE",
                  &options.grpc_token_file);
  flags.AddDuration("retention",
                    "Drop stored events and flows older than DURATION, e.g. 7d (0: keep)",
                    &options.retention_ms);
  flags.AddByteSize("max-disk",
                    "Drop the oldest stored data while the store exceeds SIZE, e.g. 20GiB (0: no "
                    "cap)",
                    &options.max_disk_bytes, 1u << 20);
  flags.AddDuration("retention-interval", "Time between retention checks",
                    &options.retention_interval_ms);
  flags.AddMetricsListen(&options.metrics_listen);
  flags.AddLogLevel();
  flags.AddConfigFile();
  std::optional<int> exit_code = ParseMainFlags(flags, argc, argv, [&]() -> Status {
    if (options.store == "clickhouse") {
      if (options.clickhouse_urls.empty()) {
        return Status::InvalidArgument("--store clickhouse needs --clickhouse-url URL");
      }
      if (!options.data_dir.empty() || options.sync_writes) {
        return Status::InvalidArgument(
            "--data-dir and --sync-writes are for --store rocksdb; ClickHouse keeps the data");
      }
      if (options.max_disk_bytes != 0) {
        return Status::InvalidArgument(
            "--max-disk is for --store rocksdb; with ClickHouse use --retention (days are "
            "dropped whole) and the servers' own storage policies");
      }
    } else if (options.store == "rocksdb") {
      if (options.data_dir.empty()) {
        return Status::InvalidArgument("no data dir given: use --data-dir DIR (see --help)");
      }
      if (!options.clickhouse_urls.empty() || !options.clickhouse_cluster.empty()) {
        return Status::InvalidArgument("--clickhouse-* flags need --store clickhouse");
      }
    } else {
      return Status::InvalidArgument("--store must be rocksdb or clickhouse, not '" +
                                     options.store + "'");
    }
    if (!options.agents_plaintext &&
        (options.agents_key_file.empty() || options.agents_allow_file.empty())) {
      return Status::InvalidArgument(
          "agents need --agents-key FILE and --agents-allow FILE (CURVE), or --agents-plaintext");
    }
    options.agent_offline_after = static_cast<uint32_t>(offline_after);
    if (options.status_interval_ms < 1000) {
      return Status::InvalidArgument("--status-interval must be at least 1s");
    }
    if (options.grpc_listen.empty() &&
        !(options.grpc_tls_cert + options.grpc_tls_key + options.grpc_token_file).empty()) {
      return Status::InvalidArgument(
          "--grpc-tls-cert, --grpc-tls-key and --grpc-token-file need --grpc-listen");
    }
    if (options.retention_interval_ms < 100) {
      return Status::InvalidArgument("--retention-interval must be at least 100ms");
    }
    if (options.json_sockets.empty() && options.json_tcp.empty()) {
      options.json_sockets.push_back(kDefaultJsonSocket);
    }
    return Status::Ok();
  });
  if (exit_code) return *exit_code;

  // Block the stop signals before any thread starts, so that only sigtimedwait below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);  // not a stop: re-read the agent allow-list
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  // The default socket's directory is ours to make (systemd's RuntimeDirectory does it too).
  for (const std::string& path : options.json_sockets) {
    if (path == kDefaultJsonSocket) ::mkdir("/run/flowgate", 0755);
  }
  Result<std::unique_ptr<gateway::Gateway>> gw = gateway::Gateway::Start(options);
  if (!gw.ok()) {
    std::fprintf(stderr, "flowgate-gateway: %s\n", gw.status().message().c_str());
    return 1;
  }
  Log(LogLevel::kInfo, "gateway", "ready (allocator: " + AllocatorName() + ")");
  const timespec interval{static_cast<time_t>(options.status_interval_ms / 1000),
                          static_cast<long>(options.status_interval_ms % 1000) * 1'000'000};
  while (true) {
    int signal = sigtimedwait(&stop_signals, nullptr, &interval);
    if (signal == SIGINT || signal == SIGTERM) break;
    if (signal == SIGHUP) {
      (void)(*gw)->ReloadAgentKeys();  // logs its own outcome
      continue;
    }
    (*gw)->PublishStatus();
  }
  Log(LogLevel::kInfo, "gateway", "stopping");
  (*gw)->Stop();
  return 0;
}
