#include "core/gateway_app.h"

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "api/grpc_server.h"
#include "api/json_socket_server.h"
#include "classify/ndpi_classifier.h"
#include "flowgate/common/curve_keys.h"
#include "flowgate/common/filter.h"
#include "flowgate/common/identity.h"
#include "flowgate/common/log.h"
#include "flowgate/common/metrics.h"
#include "flowgate/common/netifyd_json.h"
#include "flowgate/storage/clickhouse_store.h"
#include "flowgate/storage/flow_store.h"
#include "flowgate/storage/retention.h"
#include "ingest/agent_listener.h"

namespace flowgate::gateway {
namespace {

// Agent batches per store write with ClickHouse (16 with RocksDB): at 512 events a batch,
// up to 128k events (or 16 MiB) an insert.
constexpr size_t kClickHouseGroupBatches = 256;

class GatewayImpl final : public Gateway {
 public:
  explicit GatewayImpl(const GatewayOptions& options) : options_(options) {}
  ~GatewayImpl() override { Stop(); }

  std::string JoinedUrls() const {
    std::string joined;
    for (const std::string& url : options_.clickhouse_urls) {
      joined += (joined.empty() ? "" : ", ") + url;
    }
    return joined;
  }

  Status Open() {
    Result<std::unique_ptr<storage::FlowStore>> store =
        options_.store == "clickhouse"
            ? storage::OpenClickHouseFlowStore(
                  {.urls = options_.clickhouse_urls,
                   .cluster = options_.clickhouse_cluster,
                   .database = options_.clickhouse_database,
                   .offline_after_missed_intervals = options_.agent_offline_after})
            : storage::OpenRocksFlowStore(
                  {.path = options_.data_dir,
                   .sync_writes = options_.sync_writes,
                   .offline_after_missed_intervals = options_.agent_offline_after});
    if (!store.ok()) return store.status();
    store_ = std::move(store).value();

    // The catalogue never changes while the gateway runs: encode it once.
    Result<std::unique_ptr<classify::NdpiModule>> ndpi = classify::NdpiModule::Create({});
    if (!ndpi.ok()) return ndpi.status();
    v1::Event definitions;
    *definitions.mutable_definitions() = (*ndpi)->Definitions();
    definitions_frame_ =
        std::make_shared<const std::string>(EncodeNetifydFrame(definitions, nullptr));
    v1::Event hello;
    hello.mutable_agent_hello()->set_agent_version(FlowgateVersion());
    hello.mutable_agent_hello()->set_build_version(std::string("flowgate-gateway ") +
                                                   FlowgateVersion());
    hello.mutable_agent_hello()->set_json_version(kNetifydJsonVersion);
    hello_frame_ = std::make_shared<const std::string>(EncodeNetifydFrame(hello, nullptr));

    if (options_.replay_active) FLOWGATE_RETURN_IF_ERROR(LoadActiveFlows());
    FLOWGATE_RETURN_IF_ERROR(StartJsonServers());
    if (options_.retention_ms != 0 || options_.max_disk_bytes != 0) {
      retention_ = std::make_unique<storage::Retention>(
          storage::RetentionOptions{.max_age_ms = options_.retention_ms,
                                    .max_disk_bytes = options_.max_disk_bytes,
                                    .interval_ms = options_.retention_interval_ms,
                                    .now_ms = {}},
          *store_);
      Log(LogLevel::kInfo, "gateway",
          "retention: age " +
              (options_.retention_ms == 0 ? std::string("unlimited")
                                          : std::to_string(options_.retention_ms) + " ms") +
              ", disk cap " +
              (options_.max_disk_bytes == 0 ? std::string("none")
                                            : std::to_string(options_.max_disk_bytes) + " bytes"));
    }
    if (!options_.grpc_listen.empty()) {
      Result<std::unique_ptr<GrpcServer>> grpc =
          GrpcServer::Start({.listen = options_.grpc_listen,
                             .tls_cert_file = options_.grpc_tls_cert,
                             .tls_key_file = options_.grpc_tls_key,
                             .token_file = options_.grpc_token_file},
                            *store_);
      if (!grpc.ok()) return grpc.status();
      grpc_ = std::move(grpc).value();
    }

    AgentListenerOptions listener_options;
    listener_options.endpoint = options_.agents_listen;
    // Each ClickHouse insert is a part on disk whatever its size: fewer, larger groups.
    if (options_.store == "clickhouse") {
      listener_options.max_group_batches = kClickHouseGroupBatches;
      listener_options.write_all_waiting = true;
    }
    if (!options_.agents_plaintext) {
      Result<CurveKeyPair> keys = ReadCurveKeyPair(options_.agents_key_file);
      if (!keys.ok()) return keys.status();
      listener_options.curve_public_key = keys->public_key;
      listener_options.curve_secret_key = keys->secret_key;
      listener_options.allow_list_file = options_.agents_allow_file;
    }
    Result<std::unique_ptr<AgentListener>> listener = AgentListener::Create(
        std::move(listener_options), *store_,
        [this](const std::vector<v1::StoredEvent>& events) { Fanout(events); });
    if (!listener.ok()) return listener.status();
    listener_ = std::move(listener).value();
    listener_view_ = listener_.get();
    Log(LogLevel::kInfo, "gateway", "agents listening on " + listener_->bound_endpoint());
    for (const JsonServer& group : json_servers_) {
      const std::string filtered =
          group.filter.empty() ? "" : " (filter: " + group.filter.ToString() + ")";
      for (const std::string& path : group.paths) {
        Log(LogLevel::kInfo, "gateway", "JSON socket at " + path + filtered);
      }
      for (const std::string& address : group.server->tcp_bound_addresses()) {
        Log(LogLevel::kInfo, "gateway", "JSON TCP listener at " + address + filtered);
      }
    }
    Log(LogLevel::kInfo, "gateway",
        options_.store == "clickhouse"
            ? "store: ClickHouse at " + JoinedUrls() +
                  (options_.clickhouse_cluster.empty()
                       ? std::string()
                       : " (cluster " + options_.clickhouse_cluster + ")") +
                  ", database " + options_.clickhouse_database
            : "store at " + options_.data_dir + " holds " +
                  std::to_string(store_->last_sequence()) + " events");
    // Last to start and first to stop: a scrape may then read every other component.
    if (!options_.metrics_listen.empty()) {
      Result<std::unique_ptr<MetricsServer>> metrics =
          MetricsServer::Start(options_.metrics_listen, [this] { return RenderMetrics(); });
      if (!metrics.ok()) return metrics.status();
      metrics_ = std::move(metrics).value();
      Log(LogLevel::kInfo, "gateway",
          "metrics at http://" + metrics_->bound_address() + "/metrics");
    }
    return Status::Ok();
  }

