// ClickHouse implementation of FlowStore.
//
// Tables, in options.database. Without a cluster each is a MergeTree table on the one
// server; with one, each shard holds <name>_local and every server a Distributed table
// <name> over the cluster, which queries read. An agent's rows all go to one shard.
//   flow_parts  per flow and applied batch, the batch's contribution to the flow: a
//               FlowRecord merge operand exactly as the RocksDB store merges (without the
//               key's fields), the batch identity (agent, boot, sequence), the arrival
//               time, the part's activity times and the dimensions of its metadata.
//               Partitioned by the day of the part's last activity, so retention drops days.
//   rollups     per-minute sums (see rollups.h) per applied batch: one row per dimension and
//               minute, the names and their sums in arrays (a batch touches one or two
//               minutes but hundreds of names: one row per name made ingest and Top pay for
//               collapsing rows name by name); by day of the minute.
//   marks       (agent, boot) -> the highest sequence applied (max over rows).
//   agents      agent id -> AgentRecord; the newest row wins.
//   retention   the retention horizon (max over rows).
//
// Exactly once without transactions: ClickHouse has no atomic write across tables (and
// insert deduplication needs replicated tables), so a batch's rows are written before its
// mark, and a failure between them makes the agent resend a batch whose rows may be stored
// already. Every row therefore carries its batch's identity, and every query collapses rows
// of one identity before it merges or sums (GROUP BY ... any()): a batch stored twice counts
// once in every answer. ReplacingMergeTree also removes such twins on disk in time.
//
// The merged event log is kept in memory only (the newest live_log_events events), for
// gRPC Subscribe to resume from: a gateway serves its own agents' live stream, and history
// is what the flows and rollups hold.
#include <google/protobuf/arena.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "agent_registry.h"
#include "clickhouse_http.h"
#include "flow_record_merge.h"
#include "flowgate/storage/clickhouse_store.h"
#include "rollups.h"

namespace flowgate::storage {
namespace {

// "(a, b, ...)" of SQL literals or tuples, for IN.
std::string SqlList(const std::set<std::string>& items) {
  std::string list = "(";
  for (const std::string& item : items) list += (list.size() == 1 ? "" : ", ") + item;
  return list + ")";
}

// The SQL tuple literal ('a', 'b').
std::string SqlPair(std::string_view a, std::string_view b) {
  return "(" + SqlQuote(a) + ", " + SqlQuote(b) + ")";
}

// The shard of an agent's rows: FNV-1a of its id, so every gateway of the fleet picks the
// same shard for it (given the same --clickhouse-url order).
size_t ShardOf(std::string_view agent_id, size_t shards) {
  return static_cast<size_t>(Fnv1a64(agent_id) % shards);
}

struct TableSchema {
  const char* name;
  const char* columns;
  const char* engine;    // with ORDER BY / PARTITION BY
  const char* sharding;  // the Distributed table's sharding expression
};

constexpr TableSchema kTables[] = {
    {"flow_parts",
     "day Date, agent_id String, digest String, boot_id String, batch_sequence UInt64, "
     "received_ms UInt64, first_ms UInt64, last_ms UInt64, has_metadata UInt8, "
     "application String, protocol String, host String, operand String",
     "ReplacingMergeTree() PARTITION BY toYYYYMMDD(day) "
     "ORDER BY (agent_id, digest, boot_id, batch_sequence)",
     "sipHash64(agent_id)"},
    {"rollups",
     "day Date, dimension UInt8, minute_ms UInt64, agent_id String, boot_id String, "
     "batch_sequence UInt64, names Array(String), bytes Array(UInt64), packets Array(UInt64), "
     "flows Array(UInt64)",
     "ReplacingMergeTree() PARTITION BY toYYYYMMDD(day) "
     "ORDER BY (dimension, minute_ms, agent_id, boot_id, batch_sequence)",
     "sipHash64(agent_id)"},
    {"marks", "agent_id String, boot_id String, sequence UInt64",
     "ReplacingMergeTree(sequence) ORDER BY (agent_id, boot_id)", "sipHash64(agent_id)"},
    {"agents", "agent_id String, updated_ms UInt64, record String",
     "ReplacingMergeTree(updated_ms) ORDER BY agent_id", "sipHash64(agent_id)"},
    {"retention", "retained_from_ms UInt64", "MergeTree() ORDER BY retained_from_ms", "rand()"},
};

// The tables that hold time ranges, dropped by day.
constexpr const char* kDatedTables[] = {"flow_parts", "rollups"};

class ClickHouseFlowStore final : public FlowStore {
 public:
  static Result<std::unique_ptr<FlowStore>> Open(const ClickHouseStoreOptions& options);

  Status AppendBatch(std::vector<AppendItem>& items, bool want_stored) override;
  Result<std::optional<v1::FlowRecord>> GetFlow(const std::string& agent_id,
                                                const std::string& digest) override;
  Status ScanFlows(const std::function<bool(const v1::FlowRecord&)>& visit) override;
  Status ScanActiveFlows(uint64_t from_ms, uint64_t to_ms,
                         const std::function<bool(const v1::FlowRecord&)>& visit) override;
  Status ScanRollups(RollupDimension dimension, uint64_t from_ms, uint64_t to_ms,
                     const std::function<bool(const RollupRow&)>& visit) override;
  bool has_rollups() const override { return true; }
  Status ReadEvents(uint64_t after_sequence, size_t limit,
                    std::vector<v1::StoredEvent>* out) override;
  Result<std::vector<v1::AgentRecord>> ListAgents() override;
  Status RecordRejection(const v1::AgentIdentity& agent, const std::string& reason,
                         const std::string& address, uint64_t received_at_ms) override;
  uint64_t last_sequence() const override;
  Result<DropStats> DropBefore(uint64_t cutoff_ms) override;
  Result<uint64_t> OldestDataMs() override;
  Result<uint64_t> DiskBytes() override;
  Result<StoreHealth> Health() override;
  uint64_t retained_from_ms() const override { return retained_from_ms_.load(); }

