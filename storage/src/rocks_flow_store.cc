// RocksDB implementation of FlowStore.
//
// Column families:
//   events  gateway sequence (8 bytes, big-endian) -> StoredEvent   the merged log
//   flows   agent id '\0' digest                   -> FlowRecord    merge operator upserts
//   agents  agent id                               -> AgentRecord   the registry
//   marks   agent id '\0' boot id                  -> high-water sequence (8 bytes, BE)
//   activity minute (8 bytes, BE) agent id '\0' digest -> ""   time index of flows
// (default family: "retained_from" -> the retention horizon, 8 bytes, BE)
// One Append is one WriteBatch across all four, so a batch, its flows and the mark that
// makes a resend a duplicate become durable together.
#include <rocksdb/db.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "flow_record_merge.h"
#include "flowgate/storage/flow_store.h"

namespace flowgate::storage {
namespace {

constexpr char kEventsFamily[] = "events";
constexpr char kFlowsFamily[] = "flows";
constexpr char kAgentsFamily[] = "agents";
constexpr char kMarksFamily[] = "marks";
// Time index of flows: minute of an activity (8 bytes, BE) agent id '\0' digest -> "".
// Written in the same batch as the flow's upsert, for every event that carries a time, so
// the flow's last activity always has an entry: a scan from the bucket of t0 finds every
// flow whose last activity is >= t0, which is every flow active in [t0, t1].
constexpr char kActivityFamily[] = "activity";
constexpr uint64_t kActivityBucketMs = 60'000;
// In the default family: the time before which retention dropped everything (8 bytes, BE).
constexpr char kRetainedFromKey[] = "retained_from";

std::string EncodeBigEndian(uint64_t value) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i) {
    out[static_cast<size_t>(i)] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
  return out;
}

uint64_t DecodeBigEndian(std::string_view bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < 8 && i < bytes.size(); ++i) {
    value = (value << 8) | static_cast<uint8_t>(bytes[i]);
  }
  return value;
}

std::string JoinKey(const std::string& a, const std::string& b) {
  std::string key = a;
  key += '\0';
  key += b;
  return key;
}

std::string ActivityKey(uint64_t at_ms, const std::string& agent_id, const std::string& digest) {
  return EncodeBigEndian(at_ms / kActivityBucketMs * kActivityBucketMs) + JoinKey(agent_id, digest);
}

// The one place a rocksdb::Status becomes a flowgate Status.
Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::Ok();
  if (s.IsCorruption()) return Status::Corruption(what + ": " + s.ToString());
  if (s.IsNotFound()) return Status::NotFound(what + ": " + s.ToString());
  return Status::IoError(what + ": " + s.ToString());
}

// Folds FlowRecord operands with MergeFlowRecord. A value that does not parse is kept as
// the newer operand alone rather than failing every read of the flow.
class FlowRecordMergeOperator : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice& /*key*/, const rocksdb::Slice* existing_value,
             const rocksdb::Slice& value, std::string* new_value,
             rocksdb::Logger* /*logger*/) const override {
    v1::FlowRecord merged;
    if (existing_value != nullptr) {
      (void)merged.ParseFromArray(existing_value->data(), static_cast<int>(existing_value->size()));
    }
    v1::FlowRecord newer;
    if (!newer.ParseFromArray(value.data(), static_cast<int>(value.size()))) return false;
    MergeFlowRecord(newer, &merged);
    return merged.SerializeToString(new_value);
  }
  const char* Name() const override { return "flowgate.FlowRecordMerge.v1"; }
};

class RocksFlowStore final : public FlowStore {
 public:
  static Result<std::unique_ptr<FlowStore>> Open(const FlowStoreOptions& options);
  ~RocksFlowStore() override;

