// Transport throughput and latency (issue 4): events/s from 1 and from 4 agents through the
// gateway (real GatewayClient -> ZeroMQ over loopback TCP -> AgentListener -> RocksDB store,
// acknowledged only once durable), beside raw RocksDB write-batch throughput for the same
// records measured in the same run (every record the gateway stores for the events, and the
// event log rows alone), and each batch's send-to-acknowledgement latency.
//
// Agents and gateway run in this process (the transport is what is measured, not capture),
// with the same classes and defaults as the binaries: batches of 512 events, 64 in flight,
// plain text (CURVE's cost is per-message crypto; see the note printed on stderr).
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "bench_report.h"
#include "export/gateway_client.h"
#include "flowgate/common/envelope_codec.h"
#include "flowgate/common/flags.h"
#include "flowgate/common/identity.h"
#include "flowgate/storage/flow_store.h"
#include "ingest/agent_listener.h"

namespace flowgate::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kEventsPerAgent = 400'000;
constexpr uint32_t kBatchEvents = 512;  // GatewayClientOptions' default
constexpr int kRepeats = 3;

// A temp dir removed at the end.
struct ScratchDir {
  ScratchDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "flowgate-bench-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    path = pattern;
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  std::filesystem::path path;
};

// What a timed window cost the whole process per event: CPU time of every thread (RocksDB's
// flushes and compactions included) and minor page faults. The faults are first touches of
// fresh memory, mostly memtables; on this kind of virtual machine each costs several
// microseconds, so a window that grows its memtables from nothing pays for them visibly.
struct ProcessCost {
  double cpu_us_per_event = 0;
  double page_faults_per_1k_events = 0;
};

class ProcessCostMeter {
 public:
  ProcessCostMeter()
      : cpu_start_s_(ProcessCpuSeconds()), faults_start_(CurrentProcessUsage().minor_faults) {}
  ProcessCost PerEvent(double events) const {
    const uint64_t faults = CurrentProcessUsage().minor_faults - faults_start_;
    return {(ProcessCpuSeconds() - cpu_start_s_) * 1e6 / events,
            static_cast<double>(faults) * 1e3 / events};
  }

 private:
  double cpu_start_s_;
  uint64_t faults_start_;
};

// Flow and purge events in turn, each flow distinct: what a busy probe sends.
std::vector<v1::Event> MakeEvents(uint64_t count, int agent) {
  std::vector<v1::Event> events;
  events.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    v1::Event& event = events.emplace_back();
    char digest[41];
    std::snprintf(digest, sizeof digest, "%08x%032llx", agent,
                  static_cast<unsigned long long>(i / 2));
    if (i % 2 == 0) {
      v1::FlowMetadata* m = event.mutable_flow()->mutable_flow();
      event.mutable_flow()->mutable_context()->set_interface("eth0");
      m->set_digest(digest);
      m->set_ip_version(4);
      m->set_ip_protocol(6);
      m->set_local_ip("10.0." + std::to_string((i >> 8) & 0xff) + "." + std::to_string(i & 0xff));
      m->set_other_ip("198.51.100.7");
      m->set_local_port(static_cast<uint32_t>(1024 + i % 60000));
      m->set_other_port(443);
      m->set_detected_protocol_name("TLS");
      m->set_detected_application_name("netify.example");
      m->set_host_server_name("example.com");
      m->set_first_seen_at(1'700'000'000'000ULL + i);
      m->set_last_seen_at(1'700'000'000'000ULL + i);
    } else {
      v1::FlowPurgeEvent* purge = event.mutable_flow_purge();
      purge->mutable_context()->set_interface("eth0");
      purge->set_reason(v1::PURGE_REASON_EXPIRED);
      purge->mutable_flow()->set_digest(digest);
      purge->mutable_flow()->set_total_packets(10);
      purge->mutable_flow()->set_total_bytes(1000);
    }
  }
  return events;
}