 private:
  ClickHouseFlowStore() = default;
  bool clustered() const { return !options_.cluster.empty(); }
  // What queries read (the Distributed table with a cluster) and what a shard holds.
  std::string ReadTable(std::string_view name) const {
    return options_.database + "." + std::string(name);
  }
  std::string LocalTable(std::string_view name) const {
    return options_.database + "." + LocalName(name);
  }
  std::string LocalName(std::string_view name) const {
    return std::string(name) + (clustered() ? "_local" : "");
  }
  ClickHouseHttp& ShardFor(std::string_view agent_id) {
    return *servers_[ShardOf(agent_id, servers_.size())];
  }
  // Runs a query on the first server that answers (each has the Distributed tables).
  Result<std::string> Read(const std::string& sql);
  Status CreateSchema();
  Status LoadState();
  // Reads the marks and registry records the group needs from the cluster: agent boots
  // this gateway has not seen, and boots whose next batch looks out of order here (another
  // gateway may have applied the batches between).
  Status FetchMarksAndAgents(const std::vector<AppendItem>& items);
  // Reads the dimensions of the flows the group reports traffic for and the rollup sums do
  // not know, so that they are attributed as the RocksDB store attributes them.
  Status FetchDimensions(const std::vector<AppendItem>& items);
  Status AppendGroup(std::vector<AppendItem>& items, bool want_stored);
  // Inserts each table's rows into each shard's local table, all at once; the first error.
  Status InsertAll(const std::vector<std::pair<const char*, std::vector<std::string>*>>& tables);
  // The newest registry record of each agent `where` (SQL, "" for all) selects.
  Result<std::map<std::string, v1::AgentRecord>> FetchAgents(const std::string& where);
  // Merges the flow parts that `where` selects per flow, for flows whose merged activity
  // `having` accepts (both SQL, may be empty), in (agent id, digest) order.
  Status ReadFlows(const std::string& where, const std::string& having,
                   const std::function<bool(const v1::FlowRecord&)>& visit);

  ClickHouseStoreOptions options_;
  std::vector<std::unique_ptr<ClickHouseHttp>> servers_;  // one per shard

  // Ingest thread only.
  std::unordered_map<std::string, uint64_t> marks_cache_;  // agent id '\0' boot id -> mark
  std::unordered_map<std::string, FlowDimensions> fetched_dimensions_;
  KeptArenaBlock batch_arena_block_{1u << 20};  // an agent batch's flow records
  // Rows of a group by shard, per table; kept for the next group's capacity (growing fresh
  // buffers to megabytes each group cost page faults).
  std::vector<std::string> flow_rows_, rollup_rows_, mark_rows_, agent_rows_;
  RollupAccumulator rollup_sums_{[this](const std::string& agent_id, const std::string& digest) {
    auto it = fetched_dimensions_.find(JoinKey(agent_id, digest));
    return it == fetched_dimensions_.end() ? std::nullopt
                                           : std::optional<FlowDimensions>(it->second);
  }};
  std::mutex ingest_mutex_;                              // one group at a time
  std::chrono::steady_clock::time_point last_insert_{};  // ingest thread only

  mutable std::mutex mutex_;
  // The agents this gateway served since start, as it last wrote them.
  std::unordered_map<std::string, v1::AgentRecord> registry_;  // guarded by mutex_
  // The live log by agent batch: the batch's events moved out of its envelope whole, the
  // identity once (a StoredEvent per event cost a copy of the identity each).
  struct LiveBatch {
    uint64_t first_sequence = 0;
    uint64_t received_at_ms = 0;
    v1::AgentIdentity agent;
    google::protobuf::RepeatedPtrField<v1::Event> events;
  };
  std::deque<LiveBatch> live_log_;  // guarded by mutex_
  size_t live_log_size_ = 0;        // events; guarded by mutex_
  uint64_t last_sequence_ = 0;      // guarded by mutex_
  std::atomic<uint64_t> retained_from_ms_{0};
};

Result<std::unique_ptr<FlowStore>> ClickHouseFlowStore::Open(
    const ClickHouseStoreOptions& options) {
  if (options.urls.empty()) return Status::InvalidArgument("no ClickHouse URL given");
  if (options.cluster.empty() && options.urls.size() != 1) {
    return Status::InvalidArgument(
        "several ClickHouse URLs need a cluster name (one URL per shard of it)");
  }
  if (options.database.empty() ||
      options.database.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                         "0123456789_") != std::string::npos) {
    return Status::InvalidArgument("ClickHouse database name '" + options.database +
                                   "' is not a plain identifier");
  }
  for (const std::string& url : options.urls) {
    if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
      return Status::InvalidArgument("ClickHouse URL '" + url + "' is not http://HOST:PORT");
    }
  }
  std::unique_ptr<ClickHouseFlowStore> store(new ClickHouseFlowStore());
  store->options_ = options;
  for (std::string url : options.urls) {
    while (!url.empty() && url.back() == '/') url.pop_back();
    store->servers_.push_back(std::make_unique<ClickHouseHttp>(url, options.timeout_ms));
  }
  FLOWGATE_RETURN_IF_ERROR(store->CreateSchema());
  FLOWGATE_RETURN_IF_ERROR(store->LoadState());
  return std::unique_ptr<FlowStore>(std::move(store));
}