  Result<AppendResult> Append(const v1::Envelope& envelope, uint64_t received_at_ms,
                              std::vector<v1::StoredEvent>* stored) override;
  Result<std::optional<v1::FlowRecord>> GetFlow(const std::string& agent_id,
                                                const std::string& digest) override;
  Status ScanFlows(const std::function<bool(const v1::FlowRecord&)>& visit) override;
  Status ScanActiveFlows(uint64_t from_ms, uint64_t to_ms,
                         const std::function<bool(const v1::FlowRecord&)>& visit) override;
  Status ReadEvents(uint64_t after_sequence, size_t limit,
                    std::vector<v1::StoredEvent>* out) override;
  Result<std::vector<v1::AgentRecord>> ListAgents() override;
  Status RecordRejection(const v1::AgentIdentity& agent, const std::string& reason,
                         const std::string& address, uint64_t received_at_ms) override;
  void NoteAgentAddress(const std::string& agent_id, const std::string& address) override;
  uint64_t last_sequence() const override;
  Result<DropStats> DropBefore(uint64_t cutoff_ms) override;
  Result<uint64_t> OldestDataMs() override;
  Result<uint64_t> DiskBytes() override;
  uint64_t retained_from_ms() const override { return retained_from_ms_.load(); }

 private:
  RocksFlowStore() = default;
  Status LoadState();
  Result<uint64_t> HighWaterMark(const std::string& mark_key);

  FlowStoreOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  // Owned by this class and destroyed before db_ (see the destructor).
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::ColumnFamilyHandle* events_ = nullptr;
  rocksdb::ColumnFamilyHandle* flows_ = nullptr;
  rocksdb::ColumnFamilyHandle* agents_ = nullptr;
  rocksdb::ColumnFamilyHandle* marks_ = nullptr;
  rocksdb::ColumnFamilyHandle* activity_ = nullptr;

  mutable std::mutex mutex_;
  uint64_t last_sequence_ = 0;                                 // guarded by mutex_
  std::unordered_map<std::string, v1::AgentRecord> registry_;  // guarded by mutex_
  std::unordered_map<std::string, uint64_t> marks_cache_;      // ingest thread only
  // Held by Append and by DropBefore while it deletes flows, so a flow updated while it is
  // dropped cannot lose the update.
  std::mutex drop_mutex_;
  std::atomic<uint64_t> retained_from_ms_{0};
};

Result<std::unique_ptr<FlowStore>> RocksFlowStore::Open(const FlowStoreOptions& options) {
  if (options.path.empty()) return Status::InvalidArgument("store path is empty");
  std::unique_ptr<RocksFlowStore> store(new RocksFlowStore());
  store->options_ = options;

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;

  rocksdb::ColumnFamilyOptions base;
  // LZ4 is cheap enough for the ingest path and is in Debian's librocksdb build.
  base.compression = rocksdb::kLZ4Compression;
  base.bottommost_compression = rocksdb::kZSTD;
  rocksdb::ColumnFamilyOptions flows_options = base;
  flows_options.merge_operator = std::make_shared<FlowRecordMergeOperator>();

  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, base},
      {kEventsFamily, base},
      {kFlowsFamily, flows_options},
      {kAgentsFamily, base},
      {kMarksFamily, base},
      {kActivityFamily, base}};
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, options.path, families, &store->handles_, &raw);
  if (!s.ok()) {
    std::string message = s.ToString();
    if (s.IsIOError() && message.find("lock") != std::string::npos) {
      return Status::Unavailable("store " + options.path + " is in use by another process (" +
                                 message + ")");
    }
    return FromRocks(s, "cannot open store " + options.path);
  }
  store->db_.reset(raw);
  store->events_ = store->handles_[1];
  store->flows_ = store->handles_[2];
  store->agents_ = store->handles_[3];
  store->marks_ = store->handles_[4];
  store->activity_ = store->handles_[5];
  FLOWGATE_RETURN_IF_ERROR(store->LoadState());
  return std::unique_ptr<FlowStore>(std::move(store));
}

RocksFlowStore::~RocksFlowStore() {
  if (db_ == nullptr) return;
  for (rocksdb::ColumnFamilyHandle* h : handles_) {
    db_->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  }
  db_->Close().PermitUncheckedError();
}