  std::string agents_endpoint() const override { return listener_->bound_endpoint(); }
  std::vector<std::string> json_tcp_addresses() const override {
    std::vector<std::string> addresses;
    for (const JsonServer& group : json_servers_) {
      for (const std::string& a : group.server->tcp_bound_addresses()) addresses.push_back(a);
    }
    return addresses;
  }

  std::string metrics_address() const override {
    return metrics_ ? metrics_->bound_address() : std::string();
  }

  std::string RenderMetrics() const override {
    PrometheusText out;
    AppendProcessMetrics(
        "flowgate_gateway",
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count(), out);
    if (AgentListener* listener = listener_view_.load()) AppendIngestMetrics(*listener, out);
    AppendAgentMetrics(out);
    AppendJsonMetrics(out);
    AppendStoreMetrics(out);
    if (grpc_) {
      const GrpcServerStats rpc = grpc_->stats();
      out.Counter("flowgate_gateway_grpc_calls_total", "gRPC FlowService calls", rpc.calls);
      out.Family("flowgate_gateway_grpc_calls_rejected_total", MetricType::kCounter,
                 "gRPC calls refused, by reason");
      out.Sample(rpc.unauthenticated, {{"reason", "unauthenticated"}});
      out.Sample(rpc.invalid_arguments, {{"reason", "invalid_argument"}});
      out.Gauge("flowgate_gateway_grpc_subscribers", "Subscribe streams open now", rpc.subscribers);
      out.Counter("flowgate_gateway_grpc_events_streamed_total", "Events sent to Subscribe streams",
                  rpc.events_streamed);
    }
    return out.text();
  }