Status ClickHouseFlowStore::CreateSchema() {
  for (const std::unique_ptr<ClickHouseHttp>& server : servers_) {
    if (clustered()) {
      Result<std::string> shards =
          server->Query("SELECT uniqExact(shard_num) FROM system.clusters WHERE cluster = " +
                        SqlQuote(options_.cluster));
      if (!shards.ok()) return shards.status();
      const std::string count = shards->substr(0, shards->find('\n'));
      if (count != std::to_string(servers_.size())) {
        return Status::InvalidArgument(
            "ClickHouse at " + server->url() + " knows cluster '" + options_.cluster + "' with " +
            (count == "0" ? std::string("no shards (is it in <remote_servers>?)")
                          : count + " shards") +
            ", but " + std::to_string(servers_.size()) + " URLs (one per shard) were given");
      }
    }
    FLOWGATE_RETURN_IF_ERROR(server->Execute("CREATE DATABASE IF NOT EXISTS " + options_.database));
    for (const TableSchema& table : kTables) {
      FLOWGATE_RETURN_IF_ERROR(server->Execute("CREATE TABLE IF NOT EXISTS " +
                                               LocalTable(table.name) + " (" + table.columns +
                                               ") ENGINE = " + table.engine));
      if (clustered()) {
        FLOWGATE_RETURN_IF_ERROR(server->Execute(
            "CREATE TABLE IF NOT EXISTS " + ReadTable(table.name) + " AS " +
            LocalTable(table.name) + " ENGINE = Distributed(" + options_.cluster + ", " +
            options_.database + ", " + LocalName(table.name) + ", " + table.sharding + ")"));
      }
    }
  }
  return Status::Ok();
}

Status ClickHouseFlowStore::LoadState() {
  Result<std::string> horizon =
      Read("SELECT max(retained_from_ms) FROM " + ReadTable("retention") + " FORMAT RowBinary");
  if (!horizon.ok()) return horizon.status();
  RowBinaryReader reader(*horizon);
  uint64_t value = 0;
  if (reader.ReadUInt64(&value)) retained_from_ms_ = value;
  return Status::Ok();
}

Result<std::string> ClickHouseFlowStore::Read(const std::string& sql) {
  Status last = Status::Unavailable("no ClickHouse server");
  for (const std::unique_ptr<ClickHouseHttp>& server : servers_) {
    Result<std::string> answer = server->Query(sql);
    if (answer.ok() || answer.status().code() != StatusCode::kUnavailable) return answer;
    last = answer.status();
  }
  return last;
}

Status ClickHouseFlowStore::AppendBatch(std::vector<AppendItem>& items, bool want_stored) {
  std::lock_guard ingest(ingest_mutex_);
  Status status = AppendGroup(items, want_stored);
  if (!status.ok()) {
    rollup_sums_.Discard();
    FailGroup(status, items);
  } else {
    rollup_sums_.EndGroup();
  }
  fetched_dimensions_.clear();
  return status;
}

Status ClickHouseFlowStore::FetchMarksAndAgents(const std::vector<AppendItem>& items) {
  std::set<std::string> boots, agents;  // SQL tuples / literals to ask for
  std::unordered_set<std::string> asked;
  // The mark each boot would have after the group's earlier batches, by the cache.
  std::unordered_map<std::string, uint64_t> expected;
  for (const AppendItem& item : items) {
    const v1::AgentIdentity& agent = item.envelope.agent();
    if (agent.id().empty() || agent.boot_id().empty()) continue;
    const std::string key = JoinKey(agent.id(), agent.boot_id());
    auto cached = marks_cache_.find(key);
    const uint64_t sequence = item.envelope.sequence();
    bool ask = cached == marks_cache_.end();
    if (!ask) {
      uint64_t& mark = expected.try_emplace(key, cached->second).first->second;
      if (sequence == mark + 1 || item.envelope.resend_floor() == sequence) {
        mark = std::max(mark, sequence);
      } else if (sequence > mark + 1) {
        ask = true;  // looks out of order here: another gateway may have applied the gap
      }
    }
    if (ask && asked.insert(key).second) {
      boots.insert(SqlPair(agent.id(), agent.boot_id()));
    }
    std::lock_guard lock(mutex_);
    if (!registry_.contains(agent.id())) agents.insert(SqlQuote(agent.id()));
  }
  if (!boots.empty()) {
    Result<std::string> answer =
        Read("SELECT agent_id, boot_id, max(sequence) FROM " + ReadTable("marks") +
             " WHERE (agent_id, boot_id) IN " + SqlList(boots) +
             " GROUP BY agent_id, boot_id FORMAT RowBinary");
    if (!answer.ok()) return answer.status();
    RowBinaryReader reader(*answer);
    while (!reader.done()) {
      std::string_view agent_id, boot_id;
      uint64_t mark = 0;
      if (!reader.ReadString(&agent_id) || !reader.ReadString(&boot_id) ||
          !reader.ReadUInt64(&mark)) {
        return Status::Corruption("ClickHouse answered marks that do not parse");
      }
      uint64_t& known = marks_cache_[JoinKey(agent_id, boot_id)];
      known = std::max(known, mark);
    }
    // A boot the cluster has no mark for starts at 0.
    for (const std::string& key : asked) marks_cache_.try_emplace(key, 0);
  }
  if (!agents.empty()) {
    Result<std::map<std::string, v1::AgentRecord>> records =
        FetchAgents("agent_id IN " + SqlList(agents));
    if (!records.ok()) return records.status();
    std::lock_guard lock(mutex_);
    for (auto& [agent_id, record] : *records) registry_.try_emplace(agent_id, std::move(record));
  }
  return Status::Ok();
}