Status RocksFlowStore::LoadState() {
  std::string horizon;
  rocksdb::Status hs = db_->Get(rocksdb::ReadOptions(), kRetainedFromKey, &horizon);
  if (!hs.IsNotFound()) FLOWGATE_RETURN_IF_ERROR(FromRocks(hs, "reading the retention horizon"));
  if (hs.ok()) retained_from_ms_ = DecodeBigEndian(horizon);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), events_));
  it->SeekToLast();
  if (it->Valid()) last_sequence_ = DecodeBigEndian(it->key().ToStringView());
  FLOWGATE_RETURN_IF_ERROR(FromRocks(it->status(), "reading the event log"));

  std::unique_ptr<rocksdb::Iterator> agents(db_->NewIterator(rocksdb::ReadOptions(), agents_));
  for (agents->SeekToFirst(); agents->Valid(); agents->Next()) {
    v1::AgentRecord record;
    if (!record.ParseFromArray(agents->value().data(), static_cast<int>(agents->value().size()))) {
      return Status::Corruption("agent record " + agents->key().ToString() + " does not parse");
    }
    registry_[agents->key().ToString()] = std::move(record);
  }
  return FromRocks(agents->status(), "reading the agent registry");
}

Result<uint64_t> RocksFlowStore::HighWaterMark(const std::string& mark_key) {
  if (auto it = marks_cache_.find(mark_key); it != marks_cache_.end()) return it->second;
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), marks_, mark_key, &value);
  if (s.IsNotFound()) return uint64_t{0};
  FLOWGATE_RETURN_IF_ERROR(FromRocks(s, "reading a delivery mark"));
  uint64_t mark = DecodeBigEndian(value);
  marks_cache_[mark_key] = mark;
  return mark;
}

Result<AppendResult> RocksFlowStore::Append(const v1::Envelope& envelope, uint64_t received_at_ms,
                                            std::vector<v1::StoredEvent>* stored) {
  std::lock_guard drop_lock(drop_mutex_);
  const v1::AgentIdentity& agent = envelope.agent();
  if (agent.id().empty() || agent.boot_id().empty() || envelope.sequence() == 0) {
    return Status::InvalidArgument("batch lacks an agent id, boot id or sequence number");
  }
  const std::string mark_key = JoinKey(agent.id(), agent.boot_id());
  Result<uint64_t> mark = HighWaterMark(mark_key);
  if (!mark.ok()) return mark.status();

  v1::AgentRecord record;
  uint64_t first_sequence;
  {
    std::lock_guard lock(mutex_);
    record = registry_[agent.id()];
    first_sequence = last_sequence_ + 1;
  }
  if (record.first_seen_ms() == 0) record.set_first_seen_ms(received_at_ms);
  record.set_last_seen_ms(received_at_ms);
  record.set_batches_received(record.batches_received() + 1);

  AppendResult result;
  rocksdb::WriteBatch batch;
  std::vector<v1::StoredEvent> new_events;
  // Batches of a boot are applied strictly in order, so the mark alone tells what was
  // applied. A gap is accepted only when the agent says it holds nothing below this batch
  // (resend_floor == sequence): whatever is missing it gave up on, so skipping it can never
  // skip something it will still resend.
  const bool next_in_order = envelope.sequence() == *mark + 1;
  const bool gap_given_up = envelope.resend_floor() == envelope.sequence();
  if (envelope.sequence() <= *mark) {
    result.outcome = AppendOutcome::kDuplicate;
    record.set_batches_duplicate(record.batches_duplicate() + 1);
  } else if (!next_in_order && !gap_given_up) {
    result.outcome = AppendOutcome::kOutOfOrder;
    result.expected_sequence = *mark + 1;
    // Counted in memory only: nothing is written for a batch that will come again.
    std::lock_guard lock(mutex_);
    v1::AgentRecord& live = registry_[agent.id()];
    if (!live.has_identity()) *live.mutable_identity() = agent;
    live.set_batches_received(live.batches_received() + 1);
    live.set_batches_out_of_order(live.batches_out_of_order() + 1);
    return result;
  } else {
    result.missing_before = envelope.sequence() - *mark - 1;
    *record.mutable_identity() = agent;
    record.set_batches_applied(record.batches_applied() + 1);
    record.set_events_applied(record.events_applied() +
                              static_cast<uint64_t>(envelope.events_size()));
    record.set_sequence_gaps(record.sequence_gaps() + result.missing_before);
    record.set_high_water_sequence(envelope.sequence());
    uint64_t sequence = first_sequence;
    std::string buffer;
    new_events.reserve(static_cast<size_t>(envelope.events_size()));
    for (const v1::Event& event : envelope.events()) {
      v1::StoredEvent& out = new_events.emplace_back();
      out.set_gateway_sequence(sequence);
      out.set_received_at(received_at_ms);
      out.mutable_agent()->set_id(agent.id());
      out.mutable_agent()->set_name(agent.name());
      out.mutable_agent()->set_site(agent.site());
      *out.mutable_event() = event;
      out.SerializeToString(&buffer);
      FLOWGATE_RETURN_IF_ERROR(FromRocks(batch.Put(events_, EncodeBigEndian(sequence), buffer),
                                         "building a write batch"));
      if (std::optional<v1::FlowRecord> delta = FlowRecordDelta(agent, event)) {
        const std::string& digest = delta->counters().digest();
        delta->SerializeToString(&buffer);
        FLOWGATE_RETURN_IF_ERROR(FromRocks(batch.Merge(flows_, JoinKey(agent.id(), digest), buffer),
                                           "building a write batch"));
        const FlowActivity activity = FlowActivityOf(*delta);
        if (activity.last_ms != 0) {
          FLOWGATE_RETURN_IF_ERROR(
              FromRocks(batch.Put(activity_, ActivityKey(activity.last_ms, agent.id(), digest), ""),
                        "building a write batch"));
        }
      }
      if (event.has_agent_status()) *record.mutable_last_status() = event.agent_status();
      ++sequence;
    }
    FLOWGATE_RETURN_IF_ERROR(
        FromRocks(batch.Put(marks_, mark_key, EncodeBigEndian(envelope.sequence())),
                  "building a write batch"));
  }
  FLOWGATE_RETURN_IF_ERROR(FromRocks(batch.Put(agents_, agent.id(), record.SerializeAsString()),
                                     "building a write batch"));

  rocksdb::WriteOptions write_options;
  write_options.sync = options_.sync_writes;
  FLOWGATE_RETURN_IF_ERROR(FromRocks(db_->Write(write_options, &batch), "writing a batch"));

  if (result.outcome == AppendOutcome::kApplied) marks_cache_[mark_key] = envelope.sequence();
  {
    std::lock_guard lock(mutex_);
    registry_[agent.id()] = std::move(record);
    last_sequence_ += new_events.size();
  }
  if (stored != nullptr) *stored = std::move(new_events);
  return result;
}