  void PublishStatus() override {
    Frame status = StatusFrame();
    for (JsonServer& group : json_servers_) group.server->Publish(status);
  }

  Status ReloadAgentKeys() override {
    AgentListener* listener = listener_view_.load();
    return listener == nullptr ? Status::Ok() : listener->ReloadAllowList();
  }

  void Stop() override {
    // Reverse order of start: no scrapes, no new batches, then no clients, then close the
    // store.
    metrics_.reset();
    listener_view_ = nullptr;
    json_ready_ = false;
    if (listener_) listener_->Stop();
    for (JsonServer& group : json_servers_) group.server->Stop();
    listener_.reset();
    json_servers_.clear();
    if (retention_) retention_->Stop();
    retention_.reset();
    if (grpc_) grpc_->Stop();
    grpc_.reset();
    store_.reset();
  }

 private:
  // Ingest thread: every stored event goes to every JSON client, naming its agent.
  void Fanout(const std::vector<v1::StoredEvent>& events) {
    if (options_.replay_active) TrackActiveFlows(events);
    if (grpc_ && !events.empty()) grpc_->NotifyStored(events.back().gateway_sequence());
    for (const v1::StoredEvent& stored : events) {
      Frame frame;  // encoded once, for the first listener that wants it
      for (JsonServer& group : json_servers_) {
        if (!group.filter.empty() && !group.filter.Matches(FilterSubject::FromEvent(stored))) {
          continue;
        }
        if (!frame) {
          frame = std::make_shared<const std::string>(
              EncodeNetifydFrame(stored.event(), &stored.agent()));
        }
        group.server->Publish(frame);
      }
    }
  }

  // One JSON server per distinct filter, holding every listener that uses it.
  Status StartJsonServers() {
    std::map<std::string, JsonSocketServerOptions> by_filter;
    auto options_for = [&](const std::string& listener) -> JsonSocketServerOptions& {
      auto it = options_.json_filters.find(listener);
      return by_filter[it == options_.json_filters.end() ? "" : it->second];
    };
    for (const std::string& path : options_.json_sockets)
      options_for(path).unix_paths.push_back(path);
    for (const std::string& address : options_.json_tcp) {
      options_for(address).tcp_addresses.push_back(address);
    }
    for (auto& [filter_text, json_options] : by_filter) {
      Result<Filter> filter = Filter::Parse(filter_text);
      if (!filter.ok()) {
        return Status::InvalidArgument("--json-filter '" + filter_text +
                                       "': " + filter.status().message());
      }
      JsonServer group{std::move(filter).value(), json_options.unix_paths, nullptr};
      json_options.client_buffer_bytes = options_.json_client_buffer_bytes;
      json_options.unix_mode = options_.json_socket_mode;
      json_options.unix_group = options_.json_socket_group;
      json_options.welcome_frames = [this, f = group.filter] { return WelcomeFrames(f); };
      Result<std::unique_ptr<JsonSocketServer>> server =
          JsonSocketServer::Create(std::move(json_options));
      if (!server.ok()) return server.status();
      group.server = std::move(server).value();
      json_servers_.push_back(std::move(group));
    }
    json_ready_ = true;
    return Status::Ok();
  }

  static std::string ActiveKey(const std::string& agent_id, const std::string& digest) {
    return agent_id + '\0' + digest;
  }