Status ClickHouseFlowStore::FetchDimensions(const std::vector<AppendItem>& items) {
  std::set<std::string> wanted;
  // Flows a `flow` event of the group described before the event at hand: the rollup sums
  // know those by then, as they do when the RocksDB store meets the same events. Digests by
  // agent, as views into the envelopes (this runs over every event of the group).
  std::unordered_map<std::string_view, std::unordered_set<std::string_view>> described;
  for (const AppendItem& item : items) {
    const std::string& agent_id = item.envelope.agent().id();
    std::unordered_set<std::string_view>& agent_described = described[agent_id];
    for (const v1::Event& event : item.envelope.events()) {
      if (event.has_flow()) {
        agent_described.insert(event.flow().flow().digest());
        continue;
      }
      const v1::FlowCounters* counters = event.has_flow_stats()   ? &event.flow_stats().flow()
                                         : event.has_flow_purge() ? &event.flow_purge().flow()
                                                                  : nullptr;
      if (counters == nullptr || agent_described.contains(counters->digest()) ||
          rollup_sums_.Knows(agent_id, counters->digest())) {
        continue;
      }
      wanted.insert(SqlPair(agent_id, counters->digest()));
    }
  }
  if (wanted.empty()) return Status::Ok();
  Result<std::string> answer = Read(
      "SELECT agent_id, digest, argMax(application, (received_ms, batch_sequence)), "
      "argMax(protocol, (received_ms, batch_sequence)), argMax(host, (received_ms, "
      "batch_sequence)) FROM " +
      ReadTable("flow_parts") + " WHERE has_metadata = 1 AND (agent_id, digest) IN " +
      SqlList(wanted) + " GROUP BY agent_id, digest FORMAT RowBinary");
  if (!answer.ok()) return answer.status();
  RowBinaryReader reader(*answer);
  while (!reader.done()) {
    std::string_view agent_id, digest, application, protocol, host;
    if (!reader.ReadString(&agent_id) || !reader.ReadString(&digest) ||
        !reader.ReadString(&application) || !reader.ReadString(&protocol) ||
        !reader.ReadString(&host)) {
      return Status::Corruption("ClickHouse answered flow dimensions that do not parse");
    }
    fetched_dimensions_[JoinKey(agent_id, digest)] =
        FlowDimensions{std::string(application), std::string(protocol), std::string(host)};
  }
  return Status::Ok();
}

