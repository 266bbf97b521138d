// The gateway as a library: agent listener -> RocksDB store -> JSON socket fan-out.
// main() parses flags into GatewayOptions and runs a Gateway until a signal; tests can run
// one in-process.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "flowgate/common/status.h"

namespace flowgate::gateway {

struct GatewayOptions {
  // Where flows are stored: "rocksdb" (embedded, in data_dir) or "clickhouse" (a server or
  // cluster shared by several gateways). Default: "rocksdb".
  std::string store = "rocksdb";
  // RocksDB directory. REQUIRED with the RocksDB store.
  std::string data_dir;
  // ClickHouse: HTTP URL of the server, or of each shard of `clickhouse_cluster` (in the
  // cluster's shard order). REQUIRED with the ClickHouse store.
  std::vector<std::string> clickhouse_urls;
  // ClickHouse cluster (from the servers' <remote_servers>) to spread flows over. Default: none.
  std::string clickhouse_cluster;
  // ClickHouse database of flowgate's tables. Default: "flowgate".
  std::string clickhouse_database = "flowgate";
  // ZeroMQ endpoint for agents. Default: tcp://127.0.0.1:7151.
  std::string agents_listen = "tcp://127.0.0.1:7151";
  // CURVE for agents: the gateway's key pair file and the allow-list of agent public keys
  // (see flowgate/common/curve_keys.h; re-read by ReloadAgentKeys). REQUIRED unless
  // agents_plaintext.
  std::string agents_key_file;
  std::string agents_allow_file;
  // Accept agents unencrypted and unauthenticated. Default: false.
  bool agents_plaintext = false;
  // An agent is listed offline after this many of its status intervals without a batch.
  // Default: 3.
  uint32_t agent_offline_after = 3;
  // netifyd-compatible JSON socket paths. Default: none (main() supplies
  // /run/flowgate/flowgate.sock when no listener is configured).
  std::vector<std::string> json_sockets;
  // Permission bits and group of the socket files. Default: 0660, the process's group.
  uint32_t json_socket_mode = 0660;
  std::string json_socket_group;
  // On connect, send every active flow as a `flow` with "established": true. Default: false.
  bool replay_active = false;
  // netifyd-compatible JSON TCP listeners, HOST:PORT. Default: none.
  std::vector<std::string> json_tcp;
  // Filters (flowgate filter language) by listener, keyed by the path or HOST:PORT as
  // given above; a listener without one gets every event. The gateway's own hello, status
  // and definitions always go out. Default: none.
  std::map<std::string, std::string> json_filters;
  // Per-client buffer of the JSON socket. Default: 4 MiB.
  uint64_t json_client_buffer_bytes = 4u << 20;
  // Interval of the gateway's own agent_status on the JSON socket. Default: 15 s.
  uint64_t status_interval_ms = 15'000;
  // fsync the store's log on every batch. Default: false.
  bool sync_writes = false;
  // gRPC API (FlowService, health, reflection), HOST:PORT; port 0 picks one. Off by default
  // so that a gateway opens no query port nobody asked for. Default: "" (off).
  std::string grpc_listen;
  // PEM certificate chain and key for gRPC TLS: both or neither. Default: plaintext.
  std::string grpc_tls_cert;
  std::string grpc_tls_key;
  // File with the bearer token gRPC calls must carry. Default: none required.
  std::string grpc_token_file;
  // Retention: drop stored data older than this. Default: 0 (keep forever).
  uint64_t retention_ms = 0;
  // Retention: drop the oldest data while the store exceeds this many bytes. Default: 0 (no
  // cap).
  uint64_t max_disk_bytes = 0;
  // Time between retention checks. Default: 30 s.
  uint64_t retention_interval_ms = 30'000;
  // Prometheus metrics over HTTP, HOST:PORT; port 0 picks one. Default: "" (off).
  std::string metrics_listen;
};

class Gateway {
 public:
  // Opens the store and binds every listener; fails with a message naming the one that
  // could not be opened.
  static Result<std::unique_ptr<Gateway>> Start(const GatewayOptions& options);
  virtual ~Gateway() = default;

  // The agent endpoint actually bound (the port is filled in when "*" was given).
  virtual std::string agents_endpoint() const = 0;
  // The JSON TCP addresses actually bound.
  virtual std::vector<std::string> json_tcp_addresses() const = 0;
  // The metrics address actually bound ("" without metrics_listen).
  virtual std::string metrics_address() const = 0;
  // The Prometheus text the metrics endpoint serves now. Thread-safe.
  virtual std::string RenderMetrics() const = 0;
  // Sends the gateway's periodic agent_status to JSON clients. Called by the run loop.
  virtual void PublishStatus() = 0;
  // Re-reads the agent allow-list (SIGHUP). On error the previous list stays in force.
  virtual Status ReloadAgentKeys() = 0;
  // Stops listeners, then the store, in reverse order of start. Idempotent.
  virtual void Stop() = 0;
};

}  // namespace flowgate::gateway