  void TrackActiveFlows(const std::vector<v1::StoredEvent>& events) {
    std::lock_guard lock(active_mutex_);
    for (const v1::StoredEvent& stored : events) {
      const v1::Event& e = stored.event();
      if (e.has_flow()) {
        ActiveFlow& active = active_[ActiveKey(stored.agent().id(), e.flow().flow().digest())];
        active.agent = stored.agent();
        active.flow = e.flow();
      } else if (e.has_flow_purge()) {
        active_.erase(ActiveKey(stored.agent().id(), e.flow_purge().flow().digest()));
      }
    }
  }

  // Flows the store holds without a purge are active (their agent has not ended them).
  Status LoadActiveFlows() {
    std::lock_guard lock(active_mutex_);
    return store_->ScanFlows([this](const v1::FlowRecord& record) {
      if (record.purge_reason() == v1::PURGE_REASON_UNSPECIFIED && record.has_metadata()) {
        ActiveFlow& active = active_[ActiveKey(record.agent().id(), record.metadata().digest())];
        active.agent = record.agent();
        *active.flow.mutable_context() = record.context();
        *active.flow.mutable_flow() = record.metadata();
      }
      return true;
    });
  }

  // Server thread, once per new client: hello, status, definitions, then (with
  // --replay-active) every active flow marked established, as netifyd v3 did.
  std::vector<Frame> WelcomeFrames(const Filter& filter) {
    std::vector<Frame> frames = {hello_frame_, StatusFrame(), definitions_frame_};
    if (!options_.replay_active) return frames;
    std::lock_guard lock(active_mutex_);
    frames.reserve(frames.size() + active_.size());
    for (const auto& [key, active] : active_) {
      v1::Event event;
      if (!filter.empty()) {
        v1::Event original;
        *original.mutable_flow() = active.flow;
        if (!filter.Matches(FilterSubject::FromEvent(original, active.agent))) continue;
      }
      *event.mutable_flow() = active.flow;
      event.mutable_flow()->mutable_context()->set_established(true);
      frames.push_back(
          std::make_shared<const std::string>(EncodeNetifydFrame(event, &active.agent)));
    }
    return frames;
  }

  static void AppendIngestMetrics(AgentListener& listener, PrometheusText& out) {
    const AgentListenerStats in = listener.stats();
    out.Counter("flowgate_gateway_frames_received_total", "Frames received from agents",
                in.frames_received);
    out.Counter("flowgate_gateway_batches_stored_total",
                "Agent batches made durable and acknowledged", in.batches_stored);
    out.Counter("flowgate_gateway_events_stored_total", "Events made durable", in.events_stored);
    out.Counter("flowgate_gateway_batches_duplicate_total",
                "Batches received again after they were stored (acknowledged, not applied)",
                in.batches_duplicate);
    out.Counter("flowgate_gateway_batches_out_of_order_total",
                "Batches that arrived ahead of an earlier one still due (the agent resends)",
                in.batches_out_of_order);
    out.Family("flowgate_gateway_batches_rejected_total", MetricType::kCounter,
               "Frames refused, by reason");
    out.Sample(in.rejected_malformed, {{"reason", "malformed"}});
    out.Sample(in.rejected_version, {{"reason", "version"}});
    out.Sample(in.rejected_too_large, {{"reason", "too_large"}});
    out.Family("flowgate_gateway_agent_batches_rejected_total", MetricType::kCounter,
               "Frames refused, by agent id (\"unknown\" when the frame did not say) and reason");
    for (const auto& [agent_id, reasons] : in.rejected_by_agent) {
      for (const auto& [reason, count] : reasons) {
        out.Sample(count, {{"agent_id", agent_id}, {"reason", reason}});
      }
    }
    out.Counter("flowgate_gateway_handshakes_unauthorized_total",
                "CURVE handshakes refused because the agent key is not on the allow-list",
                in.rejected_unauthorized);
    out.Gauge("flowgate_gateway_allowed_agent_keys", "Agent public keys on the allow-list",
              in.allow_list_size);
    out.Counter("flowgate_gateway_store_failures_total",
                "Batches the store could not write (not acknowledged; the agent resends)",
                in.store_failures);
  }