Status ClickHouseFlowStore::AppendGroup(std::vector<AppendItem>& items, bool want_stored) {
  FLOWGATE_RETURN_IF_ERROR(FetchMarksAndAgents(items));
  FLOWGATE_RETURN_IF_ERROR(FetchDimensions(items));

  struct AgentUpdate {
    v1::AgentRecord record;
    bool persist = false;
  };
  std::unordered_map<std::string, AgentUpdate> agents;
  std::unordered_map<std::string, uint64_t> marks;  // after the group
  for (std::vector<std::string>* rows : {&flow_rows_, &rollup_rows_, &mark_rows_, &agent_rows_}) {
    rows->resize(servers_.size());
    for (std::string& shard_rows : *rows) shard_rows.clear();
  }
  uint64_t sequence;
  {
    std::lock_guard lock(mutex_);
    sequence = last_sequence_ + 1;
  }
  const uint64_t first_sequence = sequence;
  std::vector<LiveBatch> logged;  // for the live log once stored
  std::string buffer;

  for (AppendItem& item : items) {
    item.stored.clear();
    v1::Envelope& envelope = item.envelope;
    const v1::AgentIdentity& agent = envelope.agent();
    if (Status identified = CheckBatchIdentity(envelope); !identified.ok()) {
      item.result = identified;
      continue;
    }
    const std::string mark_key = JoinKey(agent.id(), agent.boot_id());
    uint64_t mark = 0;
    if (auto it = marks.find(mark_key); it != marks.end()) {
      mark = it->second;
    } else if (auto cached = marks_cache_.find(mark_key); cached != marks_cache_.end()) {
      mark = cached->second;
    }
    auto [update_it, fresh] = agents.try_emplace(agent.id());
    AgentUpdate& update = update_it->second;
    if (fresh) {
      std::lock_guard lock(mutex_);
      if (auto known = registry_.find(agent.id()); known != registry_.end()) {
        update.record = known->second;
      }
    }
    const BatchVerdict verdict = JudgeBatch(item, mark, &update.record);
    item.result = verdict.result;
    update.persist = update.persist || verdict.persist;
    if (!verdict.apply) continue;
    marks[mark_key] = envelope.sequence();

    const size_t shard = ShardOf(agent.id(), servers_.size());
    google::protobuf::Arena arena(batch_arena_block_.options());
    std::map<std::string, v1::FlowRecord*> flows;  // digest -> this batch's part
    v1::AgentIdentity stored_agent;
    stored_agent.set_id(agent.id());
    stored_agent.set_name(agent.name());
    stored_agent.set_site(agent.site());
    if (want_stored) item.stored.reserve(static_cast<size_t>(envelope.events_size()));
    LiveBatch& live = logged.emplace_back();
    live.first_sequence = sequence;
    live.received_at_ms = item.received_at_ms;
    live.agent = stored_agent;
    for (v1::Event& event : *envelope.mutable_events()) {
      if (const std::string* digest = FlowEventDigest(event)) {
        auto [flow, added] = flows.try_emplace(*digest, nullptr);
        if (added) {
          flow->second = google::protobuf::Arena::CreateMessage<v1::FlowRecord>(&arena);
          *flow->second->mutable_agent() = stored_agent;
        }
        FoldFlowEvent(event, flow->second);
      }
      rollup_sums_.Add(agent.id(), event, item.received_at_ms);
      if (event.has_agent_status()) *update.record.mutable_last_status() = event.agent_status();
      if (want_stored) {
        v1::StoredEvent& out = item.stored.emplace_back();
        out.set_gateway_sequence(sequence);
        out.set_received_at(item.received_at_ms);
        *out.mutable_agent() = stored_agent;
        *out.mutable_event() = event;
      }
      ++sequence;
    }
    // Into the live log without a copy: the envelope is done with its events.
    live.events.Swap(envelope.mutable_events());
    std::string& rows = flow_rows_[shard];
    for (const auto& [digest, flow] : flows) {
      const FlowActivity activity = FlowActivityOf(*flow);
      const uint64_t last_ms = activity.last_ms != 0 ? activity.last_ms : item.received_at_ms;
      PutRowBinaryDateOf(last_ms, &rows);
      PutRowBinaryString(agent.id(), &rows);
      PutRowBinaryString(digest, &rows);
      PutRowBinaryString(agent.boot_id(), &rows);
      PutRowBinaryUInt64(envelope.sequence(), &rows);
      PutRowBinaryUInt64(item.received_at_ms, &rows);
      PutRowBinaryUInt64(activity.first_ms != 0 ? activity.first_ms : last_ms, &rows);
      PutRowBinaryUInt64(last_ms, &rows);
      const v1::FlowMetadata& m = flow->metadata();
      PutRowBinaryUInt8(flow->has_metadata() ? 1 : 0, &rows);
      PutRowBinaryString(m.detected_application_name(), &rows);
      PutRowBinaryString(m.detected_protocol_name(), &rows);
      PutRowBinaryString(m.host_server_name(), &rows);
      StripFlowKeyFields(flow);
      flow->SerializeToString(&buffer);
      PutRowBinaryString(buffer, &rows);
    }
    // The batch's sums by (dimension, minute), each one row of arrays.
    std::string& out = rollup_rows_[shard];
    rollup_sums_.DrainByMinute([&](RollupDimension dimension, uint64_t minute_ms,
                                   const std::vector<RollupRow>& minute_rows) {
      PutRowBinaryDateOf(minute_ms, &out);
      PutRowBinaryUInt8(static_cast<uint8_t>(RollupDimensionCode(dimension)), &out);
      PutRowBinaryUInt64(minute_ms, &out);
      PutRowBinaryString(agent.id(), &out);
      PutRowBinaryString(agent.boot_id(), &out);
      PutRowBinaryUInt64(envelope.sequence(), &out);
      PutRowBinaryArraySize(minute_rows.size(), &out);
      for (const RollupRow& row : minute_rows) PutRowBinaryString(row.value, &out);
      for (uint64_t RollupCounters::*field :
           {&RollupCounters::bytes, &RollupCounters::packets, &RollupCounters::flows}) {
        PutRowBinaryArraySize(minute_rows.size(), &out);
        for (const RollupRow& row : minute_rows) PutRowBinaryUInt64(row.counters.*field, &out);
      }
    });
  }
  for (const auto& [mark_key, mark] : marks) {
    const size_t separator = mark_key.find('\0');
    const std::string_view agent_id = std::string_view(mark_key).substr(0, separator);
    std::string& out = mark_rows_[ShardOf(agent_id, servers_.size())];
    PutRowBinaryString(agent_id, &out);
    PutRowBinaryString(std::string_view(mark_key).substr(separator + 1), &out);
    PutRowBinaryUInt64(mark, &out);
  }
  const uint64_t now_ms = WallClockMs();
  for (const auto& [agent_id, update] : agents) {
    if (!update.persist) continue;
    std::string& out = agent_rows_[ShardOf(agent_id, servers_.size())];
    PutRowBinaryString(agent_id, &out);
    PutRowBinaryUInt64(now_ms, &out);
    PutRowBinaryString(update.record.SerializeAsString(), &out);
  }

  // ClickHouse wants few large inserts (each is a part on disk, merged later; too many
  // parts a partition and it refuses inserts): groups are spaced at least
  // min_insert_interval_ms apart, and batches arriving meanwhile make the next group larger.
  const auto next_insert =
      last_insert_ + std::chrono::milliseconds(options_.min_insert_interval_ms);
  if (std::chrono::steady_clock::now() < next_insert) std::this_thread::sleep_until(next_insert);
  last_insert_ = std::chrono::steady_clock::now();

  // Data first, the registry and marks last: a batch whose mark is written is wholly
  // stored. Each stage's inserts go out at once (they are independent), so a group waits
  // for the slowest shard, not for the sum of them.
  FLOWGATE_RETURN_IF_ERROR(InsertAll({{"flow_parts", &flow_rows_}, {"rollups", &rollup_rows_}}));
  FLOWGATE_RETURN_IF_ERROR(InsertAll({{"agents", &agent_rows_}, {"marks", &mark_rows_}}));

  for (const auto& [mark_key, mark] : marks) marks_cache_[mark_key] = mark;
  std::lock_guard lock(mutex_);
  for (auto& [agent_id, update] : agents) registry_[agent_id] = std::move(update.record);
  last_sequence_ += sequence - first_sequence;
  for (LiveBatch& batch : logged) {
    live_log_size_ += static_cast<size_t>(batch.events.size());
    live_log_.push_back(std::move(batch));
  }
  while (!live_log_.empty() &&
         live_log_size_ - static_cast<size_t>(live_log_.front().events.size()) >=
             options_.live_log_events) {
    live_log_size_ -= static_cast<size_t>(live_log_.front().events.size());
    live_log_.pop_front();
  }
  return Status::Ok();
}

