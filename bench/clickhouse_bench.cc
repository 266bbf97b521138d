// The ClickHouse store (issue 9): rows/s into a local 2-shard cluster through the gateway
// (real GatewayClients -> ZeroMQ over loopback -> AgentListener -> ClickHouse store, each
// batch acknowledged only once ClickHouse accepted it), beside a bulk insert of the very
// same rows with clickhouse-client in the same run; and Top over 24 hours from ClickHouse's
// rollups beside the RocksDB store's rollups holding the same events.
//
// The cluster is started by deploy/clickhouse-cluster.sh in a temporary directory; without
// clickhouse-server the benchmark says so and reports nothing.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../storage/src/clickhouse_http.h"
#include "../tests/support/clickhouse_cluster.h"
#include "bench_report.h"
#include "export/gateway_client.h"
#include "flowgate/common/flags.h"
#include "flowgate/common/identity.h"
#include "flowgate/storage/clickhouse_store.h"
#include "flowgate/storage/flow_query.h"
#include "flowgate/storage/flow_store.h"
#include "ingest/agent_listener.h"

namespace flowgate::bench {
namespace {

using Clock = std::chrono::steady_clock;
using testing::ClickHouseCluster;

constexpr int kAgents = 4;
constexpr uint64_t kEventsPerAgent = 150'000;
// Five: the first run into a just-started cluster is the slowest, and the machine is shared.
constexpr int kRepeats = 5;
constexpr uint64_t kDayMs = 86'400'000;
// Tables holding the data rows (marks and the registry are a few rows per batch).
constexpr const char* kDataTables[] = {"flow_parts", "rollups"};

// The scratch directory of this run, removed at exit with the servers running in it, also
// when the run fails (std::exit runs no destructors).
std::filesystem::path g_scratch;

void StopClusterAndRemoveScratch() {
  if (g_scratch.empty()) return;
  const std::string stop = std::string(FLOWGATE_SOURCE_DIR) +
                           "/deploy/clickhouse-cluster.sh stop --dir '" +
                           (g_scratch / "cluster").string() + "' >/dev/null 2>&1";
  (void)std::system(stop.c_str());
  std::error_code ignored;
  std::filesystem::remove_all(g_scratch, ignored);
}

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "clickhouse_bench: %s\n", what.c_str());
  std::exit(1);
}