  // The registry, one sample per agent; the labels name it as `flowgate agents` does.
  void AppendAgentMetrics(PrometheusText& out) const {
    Result<std::vector<v1::AgentRecord>> listed = store_->ListAgents();
    if (!listed.ok()) return;
    const std::vector<v1::AgentRecord>& agents = *listed;
    const auto now_ms =
        static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count());
    const auto labels = [](const v1::AgentRecord& a) -> MetricLabels {
      return {{"agent_id", a.identity().id()},
              {"name", a.identity().name()},
              {"site", a.identity().site()}};
    };
    const auto per_agent = [&](const char* name, MetricType type, const char* help,
                               const std::function<double(const v1::AgentRecord&)>& value) {
      out.Family(name, type, help);
      for (const v1::AgentRecord& a : agents) out.Sample(value(a), labels(a));
    };
    out.Gauge("flowgate_gateway_agents", "Agents in the registry", agents.size());
    per_agent("flowgate_gateway_agent_online", MetricType::kGauge,
              "1 while the agent delivers within its offline threshold, else 0",
              [](const v1::AgentRecord& a) { return a.online() ? 1.0 : 0.0; });
    per_agent("flowgate_gateway_agent_seconds_since_last_batch", MetricType::kGauge,
              "Seconds since the agent's last batch arrived", [now_ms](const v1::AgentRecord& a) {
                return a.last_seen_ms() == 0 || a.last_seen_ms() > now_ms
                           ? 0.0
                           : static_cast<double>(now_ms - a.last_seen_ms()) / 1000.0;
              });
    per_agent("flowgate_gateway_agent_delivery_lag_seconds", MetricType::kGauge,
              "How old the agent's newest status was when it arrived: grows while the agent "
              "delivers a backlog from its spool",
              [](const v1::AgentRecord& a) {
                const double sent_s = static_cast<double>(a.last_status().timestamp());
                const double arrived_s = static_cast<double>(a.last_seen_ms()) / 1000.0;
                return sent_s == 0 || arrived_s < sent_s ? 0.0 : arrived_s - sent_s;
              });
    per_agent("flowgate_gateway_agent_events_applied_total", MetricType::kCounter,
              "Events of the agent stored",
              [](const v1::AgentRecord& a) { return static_cast<double>(a.events_applied()); });
    per_agent("flowgate_gateway_agent_batches_applied_total", MetricType::kCounter,
              "Batches of the agent stored",
              [](const v1::AgentRecord& a) { return static_cast<double>(a.batches_applied()); });
    per_agent("flowgate_gateway_agent_batches_duplicate_total", MetricType::kCounter,
              "Batches of the agent received again after they were stored",
              [](const v1::AgentRecord& a) { return static_cast<double>(a.batches_duplicate()); });
    per_agent("flowgate_gateway_agent_sequence_gaps_total", MetricType::kCounter,
              "Batches the agent never delivered (its spool overflowed), by sequence gaps",
              [](const v1::AgentRecord& a) { return static_cast<double>(a.sequence_gaps()); });
    per_agent("flowgate_gateway_agent_spool_bytes", MetricType::kGauge,
              "Unacknowledged bytes in the agent's spool, as of its newest status",
              [](const v1::AgentRecord& a) {
                return static_cast<double>(a.last_status().transport().spool_bytes());
              });
    per_agent("flowgate_gateway_agent_events_dropped_total", MetricType::kCounter,
              "Events the agent lost to a full spool or send queue, as of its newest status",
              [](const v1::AgentRecord& a) {
                const v1::TransportStats& t = a.last_status().transport();
                return static_cast<double>(t.events_dropped() + t.queue_dropped());
              });
  }