Status ClickHouseFlowStore::InsertAll(
    const std::vector<std::pair<const char*, std::vector<std::string>*>>& tables) {
  std::vector<std::future<Status>> inserts;
  for (const auto& [table, rows] : tables) {
    for (size_t shard = 0; shard < servers_.size(); ++shard) {
      const std::string& data = (*rows)[shard];
      if (data.empty()) continue;
      inserts.push_back(
          std::async(std::launch::async, [this, shard, &data, name = LocalTable(table)] {
            return servers_[shard]->Insert(name, data);
          }));
    }
  }
  Status first_error = Status::Ok();
  for (std::future<Status>& insert : inserts) {
    Status status = insert.get();
    if (first_error.ok() && !status.ok()) first_error = std::move(status);
  }
  return first_error;
}

Status ClickHouseFlowStore::ReadFlows(const std::string& where, const std::string& having,
                                      const std::function<bool(const v1::FlowRecord&)>& visit) {
  // Inner: one row per batch identity (collapsing a batch stored twice); outer: a flow's
  // parts in one row, merged here by the same function as RocksDB's merge operator.
  Result<std::string> answer = Read(
      "SELECT agent_id, digest, groupArray(part_received), groupArray(batch_sequence), "
      "groupArray(part_operand) FROM (SELECT agent_id, digest, boot_id, batch_sequence, "
      "min(received_ms) AS part_received, any(operand) AS part_operand, "
      "min(first_ms) AS part_first, max(last_ms) AS part_last FROM " +
      ReadTable("flow_parts") + (where.empty() ? "" : " WHERE " + where) +
      " GROUP BY agent_id, digest, boot_id, batch_sequence) GROUP BY agent_id, digest" +
      (having.empty() ? "" : " HAVING " + having) + " ORDER BY agent_id, digest FORMAT RowBinary");
  if (!answer.ok()) return answer.status();
  RowBinaryReader reader(*answer);
  struct Part {
    uint64_t received_ms = 0;
    uint64_t sequence = 0;
    std::string_view operand;
  };
  std::vector<Part> parts;
  v1::FlowRecord merged, part;
  const Status malformed = Status::Corruption("ClickHouse answered flow parts that do not parse");
  while (!reader.done()) {
    std::string_view agent_id, digest;
    uint64_t count = 0;
    if (!reader.ReadString(&agent_id) || !reader.ReadString(&digest) ||
        !reader.ReadArraySize(&count)) {
      return malformed;
    }
    parts.assign(count, Part{});
    for (Part& p : parts) {
      if (!reader.ReadUInt64(&p.received_ms)) return malformed;
    }
    if (!reader.ReadArraySize(&count) || count != parts.size()) return malformed;
    for (Part& p : parts) {
      if (!reader.ReadUInt64(&p.sequence)) return malformed;
    }
    if (!reader.ReadArraySize(&count) || count != parts.size()) return malformed;
    for (Part& p : parts) {
      if (!reader.ReadString(&p.operand)) return malformed;
    }
    // In arrival order, as RocksDB applied the operands.
    std::sort(parts.begin(), parts.end(), [](const Part& a, const Part& b) {
      return std::tie(a.received_ms, a.sequence) < std::tie(b.received_ms, b.sequence);
    });
    merged.Clear();
    for (const Part& p : parts) {
      if (!part.ParseFromArray(p.operand.data(), static_cast<int>(p.operand.size()))) {
        return Status::Corruption("flow part of " + std::string(digest) + " does not parse");
      }
      MergeFlowRecord(part, &merged);
    }
    RestoreFlowKeyFields(agent_id, digest, &merged);
    if (!visit(merged)) break;
  }
  return Status::Ok();
}

Result<std::optional<v1::FlowRecord>> ClickHouseFlowStore::GetFlow(const std::string& agent_id,
                                                                   const std::string& digest) {
  std::optional<v1::FlowRecord> found;
  FLOWGATE_RETURN_IF_ERROR(
      ReadFlows("agent_id = " + SqlQuote(agent_id) + " AND digest = " + SqlQuote(digest), "",
                [&](const v1::FlowRecord& flow) {
                  found = flow;
                  return false;
                }));
  return found;
}

Status ClickHouseFlowStore::ScanFlows(const std::function<bool(const v1::FlowRecord&)>& visit) {
  return ReadFlows("", "", visit);
}

Status ClickHouseFlowStore::ScanActiveFlows(
    uint64_t from_ms, uint64_t to_ms, const std::function<bool(const v1::FlowRecord&)>& visit) {
  // Only flows with a part active at or after from_ms can be active in the range: merging
  // just those keeps a query over the last hour from reading every flow ever stored.
  // GLOBAL: the list is made once and sent to every shard, whichever shard holds a flow.
  const std::string where = from_ms == 0
                                ? std::string()
                                : "(agent_id, digest) GLOBAL IN (SELECT agent_id, digest FROM " +
                                      ReadTable("flow_parts") +
                                      " WHERE last_ms >= " + std::to_string(from_ms) + ")";
  // A coarse test on the parts' times (never drops an active flow), then the exact one.
  std::string having = "max(part_last) >= " + std::to_string(from_ms);
  if (to_ms != 0) having += " AND min(part_first) < " + std::to_string(to_ms);
  return ReadFlows(where, having, [&](const v1::FlowRecord& flow) {
    return !FlowActiveIn(flow, from_ms, to_ms) || visit(flow);
  });
}