// Each agent's events in envelopes of 512, the agents' envelopes interleaved, decoded from
// their bytes as the gateway's socket thread does, handed to `take` in groups of `group`
// envelopes (as the gateway groups the frames waiting).
void ForEachStoreGroup(const std::vector<std::vector<v1::Event>>& events, int agents, size_t group,
                       const std::function<void(std::vector<storage::AppendItem>&&)>& take) {
  std::vector<v1::AgentIdentity> identities(static_cast<size_t>(agents));
  for (int a = 0; a < agents; ++a) {
    identities[static_cast<size_t>(a)].set_id(MakeUuid());
    identities[static_cast<size_t>(a)].set_boot_id(MakeUuid());
    identities[static_cast<size_t>(a)].set_name("bench-" + std::to_string(a));
  }
  std::vector<storage::AppendItem> items;
  std::string frame;
  for (size_t i = 0; i < kEventsPerAgent; i += kBatchEvents) {
    for (int a = 0; a < agents; ++a) {
      const std::vector<v1::Event>& list = events[static_cast<size_t>(a)];
      v1::Envelope envelope;
      envelope.set_version(v1::PROTOCOL_VERSION_1);
      *envelope.mutable_agent() = identities[static_cast<size_t>(a)];
      envelope.set_sequence(i / kBatchEvents + 1);
      for (size_t j = i; j < std::min(list.size(), i + kBatchEvents); ++j) {
        *envelope.add_events() = list[j];
      }
      envelope.SerializeToString(&frame);
      storage::AppendItem& item = items.emplace_back();
      item.received_at_ms = 1'700'000'000'000ULL;
      if (!DecodeEnvelope(frame, frame.size(), &item.envelope, &item.wire).ok()) std::exit(1);
      if (items.size() == group) take(std::exchange(items, {}));
    }
  }
  if (!items.empty()) take(std::move(items));
}

// The store alone (no transport), groups of `group` envelopes per AppendBatch: tells the
// store's cost from the transport's. Timed from the first envelope built to the last write.
// `append_cpu_us_per_event`, when given, gets the CPU time AppendBatch used per event (this
// thread's; the store's background flushes and compactions are not in it).
double RunStoreOnly(const std::vector<std::vector<v1::Event>>& events, int agents, size_t group,
                    double* append_cpu_us_per_event = nullptr) {
  ScratchDir dir;
  Result<std::unique_ptr<storage::FlowStore>> store =
      storage::OpenRocksFlowStore({.path = (dir.path / "store").string()});
  if (!store.ok()) std::exit(1);
  const auto start = Clock::now();
  double append_cpu_s = 0;
  ForEachStoreGroup(events, agents, group, [&](std::vector<storage::AppendItem>&& items) {
    const double cpu_start = ThreadCpuSeconds();
    if (!(*store)->AppendBatch(items, false).ok()) std::exit(1);
    append_cpu_s += ThreadCpuSeconds() - cpu_start;
  });
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double appended = static_cast<double>(agents) * kEventsPerAgent;
  if (append_cpu_us_per_event != nullptr) {
    *append_cpu_us_per_event = append_cpu_s * 1e6 / appended;
  }
  return appended / seconds;
}