Result<std::optional<v1::FlowRecord>> RocksFlowStore::GetFlow(const std::string& agent_id,
                                                              const std::string& digest) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), flows_, JoinKey(agent_id, digest), &value);
  if (s.IsNotFound()) return std::optional<v1::FlowRecord>();
  FLOWGATE_RETURN_IF_ERROR(FromRocks(s, "reading flow " + digest));
  v1::FlowRecord record;
  if (!record.ParseFromString(value))
    return Status::Corruption("flow " + digest + " does not parse");
  return std::optional<v1::FlowRecord>(std::move(record));
}

Status RocksFlowStore::ScanFlows(const std::function<bool(const v1::FlowRecord&)>& visit) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), flows_));
  v1::FlowRecord record;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (!record.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return Status::Corruption("flow record does not parse");
    }
    if (!visit(record)) break;
  }
  return FromRocks(it->status(), "scanning flows");
}

Status RocksFlowStore::ScanActiveFlows(uint64_t from_ms, uint64_t to_ms,
                                       const std::function<bool(const v1::FlowRecord&)>& visit) {
  // One snapshot for the index and the flows, so a flow seen in the index is read as of the
  // same write.
  const rocksdb::Snapshot* snapshot = db_->GetSnapshot();
  struct Release {
    rocksdb::DB* db;
    const rocksdb::Snapshot* snapshot;
    ~Release() { db->ReleaseSnapshot(snapshot); }
  } release{db_.get(), snapshot};
  rocksdb::ReadOptions read;
  read.snapshot = snapshot;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, activity_));
  it->SeekToFirst();
  if (it->Valid() && DecodeBigEndian(it->key().ToStringView()) >= from_ms) {
    // The range starts before everything indexed: the index prunes nothing, and reading the
    // flows in key order is far cheaper than looking each one up.
    std::unique_ptr<rocksdb::Iterator> flows(db_->NewIterator(read, flows_));
    v1::FlowRecord flow;
    for (flows->SeekToFirst(); flows->Valid(); flows->Next()) {
      if (!flow.ParseFromArray(flows->value().data(), static_cast<int>(flows->value().size()))) {
        return Status::Corruption("flow record does not parse");
      }
      if (FlowActiveIn(flow, from_ms, to_ms) && !visit(flow)) break;
    }
    return FromRocks(flows->status(), "scanning flows");
  }
  // A long flow has an entry in each minute it reported; report it once.
  std::unordered_set<std::string> seen;
  std::vector<std::string> keys;
  std::vector<rocksdb::Slice> slices;
  std::vector<rocksdb::PinnableSlice> values;
  std::vector<rocksdb::Status> statuses;
  v1::FlowRecord record;
  bool more = true;
  // Flows are read in groups with MultiGet: far fewer lookups than one Get per flow.
  auto flush = [&]() -> Status {
    if (keys.empty()) return Status::Ok();
    slices.assign(keys.begin(), keys.end());
    values.clear();
    values.resize(keys.size());
    statuses.assign(keys.size(), rocksdb::Status());
    db_->MultiGet(read, flows_, keys.size(), slices.data(), values.data(), statuses.data());
    for (size_t i = 0; i < keys.size() && more; ++i) {
      if (statuses[i].IsNotFound()) continue;
      FLOWGATE_RETURN_IF_ERROR(FromRocks(statuses[i], "reading an indexed flow"));
      if (!record.ParseFromArray(values[i].data(), static_cast<int>(values[i].size()))) {
        return Status::Corruption("flow record does not parse");
      }
      if (FlowActiveIn(record, from_ms, to_ms)) more = visit(record);
    }
    keys.clear();
    return Status::Ok();
  };
  constexpr size_t kMultiGetBatch = 256;
  for (it->Seek(EncodeBigEndian(from_ms / kActivityBucketMs * kActivityBucketMs));
       it->Valid() && more; it->Next()) {
    std::string flow_key(it->key().data() + 8, it->key().size() - 8);
    if (!seen.insert(flow_key).second) continue;
    keys.push_back(std::move(flow_key));
    if (keys.size() == kMultiGetBatch) FLOWGATE_RETURN_IF_ERROR(flush());
  }
  FLOWGATE_RETURN_IF_ERROR(FromRocks(it->status(), "scanning the flow time index"));
  return flush();
}