  // Every JSON listener's counters summed, and every client, for the status and metrics.
  struct JsonTotals {
    JsonSocketServerStats sum;
    std::vector<JsonClientStats> clients;
  };
  JsonTotals JsonSocketTotals() const {
    JsonTotals totals;
    if (!json_ready_) return totals;
    for (const JsonServer& group : json_servers_) {
      const JsonSocketServerStats s = group.server->stats();
      totals.sum.clients_connected += s.clients_connected;
      totals.sum.clients_accepted += s.clients_accepted;
      totals.sum.clients_disconnected += s.clients_disconnected;
      totals.sum.clients_kicked += s.clients_kicked;
      totals.sum.frames_published += s.frames_published;
      totals.sum.frames_dropped += s.frames_dropped;
      totals.sum.bytes_sent += s.bytes_sent;
      for (JsonClientStats& c : group.server->client_stats()) {
        totals.clients.push_back(std::move(c));
      }
    }
    return totals;
  }

  void AppendJsonMetrics(PrometheusText& out) const {
    if (!json_ready_) return;
    const JsonTotals totals = JsonSocketTotals();
    const JsonSocketServerStats& total = totals.sum;
    uint64_t queued_bytes = 0;
    for (const JsonClientStats& c : totals.clients) queued_bytes += c.queued_bytes;
    out.Gauge("flowgate_gateway_json_clients", "JSON socket clients connected now",
              total.clients_connected);
    out.Counter("flowgate_gateway_json_clients_accepted_total", "JSON socket clients accepted",
                total.clients_accepted);
    out.Counter("flowgate_gateway_json_clients_kicked_total",
                "JSON socket clients disconnected because they wrote to the socket",
                total.clients_kicked);
    out.Counter("flowgate_gateway_json_frames_published_total",
                "Frames published to the JSON socket listeners", total.frames_published);
    out.Counter("flowgate_gateway_json_frames_dropped_total",
                "Frames JSON clients lost because they fell behind (summed over clients)",
                total.frames_dropped);
    out.Counter("flowgate_gateway_json_bytes_sent_total", "Bytes sent to JSON clients",
                total.bytes_sent);
    out.Gauge("flowgate_gateway_json_queued_bytes",
              "Bytes waiting to be sent to JSON clients (summed over clients)", queued_bytes);
  }

  void AppendStoreMetrics(PrometheusText& out) const {
    out.Counter("flowgate_gateway_store_last_sequence",
                "Gateway sequence of the newest stored event", store_->last_sequence());
    if (Result<storage::StoreHealth> health = store_->Health(); health.ok()) {
      out.Gauge("flowgate_gateway_store_disk_bytes", "Bytes the store occupies on disk",
                health->disk_bytes);
      out.Gauge("flowgate_gateway_store_live_data_bytes", "Bytes of live RocksDB table files",
                health->live_data_bytes);
      out.Gauge("flowgate_gateway_store_memtable_bytes", "Bytes in RocksDB memtables",
                health->memtable_bytes);
      out.Gauge("flowgate_gateway_store_pending_compaction_bytes",
                "Bytes RocksDB compaction still has to rewrite (estimate)",
                health->pending_compaction_bytes);
      out.Gauge("flowgate_gateway_store_running_compactions", "RocksDB compactions running now",
                health->running_compactions);
      out.Family("flowgate_gateway_store_write_stalls_total", MetricType::kCounter,
                 "RocksDB write stalls since the store opened, by kind");
      out.Sample(health->write_slowdowns, {{"kind", "slowdown"}});
      out.Sample(health->write_stops, {{"kind", "stop"}});
      out.Gauge("flowgate_gateway_store_writes_stopped", "1 while RocksDB stops writes, else 0",
                health->write_stopped ? 1 : 0);
      out.Gauge("flowgate_gateway_store_delayed_write_rate_bytes",
                "Bytes/s RocksDB holds writes to while it delays them (0: not delayed)",
                health->delayed_write_rate);
    }
    {
      std::lock_guard lock(active_mutex_);
      if (options_.replay_active) {
        out.Gauge("flowgate_gateway_active_flows", "Flows not yet purged (--replay-active)",
                  active_.size());
      }
    }
    if (retention_) {
      const storage::RetentionStats r = retention_->stats();
      out.Counter("flowgate_gateway_retention_runs_total", "Retention checks done", r.runs);
      out.Counter("flowgate_gateway_retention_failures_total", "Retention checks that failed",
                  r.failures);
      out.Counter("flowgate_gateway_retention_dropped_events_total", "Events dropped by retention",
                  r.dropped_events);
      out.Counter("flowgate_gateway_retention_dropped_flows_total", "Flows dropped by retention",
                  r.dropped_flows);
      out.Gauge("flowgate_gateway_retention_retained_from_seconds",
                "Unix time before which retention dropped the data (0: nothing dropped)",
                static_cast<double>(r.retained_from_ms) / 1000.0);
    }
  }