Status ClickHouseFlowStore::ScanRollups(RollupDimension dimension, uint64_t from_ms, uint64_t to_ms,
                                        const std::function<bool(const RollupRow&)>& visit) {
  // The minutes that overlap [from_ms, to_ms), as the RocksDB store reads them.
  std::string range = "minute_ms >= " + std::to_string(from_ms / kRollupMinuteMs * kRollupMinuteMs);
  if (to_ms != 0) {
    range += " AND minute_ms < " +
             std::to_string((to_ms + kRollupMinuteMs - 1) / kRollupMinuteMs * kRollupMinuteMs);
  }
  // Inner: one row per batch identity (collapsing a batch stored twice); then its names.
  Result<std::string> answer = Read(
      "SELECT minute_ms, agent_id, name, sum(b), sum(p), sum(f) FROM (SELECT minute_ms, "
      "agent_id, any(names) AS n, any(bytes) AS bs, any(packets) AS ps, any(flows) AS fs FROM " +
      ReadTable("rollups") + " WHERE dimension = " +
      std::to_string(static_cast<int>(RollupDimensionCode(dimension))) + " AND " + range +
      " GROUP BY minute_ms, agent_id, boot_id, batch_sequence) ARRAY JOIN n AS name, bs AS b, "
      "ps AS p, fs AS f GROUP BY minute_ms, agent_id, name ORDER BY minute_ms, agent_id, name "
      "FORMAT RowBinary");
  if (!answer.ok()) return answer.status();
  RowBinaryReader reader(*answer);
  RollupRow row;
  while (!reader.done()) {
    if (!reader.ReadUInt64(&row.minute_ms) || !reader.ReadString(&row.agent_id) ||
        !reader.ReadString(&row.value) || !reader.ReadUInt64(&row.counters.bytes) ||
        !reader.ReadUInt64(&row.counters.packets) || !reader.ReadUInt64(&row.counters.flows)) {
      return Status::Corruption("ClickHouse answered rollups that do not parse");
    }
    if (!visit(row)) break;
  }
  return Status::Ok();
}

Status ClickHouseFlowStore::ReadEvents(uint64_t after_sequence, size_t limit,
                                       std::vector<v1::StoredEvent>* out) {
  std::lock_guard lock(mutex_);
  // Events older than the log holds are gone (a resume from there starts at the oldest
  // held). Sequences are dense within a batch and ascending across batches: the batch
  // holding the first wanted one is found by its first sequence.
  auto batch = std::upper_bound(
      live_log_.begin(), live_log_.end(), after_sequence + 1,
      [](uint64_t sequence, const LiveBatch& b) { return sequence < b.first_sequence; });
  if (batch != live_log_.begin()) --batch;
  size_t taken = 0;
  for (; batch != live_log_.end() && taken < limit; ++batch) {
    const size_t size = static_cast<size_t>(batch->events.size());
    size_t index = after_sequence + 1 <= batch->first_sequence
                       ? 0
                       : static_cast<size_t>(after_sequence + 1 - batch->first_sequence);
    for (; index < size && taken < limit; ++index, ++taken) {
      v1::StoredEvent& event = out->emplace_back();
      event.set_gateway_sequence(batch->first_sequence + index);
      event.set_received_at(batch->received_at_ms);
      *event.mutable_agent() = batch->agent;
      *event.mutable_event() = batch->events[static_cast<int>(index)];
    }
  }
  return Status::Ok();
}

Result<std::map<std::string, v1::AgentRecord>> ClickHouseFlowStore::FetchAgents(
    const std::string& where) {
  Result<std::string> answer =
      Read("SELECT agent_id, argMax(record, updated_ms) FROM " + ReadTable("agents") +
           (where.empty() ? "" : " WHERE " + where) + " GROUP BY agent_id FORMAT RowBinary");
  if (!answer.ok()) return answer.status();
  std::map<std::string, v1::AgentRecord> records;
  RowBinaryReader reader(*answer);
  while (!reader.done()) {
    std::string_view agent_id, bytes;
    v1::AgentRecord record;
    if (!reader.ReadString(&agent_id) || !reader.ReadString(&bytes) ||
        !record.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      return Status::Corruption("ClickHouse answered an agent record that does not parse");
    }
    records[std::string(agent_id)] = std::move(record);
  }
  return records;
}

Result<std::vector<v1::AgentRecord>> ClickHouseFlowStore::ListAgents() {
  Result<std::map<std::string, v1::AgentRecord>> stored = FetchAgents("");
  if (!stored.ok()) return stored.status();
  std::map<std::string, v1::AgentRecord>& fleet = *stored;
  {
    // What this gateway holds in memory is newer than what it wrote (addresses, batches
    // counted out of order), unless the agent has moved on to another gateway since.
    std::lock_guard lock(mutex_);
    for (const auto& [agent_id, record] : registry_) {
      auto it = fleet.find(agent_id);
      if (it == fleet.end() || it->second.last_seen_ms() <= record.last_seen_ms()) {
        fleet[agent_id] = record;
      }
    }
  }
  std::vector<v1::AgentRecord> agents;
  agents.reserve(fleet.size());
  const uint64_t now_ms = WallClockMs();
  for (auto& [agent_id, record] : fleet) {
    SetOnline(now_ms, options_.offline_after_missed_intervals, &agents.emplace_back(record));
  }
  SortAgents(&agents);
  return agents;
}