uint64_t NowMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// A day of a probe's traffic: each flow a `flow` event, a flow_stats and a flow_purge,
// started evenly over the 24 hours before `end_ms`, under 40 applications and 400 hosts.
std::vector<v1::Event> MakeDay(uint64_t count, int agent, uint64_t end_ms) {
  std::vector<v1::Event> events;
  events.reserve(count);
  const uint64_t flows = count / 3;
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t flow = i / 3;
    const uint64_t start = end_ms - kDayMs + flow * (kDayMs / flows);
    char digest[41];
    std::snprintf(digest, sizeof digest, "%08x%032llx", agent,
                  static_cast<unsigned long long>(flow));
    v1::Event& event = events.emplace_back();
    switch (i % 3) {
      case 0: {
        v1::FlowMetadata* m = event.mutable_flow()->mutable_flow();
        event.mutable_flow()->mutable_context()->set_interface("eth0");
        m->set_digest(digest);
        m->set_ip_version(4);
        m->set_ip_protocol(6);
        m->set_local_ip("10.0." + std::to_string((flow >> 8) & 0xff) + "." +
                        std::to_string(flow & 0xff));
        m->set_other_ip("198.51.100." + std::to_string(flow % 200));
        m->set_local_port(static_cast<uint32_t>(1024 + flow % 60000));
        m->set_other_port(443);
        m->set_detected_protocol_name("TLS");
        m->set_detected_application_name("app-" + std::to_string(flow % 40));
        m->set_host_server_name("host-" + std::to_string(flow % 400) + ".example.com");
        m->set_first_seen_at(start);
        m->set_last_seen_at(start);
        break;
      }
      case 1: {
        v1::FlowCounters* c = event.mutable_flow_stats()->mutable_flow();
        event.mutable_flow_stats()->mutable_context()->set_interface("eth0");
        c->set_digest(digest);
        c->set_local_bytes(500 + flow % 1000);
        c->set_other_bytes(4000 + flow % 7000);
        c->set_local_packets(5);
        c->set_other_packets(7);
        c->set_total_bytes(4500 + flow % 1000 + flow % 7000);
        c->set_total_packets(12);
        c->set_last_seen_at(start + 20'000);
        break;
      }
      default: {
        v1::FlowPurgeEvent* purge = event.mutable_flow_purge();
        purge->mutable_context()->set_interface("eth0");
        purge->set_reason(v1::PURGE_REASON_CLOSED);
        v1::FlowCounters* c = purge->mutable_flow();
        c->set_digest(digest);
        c->set_local_bytes(100);
        c->set_other_bytes(200);
        c->set_local_packets(1);
        c->set_other_packets(1);
        c->set_total_bytes(4800 + flow % 1000 + flow % 7000);
        c->set_total_packets(14);
        c->set_last_seen_at(start + 30'000);
        break;
      }
    }
  }
  return events;
}

// Fixed ids, so that every run spreads the agents over both shards alike (the gateway picks
// an agent's shard by its id).
std::vector<v1::AgentIdentity> Identities() {
  static const char* kIds[kAgents] = {
      "0b5e4c7a-1f0e-4a53-9d42-6f3a51c0de01", "6a1d2f9e-77b4-4e0c-8a3e-2c9b0f4d1e02",
      "c3f8a0d4-5b2e-4f71-b6d9-8e1a7c3f5a03", "f2d7b1e9-3a6c-4d88-9f05-4b7e2a6c8d04"};
  std::vector<v1::AgentIdentity> agents;
  for (int a = 0; a < kAgents; ++a) {
    v1::AgentIdentity& agent = agents.emplace_back();
    agent.set_id(kIds[a]);
    agent.set_name("bench-" + std::to_string(a));
    agent.set_site("site-" + std::to_string(a % 2));
  }
  return agents;
}

storage::ClickHouseStoreOptions StoreOptions(const ClickHouseCluster& cluster,
                                             const std::string& database) {
  storage::ClickHouseStoreOptions options;
  options.urls = cluster.urls();
  options.cluster = cluster.cluster();
  options.database = database;
  return options;
}

// The agents send their day through one gateway over the cluster; timed from the first Emit
// to the last acknowledgement. Returns the seconds taken.
double RunGateway(const ClickHouseCluster& cluster, const std::string& database,
                  const std::vector<v1::AgentIdentity>& agents,
                  const std::vector<std::vector<v1::Event>>& events) {
  Result<std::unique_ptr<storage::FlowStore>> store =
      storage::OpenClickHouseFlowStore(StoreOptions(cluster, database));
  if (!store.ok()) Fail(store.status().message());
  gateway::AgentListenerOptions listener_options;
  listener_options.endpoint = "tcp://127.0.0.1:*";
  listener_options.max_group_batches = 256;  // as the gateway sets them for ClickHouse
  listener_options.write_all_waiting = true;
  Result<std::unique_ptr<gateway::AgentListener>> listener =
      gateway::AgentListener::Create(std::move(listener_options), **store, nullptr);
  if (!listener.ok()) Fail(listener.status().message());
  std::vector<std::unique_ptr<agent::GatewayClient>> clients;
  for (const v1::AgentIdentity& identity : agents) {
    agent::GatewayClientOptions options;
    options.endpoint = (*listener)->bound_endpoint();
    options.identity = identity;
    options.identity.set_boot_id(MakeUuid());
    options.block_when_full = true;
    Result<std::unique_ptr<agent::GatewayClient>> client =
        agent::GatewayClient::Create(std::move(options));
    if (!client.ok()) Fail(client.status().message());
    clients.push_back(std::move(client).value());
  }
  const auto start = Clock::now();
  std::vector<std::thread> senders;
  for (size_t a = 0; a < clients.size(); ++a) {
    senders.emplace_back([&, a] {
      for (const v1::Event& event : events[a]) clients[a]->Emit(event);
      Status flushed = clients[a]->Flush(600'000);
      if (!flushed.ok()) Fail(flushed.message());
    });
  }
  for (std::thread& sender : senders) sender.join();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

uint64_t CountRows(storage::ClickHouseHttp& server, const std::string& table) {
  Result<std::string> answer = server.Query("SELECT count() FROM " + table + " FORMAT RowBinary");
  if (!answer.ok()) Fail(answer.status().message());
  storage::RowBinaryReader reader(*answer);
  uint64_t rows = 0;
  if (!reader.ReadUInt64(&rows)) Fail("count() of " + table + " did not parse");
  return rows;
}

// The gateway's rows, dumped per shard and table, inserted again into empty copies of the
// tables by clickhouse-client (native protocol, one INSERT per file, shards in parallel).
// Returns the seconds taken.
double RunBulkInsert(const ClickHouseCluster& cluster, const std::string& database,
                     const std::filesystem::path& scratch) {
  const std::string bulk = database + "_bulk";
  std::vector<std::string> commands;
  for (size_t shard = 0; shard < cluster.urls().size(); ++shard) {
    storage::ClickHouseHttp server(cluster.urls()[shard], 600'000);
    if (Status s = server.Execute("CREATE DATABASE IF NOT EXISTS " + bulk); !s.ok()) {
      Fail(s.message());
    }
    const int native_port =
        std::stoi(cluster.urls()[shard].substr(cluster.urls()[shard].rfind(':') + 1)) + 1;
    std::string command;
    for (const char* table : kDataTables) {
      const std::string local = std::string(table) + "_local";
      if (Status s = server.Execute("CREATE TABLE " + bulk + "." + local + " AS " + database + "." +
                                    local);
          !s.ok()) {
        Fail(s.message());
      }
      Result<std::string> rows =
          server.Query("SELECT * FROM " + database + "." + local + " FORMAT RowBinary");
      if (!rows.ok()) Fail(rows.status().message());
      if (rows->empty()) continue;  // a shard no agent's rows went to
      const std::filesystem::path file =
          scratch / (database + "-" + std::to_string(shard) + "-" + local + ".bin");
      std::ofstream(file, std::ios::binary) << *rows;
      command += std::string(command.empty() ? "" : " && ") + ClickHouseCluster::kClientBinary +
                 " --host 127.0.0.1 --port " + std::to_string(native_port) +
                 " --query 'INSERT INTO " + bulk + "." + local + " FORMAT RowBinary' < '" +
                 file.string() + "'";
    }
    if (!command.empty()) commands.push_back(command);
  }
  const auto start = Clock::now();
  std::vector<std::thread> inserters;
  for (const std::string& command : commands) {
    inserters.emplace_back([command] {
      if (std::system(command.c_str()) != 0) Fail("bulk insert failed: " + command);
    });
  }
  for (std::thread& inserter : inserters) inserter.join();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Median milliseconds of Top over the last 24 hours by application from `store`'s rollups.
double TopMs(storage::FlowStore& store, uint64_t end_ms, std::vector<v1::TopEntry>* entries) {
  std::vector<double> times;
  for (int i = 0; i < 15; ++i) {
    const auto start = Clock::now();
    storage::TopQuery query;
    query.window = {.from_ms = end_ms - kDayMs, .to_ms = end_ms + 1};
    query.group_by = v1::GROUP_BY_APPLICATION;
    query.source = v1::TOP_SOURCE_ROLLUPS;
    Result<storage::TopAnswer> answer = storage::Top(store, query);
    times.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    if (!answer.ok()) Fail(answer.status().message());
    *entries = answer->entries;
  }
  return Median(times);
}

int Main(int argc, char** argv) {
  FlagParser flag_parser(
      "flowgate_clickhouse_bench", "flowgate_clickhouse_bench",
      "The ClickHouse store (issue 9): rows/s from 4 agents through the gateway into a local\n"
      "2-shard cluster (started by deploy/clickhouse-cluster.sh in a temporary directory),\n"
      "beside a bulk insert of the same rows with clickhouse-client in the same run (target:\n"
      "0.7 of it); and Top over 24 hours from ClickHouse's rollups beside the RocksDB store's.\n"
      "Prints one JSON object per figure on stdout (bench/bench_report.h); without\n"
      "clickhouse-server it says so and reports nothing.");
  if (std::optional<int> exit_code = ParseMainFlags(flag_parser, argc, argv)) {
    return *exit_code;
  }
  if (!ClickHouseCluster::Installed()) {
    std::fprintf(stderr, "clickhouse_bench: %s is not installed; nothing measured\n",
                 ClickHouseCluster::kServerBinary);
    return 0;
  }
  const std::filesystem::path scratch =
      std::filesystem::temp_directory_path() / ("flowgate-clickhouse-bench-" + MakeUuid());
  std::filesystem::create_directories(scratch);
  g_scratch = scratch;
  std::atexit(StopClusterAndRemoveScratch);
  std::optional<ClickHouseCluster> cluster;
  {
    Result<ClickHouseCluster> started = ClickHouseCluster::Start(
        (scratch / "cluster").string(), {.source_dir = FLOWGATE_SOURCE_DIR, .shards = 2});
    if (!started.ok()) Fail(started.status().message());
    cluster.emplace(std::move(started).value());
  }
  std::vector<std::unique_ptr<storage::ClickHouseHttp>> shards;
  for (const std::string& url : cluster->urls()) {
    shards.push_back(std::make_unique<storage::ClickHouseHttp>(url, 600'000));
  }

  const uint64_t end_ms = NowMs();
  const std::vector<v1::AgentIdentity> agents = Identities();
  std::vector<std::vector<v1::Event>> events;
  for (int a = 0; a < kAgents; ++a) events.push_back(MakeDay(kEventsPerAgent, a, end_ms));
  std::fprintf(stderr,
               "%d agents x %llu events (a day of flows each) into a 2-shard cluster on this "
               "machine, median of %d runs\n",
               kAgents, static_cast<unsigned long long>(kEventsPerAgent), kRepeats);

  std::vector<double> gateway_rows, bulk_rows, gateway_events;
  std::string last_database;
  for (int run = 0; run < kRepeats; ++run) {
    const std::string database = "bench_" + std::to_string(run);
    const double gateway_s = RunGateway(*cluster, database, agents, events);
    uint64_t rows = 0;
    for (const char* table : kDataTables) rows += CountRows(*shards[0], database + "." + table);
    const double bulk_s = RunBulkInsert(*cluster, database, scratch);
    uint64_t bulk_copied = 0;
    for (const char* table : kDataTables) {
      for (const auto& shard : shards) {
        bulk_copied += CountRows(*shard, database + "_bulk." + table + "_local");
      }
    }
    if (bulk_copied != rows) {
      Fail("the bulk insert holds " + std::to_string(bulk_copied) + " rows, the gateway wrote " +
           std::to_string(rows));
    }
    gateway_rows.push_back(static_cast<double>(rows) / gateway_s);
    bulk_rows.push_back(static_cast<double>(rows) / bulk_s);
    gateway_events.push_back(static_cast<double>(kAgents * kEventsPerAgent) / gateway_s);
    std::fprintf(stderr, "run %d: %llu rows, gateway %.2f s, clickhouse-client %.2f s\n", run + 1,
                 static_cast<unsigned long long>(rows), gateway_s, bulk_s);
    last_database = database;
  }
  Report({"clickhouse_bulk_insert_rows_per_s", Median(bulk_rows), "rows/s", true, std::nullopt, "",
          0, std::nullopt});
  Report({"clickhouse_gateway_rows_per_s", Median(gateway_rows), "rows/s", true, std::nullopt,
          "clickhouse_bulk_insert_rows_per_s", Median(bulk_rows), 0.7});
  Report({"clickhouse_gateway_events_per_s", Median(gateway_events), "events/s", true, std::nullopt,
          "", 0, std::nullopt});

  // Top over the day: the same events in the RocksDB store, straight through its ingest.
  Result<std::unique_ptr<storage::FlowStore>> rocks =
      storage::OpenRocksFlowStore({.path = (scratch / "rocksdb").string()});
  if (!rocks.ok()) Fail(rocks.status().message());
  for (size_t a = 0; a < agents.size(); ++a) {
    v1::AgentIdentity identity = agents[a];
    identity.set_boot_id(MakeUuid());
    uint64_t sequence = 0;
    for (size_t at = 0; at < events[a].size(); at += 512) {
      v1::Envelope envelope;
      *envelope.mutable_agent() = identity;
      envelope.set_sequence(++sequence);
      for (size_t i = at; i < std::min(at + 512, events[a].size()); ++i) {
        *envelope.add_events() = events[a][i];
      }
      if (Result<storage::AppendResult> r = (*rocks)->Append(envelope, NowMs(), nullptr); !r.ok()) {
        Fail(r.status().message());
      }
    }
  }
  Result<std::unique_ptr<storage::FlowStore>> clickhouse =
      storage::OpenClickHouseFlowStore(StoreOptions(*cluster, last_database));
  if (!clickhouse.ok()) Fail(clickhouse.status().message());
  std::vector<v1::TopEntry> rocks_top, clickhouse_top;
  const double rocks_ms = TopMs(**rocks, end_ms, &rocks_top);
  const double clickhouse_ms = TopMs(**clickhouse, end_ms, &clickhouse_top);
  bool same = rocks_top.size() == clickhouse_top.size();
  for (size_t i = 0; same && i < rocks_top.size(); ++i) {
    same = rocks_top[i].SerializeAsString() == clickhouse_top[i].SerializeAsString();
  }
  if (!same) Fail("Top from ClickHouse differs from Top from RocksDB");
  Report({"rocksdb_top_24h_rollups_ms", rocks_ms, "ms", false, std::nullopt, "", 0, std::nullopt});
  Report({"clickhouse_top_24h_rollups_ms", clickhouse_ms, "ms", false, std::nullopt,
          "rocksdb_top_24h_rollups_ms", rocks_ms, std::nullopt});

  rocks->reset();
  clickhouse->reset();
  shards.clear();
  cluster.reset();  // stops the servers before their directory goes (at exit)
  return 0;
}

}  // namespace
}  // namespace flowgate::bench

int main(int argc, char** argv) { return flowgate::bench::Main(argc, argv); }