Result<DropStats> RocksFlowStore::DropBefore(uint64_t cutoff_ms) {
  cutoff_ms = cutoff_ms / kActivityBucketMs * kActivityBucketMs;
  DropStats dropped;
  const std::string cutoff_key = EncodeBigEndian(cutoff_ms);

  // Flows whose last activity is before the cutoff, found through the time index. They are
  // re-read and deleted under drop_mutex_ in chunks, so ingest waits at most one chunk.
  std::unordered_set<std::string> seen;
  std::vector<std::string> chunk;
  auto drop_chunk = [&]() -> Status {
    std::lock_guard lock(drop_mutex_);
    rocksdb::WriteBatch batch;
    v1::FlowRecord record;
    std::string value;
    for (const std::string& key : chunk) {
      rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), flows_, key, &value);
      if (s.IsNotFound()) continue;
      FLOWGATE_RETURN_IF_ERROR(FromRocks(s, "reading a flow to drop"));
      if (record.ParseFromString(value) && FlowActivityOf(record).last_ms >= cutoff_ms) continue;
      FLOWGATE_RETURN_IF_ERROR(FromRocks(batch.Delete(flows_, key), "building a write batch"));
      ++dropped.flows;
    }
    chunk.clear();
    return FromRocks(db_->Write(rocksdb::WriteOptions(), &batch), "dropping flows");
  };
  {
    rocksdb::ReadOptions read;
    rocksdb::Slice upper(cutoff_key);
    read.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, activity_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      std::string flow_key(it->key().data() + 8, it->key().size() - 8);
      if (!seen.insert(flow_key).second) continue;
      chunk.push_back(std::move(flow_key));
      if (chunk.size() == 1024) FLOWGATE_RETURN_IF_ERROR(drop_chunk());
    }
    FLOWGATE_RETURN_IF_ERROR(FromRocks(it->status(), "scanning the flow time index"));
    FLOWGATE_RETURN_IF_ERROR(drop_chunk());
  }

  // Events received before the cutoff: sequences are dense and arrival times grow with them,
  // so the first one kept is found by bisection.
  uint64_t first = 0;
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), events_));
    it->SeekToFirst();
    if (it->Valid()) first = DecodeBigEndian(it->key().ToStringView());
    FLOWGATE_RETURN_IF_ERROR(FromRocks(it->status(), "reading the event log"));
  }
  uint64_t low = first, high = last_sequence() + 1;  // the answer is in [low, high]
  while (first != 0 && low < high) {
    const uint64_t mid = low + (high - low) / 2;
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), events_, EncodeBigEndian(mid), &value);
    v1::StoredEvent event;
    if (s.ok() && !event.ParseFromString(value)) return Status::Corruption("event does not parse");
    if (!s.IsNotFound()) FLOWGATE_RETURN_IF_ERROR(FromRocks(s, "reading the event log"));
    if (s.IsNotFound() || event.received_at() < cutoff_ms) {
      low = mid + 1;
    } else {
      high = mid;
    }
  }
  if (first != 0) dropped.events = low - first;

  // Whole ranges go as range tombstones, with the new horizon, in one write.
  rocksdb::WriteBatch batch;
  FLOWGATE_RETURN_IF_ERROR(FromRocks(batch.DeleteRange(activity_, EncodeBigEndian(0), cutoff_key),
                                     "building a write batch"));
  if (dropped.events != 0) {
    FLOWGATE_RETURN_IF_ERROR(
        FromRocks(batch.DeleteRange(events_, EncodeBigEndian(0), EncodeBigEndian(low)),
                  "building a write batch"));
  }
  const uint64_t horizon = std::max(retained_from_ms_.load(), cutoff_ms);
  FLOWGATE_RETURN_IF_ERROR(
      FromRocks(batch.Put(kRetainedFromKey, EncodeBigEndian(horizon)), "building a write batch"));
  FLOWGATE_RETURN_IF_ERROR(FromRocks(db_->Write(rocksdb::WriteOptions(), &batch), "dropping"));
  retained_from_ms_ = horizon;

  // Reclaim the space now (the size cap measures it): flush so the WAL can go, then compact
  // the dropped ranges down to the bottom level, where tombstones and data both vanish.
  rocksdb::FlushOptions flush;
  FLOWGATE_RETURN_IF_ERROR(FromRocks(db_->Flush(flush, handles_), "flushing after a drop"));
  rocksdb::CompactRangeOptions compact;
  compact.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForceOptimized;
  const std::string events_end = EncodeBigEndian(low);
  const rocksdb::Slice activity_end(cutoff_key), log_end(events_end);
  FLOWGATE_RETURN_IF_ERROR(
      FromRocks(db_->CompactRange(compact, activity_, nullptr, &activity_end), "compacting"));
  if (dropped.events != 0) {
    FLOWGATE_RETURN_IF_ERROR(
        FromRocks(db_->CompactRange(compact, events_, nullptr, &log_end), "compacting"));
  }
  // Flows are keyed by agent and digest, not time: dropped ones are spread over the family.
  if (dropped.flows != 0) {
    FLOWGATE_RETURN_IF_ERROR(
        FromRocks(db_->CompactRange(compact, flows_, nullptr, nullptr), "compacting"));
  }
  return dropped;
}