Status ClickHouseFlowStore::RecordRejection(const v1::AgentIdentity& agent,
                                            const std::string& reason, const std::string& address,
                                            uint64_t received_at_ms) {
  if (agent.id().empty()) return Status::Ok();
  bool known;
  {
    std::lock_guard lock(mutex_);
    known = registry_.contains(agent.id());
  }
  if (!known) {
    Result<std::map<std::string, v1::AgentRecord>> stored =
        FetchAgents("agent_id = " + SqlQuote(agent.id()));
    if (!stored.ok()) return stored.status();
    std::lock_guard lock(mutex_);
    for (auto& [agent_id, record] : *stored) registry_.try_emplace(agent_id, std::move(record));
  }
  std::string rows;
  {
    std::lock_guard lock(mutex_);
    v1::AgentRecord& record = registry_[agent.id()];
    CountRejection(agent, reason, address, received_at_ms, &record);
    PutRowBinaryString(agent.id(), &rows);
    PutRowBinaryUInt64(WallClockMs(), &rows);
    PutRowBinaryString(record.SerializeAsString(), &rows);
  }
  return ShardFor(agent.id()).Insert(LocalTable("agents"), rows);
}

uint64_t ClickHouseFlowStore::last_sequence() const {
  std::lock_guard lock(mutex_);
  return last_sequence_;
}

Result<DropStats> ClickHouseFlowStore::DropBefore(uint64_t cutoff_ms) {
  // Whole days go, as partitions.
  cutoff_ms = cutoff_ms / kDayMs * kDayMs;
  const uint32_t cutoff_partition = DayPartitionOf(cutoff_ms);
  DropStats dropped;
  for (const std::unique_ptr<ClickHouseHttp>& server : servers_) {
    for (const char* table : kDatedTables) {
      Result<std::string> partitions = server->Query(
          "SELECT DISTINCT partition FROM system.parts WHERE active AND database = " +
          SqlQuote(options_.database) + " AND table = " + SqlQuote(LocalName(table)) +
          " AND toUInt32(partition) < " + std::to_string(cutoff_partition) + " FORMAT RowBinary");
      if (!partitions.ok()) return partitions.status();
      std::vector<std::string> doomed;
      RowBinaryReader reader(*partitions);
      while (!reader.done()) {
        std::string_view partition;
        if (!reader.ReadString(&partition)) {
          return Status::Corruption("ClickHouse answered partitions that do not parse");
        }
        doomed.emplace_back(partition);
      }
      if (doomed.empty()) continue;
      if (std::string_view(table) == "flow_parts") {
        // The flows whose every part is in the dropped days.
        Result<std::string> flows =
            server->Query("SELECT count() FROM (SELECT agent_id, digest FROM " + LocalTable(table) +
                          " GROUP BY agent_id, digest HAVING max(toYYYYMMDD(day)) < " +
                          std::to_string(cutoff_partition) + ") FORMAT RowBinary");
        if (!flows.ok()) return flows.status();
        RowBinaryReader count(*flows);
        uint64_t n = 0;
        if (count.ReadUInt64(&n)) dropped.flows += n;
      }
      for (const std::string& partition : doomed) {
        FLOWGATE_RETURN_IF_ERROR(
            server->Execute("ALTER TABLE " + LocalTable(table) + " DROP PARTITION " + partition));
      }
    }
  }
  const uint64_t horizon = std::max(retained_from_ms_.load(), cutoff_ms);
  std::string row;
  PutRowBinaryUInt64(horizon, &row);
  FLOWGATE_RETURN_IF_ERROR(servers_[0]->Insert(LocalTable("retention"), row));
  retained_from_ms_ = horizon;
  return dropped;
}

Result<uint64_t> ClickHouseFlowStore::OldestDataMs() {
  uint64_t oldest = 0;
  for (const std::unique_ptr<ClickHouseHttp>& server : servers_) {
    Result<std::string> answer = server->Query(
        "SELECT partition FROM system.parts WHERE active AND database = " +
        SqlQuote(options_.database) + " AND table IN (" + SqlQuote(LocalName("flow_parts")) + ", " +
        SqlQuote(LocalName("rollups")) + ") ORDER BY toUInt32(partition) LIMIT 1 FORMAT RowBinary");
    if (!answer.ok()) return answer.status();
    RowBinaryReader reader(*answer);
    std::string_view partition;
    if (!reader.done() && reader.ReadString(&partition)) {
      const uint64_t day_ms = DayPartitionStartMs(partition);
      if (day_ms != 0 && (oldest == 0 || day_ms < oldest)) oldest = day_ms;
    }
  }
  return oldest;
}

Result<uint64_t> ClickHouseFlowStore::DiskBytes() {
  uint64_t bytes = 0;
  for (const std::unique_ptr<ClickHouseHttp>& server : servers_) {
    Result<std::string> answer =
        server->Query("SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = " +
                      SqlQuote(options_.database) + " FORMAT RowBinary");
    if (!answer.ok()) return answer.status();
    RowBinaryReader reader(*answer);
    uint64_t value = 0;
    if (reader.ReadUInt64(&value)) bytes += value;
  }
  return bytes;
}

Result<StoreHealth> ClickHouseFlowStore::Health() {
  StoreHealth health;
  Result<uint64_t> disk = DiskBytes();
  if (!disk.ok()) return disk.status();
  health.disk_bytes = *disk;
  health.live_data_bytes = *disk;
  return health;
}

}  // namespace

Result<std::unique_ptr<FlowStore>> OpenClickHouseFlowStore(const ClickHouseStoreOptions& options) {
  return ClickHouseFlowStore::Open(options);
}

}  // namespace flowgate::storage