  Frame StatusFrame() const {
    const ProcessUsage usage = CurrentProcessUsage();
    v1::Event event;
    v1::AgentStatus* s = event.mutable_agent_status();
    FillProcessStatus(usage, usage,
                      std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count(),
                      static_cast<uint32_t>(options_.status_interval_ms / 1000),
                      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                                std::chrono::steady_clock::now() - started_)
                                                .count()),
                      s);
    v1::GatewayStats* g = s->mutable_gateway();
    if (AgentListener* listener = listener_view_.load()) {
      const AgentListenerStats in = listener->stats();
      g->set_events_stored(in.events_stored);
      g->set_batches_stored(in.batches_stored);
      g->set_batches_duplicate(in.batches_duplicate);
      g->set_batches_rejected(in.rejected_malformed + in.rejected_version + in.rejected_too_large);
      g->set_store_failures(in.store_failures);
    }
    const JsonTotals json = JsonSocketTotals();
    g->set_json_clients(json.sum.clients_connected);
    g->set_json_frames_published(json.sum.frames_published);
    g->set_json_frames_dropped(json.sum.frames_dropped);
    g->set_json_clients_kicked(json.sum.clients_kicked);
    for (const JsonClientStats& c : json.clients) {
      v1::JsonClientStats* client = g->add_json_client();
      client->set_id(c.id);
      client->set_peer(c.peer);
      client->set_frames_sent(c.frames_sent);
      client->set_frames_dropped(c.frames_dropped);
      client->set_queued_bytes(c.queued_bytes);
    }
    {
      std::lock_guard lock(active_mutex_);
      g->set_active_flows(active_.size());
    }
    return std::make_shared<const std::string>(EncodeNetifydFrame(event, nullptr));
  }

  const GatewayOptions options_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::unique_ptr<storage::FlowStore> store_;
  struct JsonServer {
    Filter filter;  // empty: every event
    std::vector<std::string> paths;
    std::unique_ptr<JsonSocketServer> server;
  };
  // Built once at start and not resized while json_ready_ is true.
  std::vector<JsonServer> json_servers_;
  std::unique_ptr<AgentListener> listener_;
  // Started before the listener and stopped after it, so Fanout may use it unguarded.
  std::unique_ptr<GrpcServer> grpc_;
  std::unique_ptr<storage::Retention> retention_;
  std::unique_ptr<MetricsServer> metrics_;
  Frame hello_frame_, definitions_frame_;
  // What the server thread's status frames may read while the main thread starts and
  // stops the components (the unique_ptrs above are the owners).
  std::atomic<AgentListener*> listener_view_{nullptr};
  std::atomic<bool> json_ready_{false};

  struct ActiveFlow {
    v1::AgentIdentity agent;
    v1::FlowEvent flow;
  };
  mutable std::mutex active_mutex_;
  // With --replay-active: the latest `flow` of every flow not yet purged, by agent + digest.
  std::unordered_map<std::string, ActiveFlow> active_;  // guarded by active_mutex_
};

}  // namespace

Result<std::unique_ptr<Gateway>> Gateway::Start(const GatewayOptions& options) {
  if (options.store != "clickhouse" && options.data_dir.empty())
    return Status::InvalidArgument("no data dir given: use --data-dir DIR");
  auto gateway = std::make_unique<GatewayImpl>(options);
  FLOWGATE_RETURN_IF_ERROR(gateway->Open());
  return std::unique_ptr<Gateway>(std::move(gateway));
}

}  // namespace flowgate::gateway