// Raw RocksDB write batches of every record the gateway stores for these events: the
// store's own write batches (event log rows, flow records, time index, rollups, delivery
// marks, agent records), each group of 16 envelopes prepared beforehand, untimed (all of
// them at once: about 2.6 GB with 4 agents), then written back to back by one thread.
// What RocksDB alone takes to persist what the gateway persists: the ceiling for the
// transport, which adds the agents, ZeroMQ, decoding and preparing the batches.
double RunStoreWritesOnly(const std::vector<std::vector<v1::Event>>& events, int agents,
                          ProcessCost* cost = nullptr) {
  ScratchDir dir;
  Result<std::unique_ptr<storage::FlowStore>> store =
      storage::OpenRocksFlowStore({.path = (dir.path / "store").string()});
  if (!store.ok()) std::exit(1);
  struct PreparedGroup {
    std::vector<storage::AppendItem> items;
    std::unique_ptr<storage::PreparedBatch> batch;
  };
  std::vector<PreparedGroup> groups;
  ForEachStoreGroup(events, agents, 16, [&](std::vector<storage::AppendItem>&& items) {
    PreparedGroup& prepared = groups.emplace_back(PreparedGroup{std::move(items), nullptr});
    prepared.batch = (*store)->PrepareBatch(prepared.items, false);
  });
  const auto start = Clock::now();
  const ProcessCostMeter meter;
  for (PreparedGroup& group : groups) {
    if (!(*store)->CommitBatch(std::move(group.batch), group.items).ok()) std::exit(1);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double written = static_cast<double>(agents) * kEventsPerAgent;
  if (cost != nullptr) *cost = meter.PerEvent(written);
  return written / seconds;
}

struct TransportRun {
  double events_per_s = 0;
  // The whole process's (agents and gateway) per event: what capacity costs, whatever
  // share of the machine the run got.
  ProcessCost cost;
  std::vector<double> latencies_ms;
};

// `agents` clients each send their events through one gateway; timed from the first Emit
// to the last acknowledgement. With `events_per_s_per_agent` > 0 each sender emits at that
// pace (and only what that pace gives in kPacedSeconds) instead of as fast as it can.
constexpr double kPacedSeconds = 3;
TransportRun RunTransport(int agents, const std::vector<std::vector<v1::Event>>& events,
                          double events_per_s_per_agent = 0) {
  ScratchDir dir;
  Result<std::unique_ptr<storage::FlowStore>> store =
      storage::OpenRocksFlowStore({.path = (dir.path / "store").string()});
  if (!store.ok()) {
    std::fprintf(stderr, "transport_bench: %s\n", store.status().message().c_str());
    std::exit(1);
  }
  gateway::AgentListenerOptions listener_options;
  listener_options.endpoint = "tcp://127.0.0.1:*";
  Result<std::unique_ptr<gateway::AgentListener>> listener =
      gateway::AgentListener::Create(std::move(listener_options), **store, nullptr);
  if (!listener.ok()) {
    std::fprintf(stderr, "transport_bench: %s\n", listener.status().message().c_str());
    std::exit(1);
  }
  std::vector<std::unique_ptr<agent::GatewayClient>> clients;
  for (int a = 0; a < agents; ++a) {
    agent::GatewayClientOptions options;
    options.endpoint = (*listener)->bound_endpoint();
    options.identity.set_id(MakeUuid());
    options.identity.set_boot_id(MakeUuid());
    options.identity.set_name("bench-" + std::to_string(a));
    options.block_when_full = true;
    Result<std::unique_ptr<agent::GatewayClient>> client =
        agent::GatewayClient::Create(std::move(options));
    if (!client.ok()) std::exit(1);
    clients.push_back(std::move(client).value());
  }
  const size_t per_agent =
      events_per_s_per_agent > 0
          ? std::min<size_t>(kEventsPerAgent,
                             static_cast<size_t>(events_per_s_per_agent * kPacedSeconds))
          : kEventsPerAgent;
  const auto start = Clock::now();
  const ProcessCostMeter meter;
  std::vector<std::thread> senders;
  for (int a = 0; a < agents; ++a) {
    senders.emplace_back([&, a] {
      const std::vector<v1::Event>& list = events[static_cast<size_t>(a)];
      for (size_t i = 0; i < per_agent; ++i) {
        if (events_per_s_per_agent > 0 && i % 64 == 0) {
          std::this_thread::sleep_until(
              start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                          static_cast<double>(i) / events_per_s_per_agent)));
        }
        clients[a]->Emit(list[i]);
      }
      Status flushed = clients[a]->Flush(600'000);
      if (!flushed.ok()) {
        std::fprintf(stderr, "transport_bench: %s\n", flushed.message().c_str());
        std::exit(1);
      }
    });
  }
  for (std::thread& t : senders) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  TransportRun run;
  const double delivered = static_cast<double>(agents) * static_cast<double>(per_agent);
  run.events_per_s = delivered / seconds;
  run.cost = meter.PerEvent(delivered);
  for (auto& client : clients) {
    for (uint32_t us : client->TakeAckLatenciesUs()) run.latencies_ms.push_back(us / 1000.0);
  }
  return run;
}