Result<uint64_t> RocksFlowStore::OldestDataMs() {
  uint64_t oldest = 0;
  std::unique_ptr<rocksdb::Iterator> index(db_->NewIterator(rocksdb::ReadOptions(), activity_));
  index->SeekToFirst();
  if (index->Valid()) oldest = DecodeBigEndian(index->key().ToStringView());
  FLOWGATE_RETURN_IF_ERROR(FromRocks(index->status(), "scanning the flow time index"));
  std::unique_ptr<rocksdb::Iterator> log(db_->NewIterator(rocksdb::ReadOptions(), events_));
  log->SeekToFirst();
  if (log->Valid()) {
    v1::StoredEvent event;
    if (event.ParseFromArray(log->value().data(), static_cast<int>(log->value().size())) &&
        (oldest == 0 || event.received_at() < oldest)) {
      oldest = event.received_at();
    }
  }
  FLOWGATE_RETURN_IF_ERROR(FromRocks(log->status(), "reading the event log"));
  return oldest;
}

Result<uint64_t> RocksFlowStore::DiskBytes() {
  uint64_t bytes = 0;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(options_.path, error)) {
    std::error_code ignored;  // a file compaction removed meanwhile counts as 0
    if (entry.is_regular_file(ignored)) bytes += entry.file_size(ignored);
  }
  if (error) return Status::IoError("cannot list " + options_.path + ": " + error.message());
  return bytes;
}

Status RocksFlowStore::ReadEvents(uint64_t after_sequence, size_t limit,
                                  std::vector<v1::StoredEvent>* out) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), events_));
  size_t taken = 0;
  for (it->Seek(EncodeBigEndian(after_sequence + 1)); it->Valid() && taken < limit; it->Next()) {
    v1::StoredEvent& event = out->emplace_back();
    if (!event.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      out->pop_back();
      return Status::Corruption(
          "event " + std::to_string(DecodeBigEndian(it->key().ToStringView())) + " does not parse");
    }
    ++taken;
  }
  return FromRocks(it->status(), "reading events");
}

Result<std::vector<v1::AgentRecord>> RocksFlowStore::ListAgents() {
  std::lock_guard lock(mutex_);
  std::vector<v1::AgentRecord> agents;
  agents.reserve(registry_.size());
  const uint64_t now_ms =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
  for (const auto& [id, record] : registry_) {
    v1::AgentRecord& out = agents.emplace_back(record);
    // Online is judged when asked: an agent that said goodbye (final status) is offline at
    // once; otherwise after `offline_after_missed_intervals` status intervals of silence.
    const uint64_t interval_ms =
        std::max<uint64_t>(record.last_status().update_interval(), 1) * 1000;
    out.set_online(!record.last_status().final() &&
                   now_ms - std::min(now_ms, record.last_seen_ms()) <=
                       interval_ms * options_.offline_after_missed_intervals);
  }
  std::sort(agents.begin(), agents.end(), [](const v1::AgentRecord& a, const v1::AgentRecord& b) {
    return std::tie(a.identity().name(), a.identity().id()) <
           std::tie(b.identity().name(), b.identity().id());
  });
  return agents;
}

Status RocksFlowStore::RecordRejection(const v1::AgentIdentity& agent, const std::string& reason,
                                       const std::string& address, uint64_t received_at_ms) {
  if (agent.id().empty()) return Status::Ok();
  std::string value;
  {
    std::lock_guard lock(mutex_);
    v1::AgentRecord& record = registry_[agent.id()];
    if (!record.has_identity()) *record.mutable_identity() = agent;
    if (record.first_seen_ms() == 0) record.set_first_seen_ms(received_at_ms);
    record.set_last_seen_ms(received_at_ms);
    if (!address.empty()) record.set_address(address);
    record.set_batches_received(record.batches_received() + 1);
    record.set_batches_rejected(record.batches_rejected() + 1);
    (*record.mutable_rejected_by_reason())[reason] += 1;
    record.SerializeToString(&value);
  }
  rocksdb::WriteOptions write_options;
  write_options.sync = options_.sync_writes;
  return FromRocks(db_->Put(write_options, agents_, agent.id(), value), "recording a rejection");
}

void RocksFlowStore::NoteAgentAddress(const std::string& agent_id, const std::string& address) {
  std::lock_guard lock(mutex_);
  auto it = registry_.find(agent_id);
  if (it != registry_.end()) it->second.set_address(address);
}

uint64_t RocksFlowStore::last_sequence() const {
  std::lock_guard lock(mutex_);
  return last_sequence_;
}

}  // namespace

Result<std::unique_ptr<FlowStore>> OpenRocksFlowStore(const FlowStoreOptions& options) {
  return RocksFlowStore::Open(options);
}

}  // namespace flowgate::storage