// The same event log rows the store writes (each event as a StoredEvent with its sequence,
// arrival time and agent identity) written straight to RocksDB in one WriteBatch per 512
// events, with the store's options (rocks_flow_store.cc): what the log alone would cost.
double RunRawRocks(const std::vector<std::vector<v1::Event>>& events, int agents,
                   ProcessCost* cost = nullptr) {
  ScratchDir dir;
  rocksdb::Options options;
  options.create_if_missing = true;
  options.compression = rocksdb::kLZ4Compression;
  options.bottommost_compression = rocksdb::kLZ4Compression;
  rocksdb::BlockBasedTableOptions table_options;
  table_options.checksum = rocksdb::kXXH3;
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table_options));
  options.max_background_jobs = 2;
  rocksdb::DB* raw = nullptr;
  if (!rocksdb::DB::Open(options, (dir.path / "raw").string(), &raw).ok()) std::exit(1);
  std::unique_ptr<rocksdb::DB> db(raw);
  const auto start = Clock::now();
  const ProcessCostMeter meter;
  uint64_t sequence = 0;
  std::string value, key(8, '\0');
  const uint64_t received_at_ms = 1'700'000'000'000ULL;
  for (int a = 0; a < agents; ++a) {
    v1::AgentIdentity agent;
    agent.set_id(MakeUuid());
    agent.set_name("bench-" + std::to_string(a));
    const std::vector<v1::Event>& list = events[static_cast<size_t>(a)];
    for (size_t i = 0; i < list.size(); i += kBatchEvents) {
      rocksdb::WriteBatch batch;
      for (size_t j = i; j < std::min(list.size(), i + kBatchEvents); ++j) {
        v1::StoredEvent stored;
        stored.set_gateway_sequence(++sequence);
        stored.set_received_at(received_at_ms);
        *stored.mutable_agent() = agent;
        *stored.mutable_event() = list[j];
        stored.SerializeToString(&value);
        for (int b = 0; b < 8; ++b) key[7 - b] = static_cast<char>((sequence >> (8 * b)) & 0xff);
        (void)batch.Put(key, value);
      }
      if (!db->Write(rocksdb::WriteOptions(), &batch).ok()) std::exit(1);
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double written = static_cast<double>(agents) * kEventsPerAgent;
  if (cost != nullptr) *cost = meter.PerEvent(written);
  (void)db->Close();
  return written / seconds;
}

// For profiling one part alone (--only raw|writes|store|transport): runs just that part, once per
// agent count (or only `agents_only`'s), and prints its rate.
int ProfileOnly(const std::string& part, uint64_t agents_only,
                const std::vector<std::vector<v1::Event>>& events) {
  for (int agents : {1, 4}) {
    if (agents_only != 0 && static_cast<uint64_t>(agents) != agents_only) continue;
    double rate = 0, append_cpu_us = 0;
    std::optional<ProcessCost> cost;
    if (part == "raw") {
      rate = RunRawRocks(events, agents, &cost.emplace());
    } else if (part == "store") {
      rate = RunStoreOnly(events, agents, 16, &append_cpu_us);
    } else if (part == "writes") {
      rate = RunStoreWritesOnly(events, agents, &cost.emplace());
    } else {
      const TransportRun run = RunTransport(agents, events);
      rate = run.events_per_s;
      cost = run.cost;
    }
    std::fprintf(stderr, "%s %d agent: %.0f events/s", part.c_str(), agents, rate);
    if (append_cpu_us != 0) std::fprintf(stderr, ", AppendBatch %.3f CPU us/event", append_cpu_us);
    if (cost.has_value()) {
      std::fprintf(stderr, ", process %.3f CPU us and %.1f page faults per 1000 events",
                   cost->cpu_us_per_event, cost->page_faults_per_1k_events);
    }
    std::fprintf(stderr, "\n");
  }
  return 0;
}

int Main(int argc, char** argv) {
  std::string only;
  uint64_t agents_only = 0;
  FlagParser flag_parser(
      "flowgate_transport_bench", "flowgate_transport_bench [--only PART [--agents N]]",
      "Transport benchmarks (issue 4): events/s from 1 and from 4 agents through the gateway\n"
      "(ZeroMQ over loopback TCP, acknowledged once durable in RocksDB), beside raw RocksDB\n"
      "write batches of the same records in the same run (target: 0.5 of them, and 300,000\n"
      "events/s), CPU per event, and send-to-acknowledgement latency flat out and at half\n"
      "load. Prints one JSON object per figure on stdout (bench/bench_report.h).");
  flag_parser.AddOption(
      "only", "", "PART", "Run one part alone, e.g. to profile it: raw, writes, store or transport",
      [&](std::string_view value) {
        if (value != "raw" && value != "writes" && value != "store" && value != "transport") {
          return Status::InvalidArgument("--only is raw, writes, store or transport, not '" +
                                         std::string(value) + "'");
        }
        only = value;
        return Status::Ok();
      });
  flag_parser.AddUint("agents", "N", "With --only: just 1 or just 4 agents (default: both)",
                      &agents_only, 1, 4);
  if (std::optional<int> exit_code = ParseMainFlags(flag_parser, argc, argv, [&] {
        if (agents_only != 0 && agents_only != 1 && agents_only != 4) {
          return Status::InvalidArgument("--agents is 1 or 4");
        }
        if (agents_only != 0 && only.empty()) {
          return Status::InvalidArgument("--agents goes with --only");
        }
        return Status::Ok();
      })) {
    return *exit_code;
  }
  std::vector<std::vector<v1::Event>> events;
  for (int a = 0; a < 4; ++a) events.push_back(MakeEvents(kEventsPerAgent, a));
  if (!only.empty()) return ProfileOnly(only, agents_only, events);
  std::fprintf(stderr,
               "%llu events per agent, batches of %u, median of %d runs; plain text over "
               "loopback TCP, store without fsync (acknowledged batches survive kill -9)\n",
               static_cast<unsigned long long>(kEventsPerAgent), kBatchEvents, kRepeats);
  for (int agents : {1, 4}) {
    std::vector<double> transport, raw, writes, store_only, latencies;
    std::vector<ProcessCost> transport_cost, raw_cost, writes_cost;
    for (int i = 0; i < kRepeats; ++i) {  // alternated: each part in the same state of the host
      raw.push_back(RunRawRocks(events, agents, &raw_cost.emplace_back()));
      writes.push_back(RunStoreWritesOnly(events, agents, &writes_cost.emplace_back()));
      store_only.push_back(RunStoreOnly(events, agents, 16));
      TransportRun run = RunTransport(agents, events);
      transport.push_back(run.events_per_s);
      transport_cost.push_back(run.cost);
      latencies.insert(latencies.end(), run.latencies_ms.begin(), run.latencies_ms.end());
    }
    const std::string n = std::to_string(agents);
    // Two raw baselines: the event log rows alone, and every record the gateway stores
    // (log rows, flow records, time index, rollups, marks: 1.5 rows and 1.8 times the bytes
    // per event), which is what the transport's target is measured against.
    const std::string raw_name = "rocksdb_raw_write_batch_events_per_s_" + n + "_agent";
    const std::string writes_name = "rocksdb_store_write_batches_events_per_s_" + n + "_agent";
    Report({raw_name, Median(raw), "events/s", true, std::nullopt, "", 0, std::nullopt});
    Report({writes_name, Median(writes), "events/s", true, std::nullopt, raw_name, Median(raw),
            std::nullopt});
    Report({"store_append_batch_events_per_s_" + n + "_agent", Median(store_only), "events/s", true,
            std::nullopt, writes_name, Median(writes), std::nullopt});
    Report({"transport_durable_events_per_s_" + n + "_agent", Median(transport), "events/s", true,
            300'000.0, writes_name, Median(writes), 0.5});
    // One cost per event of the three, each beside the one before: the raw log rows, the
    // store's writes, the transport.
    auto report_cost = [&](const std::string& metric, const std::string& unit,
                           double ProcessCost::*field) {
      auto median = [&](const std::vector<ProcessCost>& costs) {
        std::vector<double> values;
        for (const ProcessCost& cost : costs) values.push_back(cost.*field);
        return Median(values);
      };
      const std::string raw_cost_name = "rocksdb_raw_write_batch_" + metric + "_" + n + "_agent";
      const std::string writes_cost_name =
          "rocksdb_store_write_batches_" + metric + "_" + n + "_agent";
      Report({raw_cost_name, median(raw_cost), unit, false, std::nullopt, "", 0, std::nullopt});
      Report({writes_cost_name, median(writes_cost), unit, false, std::nullopt, raw_cost_name,
              median(raw_cost), std::nullopt});
      Report({"transport_durable_" + metric + "_" + n + "_agent", median(transport_cost), unit,
              false, std::nullopt, writes_cost_name, median(writes_cost), std::nullopt});
    };
    // What an event costs in CPU, agents included, beside the raw writes' (their writing
    // thread and RocksDB's flushes): how much more work an event is, apart from how that
    // work spreads over the cores.
    report_cost("cpu_us_per_event", "us", &ProcessCost::cpu_us_per_event);
    // Part of that CPU: first touches of fresh memory, mostly memtables filled from nothing
    // in a window this short. The store-writes baseline touches far fewer (most likely its
    // memtables reuse the pages its prepared batches free as they are written: preparing
    // and writing in turn, as the store-only run does, touches over four times as many).
    report_cost("page_faults_per_1k_events", "faults", &ProcessCost::page_faults_per_1k_events);
    // Flat out, a batch waits behind the whole window of every agent (64 batches each), so
    // these say how deep the queue is, not how quick delivery is...
    if (!latencies.empty()) {
      Report({"transport_send_to_ack_ms_p50_" + n + "_agent", Median(latencies), "ms", false,
              std::nullopt, "", 0, std::nullopt});
      Report({"transport_send_to_ack_ms_p99_" + n + "_agent", Percentile(latencies, 99), "ms",
              false, std::nullopt, "", 0, std::nullopt});
    }
    // ...which the same agents at half the rate just measured do say: the latency a fleet
    // with headroom sees. Beside it, what the machine took from busy threads just before and
    // just after (as long as the paced run each; the worse of the two): on a shared VM the
    // host slows the cores for a few hundred milliseconds every second or two, in phases
    // that come and go over tens of seconds. Every batch in flight during a spell waits for
    // the time lost, and at half load draining what queued meanwhile takes about as long
    // again, so a p99 over the target beside a long spell is the host's.
    const HostSlowSpells before = MeasureHostSlowSpells(kPacedSeconds);
    const double paced_rate = Median(transport) / 2 / agents;
    TransportRun paced = RunTransport(agents, events, paced_rate);
    const HostSlowSpells after = MeasureHostSlowSpells(kPacedSeconds);
    const HostSlowSpells& spells = before.longest_lost_ms >= after.longest_lost_ms ? before : after;
    const std::string spell_name = "host_slow_spell_lost_ms_longest_" + n + "_agent";
    Report({spell_name, spells.longest_lost_ms, "ms", false, std::nullopt, "", 0, std::nullopt});
    Report({"host_slow_spell_lost_percent_" + n + "_agent", spells.lost_fraction * 100, "%", false,
            std::nullopt, "", 0, std::nullopt});
    if (!paced.latencies_ms.empty()) {
      std::fprintf(stderr, "paced run: %d x %.0f events/s, %zu batches\n", agents, paced_rate,
                   paced.latencies_ms.size());
      Report({"transport_send_to_ack_ms_p50_half_load_" + n + "_agent", Median(paced.latencies_ms),
              "ms", false, std::nullopt, "", 0, std::nullopt});
      Report({"transport_send_to_ack_ms_p99_half_load_" + n + "_agent",
              Percentile(paced.latencies_ms, 99), "ms", false, 100.0, spell_name,
              spells.longest_lost_ms, std::nullopt});
    }
  }
  return 0;
}

}  // namespace
}  // namespace flowgate::bench

int main(int argc, char** argv) { return flowgate::bench::Main(argc, argv); }
