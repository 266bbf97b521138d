// RocksDB implementation of FlowStore.
//
// Column families:
//   events  gateway sequence (8 bytes, big-endian) -> StoredEvent   the merged log
//   flows   agent id '\0' digest                   -> FlowRecord    merge operator upserts
//   agents  agent id                               -> AgentRecord   the registry
//   marks   agent id '\0' boot id                  -> high-water sequence (8 bytes, BE)
//   activity minute (8 bytes, BE) agent id '\0' digest -> ""   time index of flows
//   rollups  dimension minute (8 bytes, BE) agent id '\0' name -> counters (rollups.h)
// (default family: "retained_from" -> the retention horizon, 8 bytes, BE)
// One Append (or AppendBatch, a group of batches) is one WriteBatch across the families, so
// a batch, its flows and the mark that makes a resend a duplicate become durable together.
//
// Pipelining (PrepareBatch/CommitBatch): the ingest thread prepares group N+1 while another
// writes group N, so the write (nearly half of a group's cost) no longer holds up the
// preparing of the next. Preparing needs the
// state group N leaves behind (delivery marks, sequence numbers, registry counters, which
// flows the time index holds), so the prepare side keeps its own copy of that state, as if
// every prepared group were written; the committed copy (last_sequence_, registry_) moves
// only when a write returns. A failed write bumps generation_: groups prepared on the old
// state are refused unwritten, and the prepare side starts again from the committed state.
#include <google/protobuf/arena.h>
#include <google/protobuf/io/coded_stream.h>
#include <rocksdb/db.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "agent_registry.h"
#include "flow_record_merge.h"
#include "flow_wire.h"
#include "flowgate/storage/flow_store.h"
#include "rollups.h"

namespace flowgate::storage {
namespace {

constexpr char kEventsFamily[] = "events";
constexpr char kFlowsFamily[] = "flows";
constexpr char kAgentsFamily[] = "agents";
constexpr char kMarksFamily[] = "marks";
// Time index of flows: minute of an activity (8 bytes, BE), then the first gateway sequence
// of the write that made the entry (8 bytes, BE) -> the flows (agent id '\0' digest) that
// write gave activity in that minute, each as varint length and bytes. A flow is named in
// the same write as its upsert whenever an event carries a time in a minute later than the
// newest one indexed for it, so its last activity always has an entry: a scan from the
// bucket of t0 finds every flow whose last activity is >= t0, which is every flow active in
// [t0, t1]. One entry per minute and write, not one per flow: a memtable insert per flow was
// a fifth of the store's CPU per event. Stores written before this read on: their entries
// are minute, agent id '\0' digest -> "" (ForEachIndexedFlow reads both).
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

std::string ActivityKey(uint64_t minute_ms, uint64_t first_sequence) {
  return EncodeBigEndian(minute_ms) + EncodeBigEndian(first_sequence);
}

void AppendVarint(uint64_t value, std::string* out) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

// Calls visit(flow key) for each flow the time index entry (key, value) names; stops at the
// first status that is not ok and returns it.
Status ForEachIndexedFlow(std::string_view key, std::string_view value,
                          const std::function<Status(std::string_view)>& visit) {
  if (key.size() < 8) {
    return Status::Corruption("time index key of " + std::to_string(key.size()) + " bytes");
  }
  if (value.empty()) return visit(key.substr(8));  // written before entries were grouped
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(value.data()),
                                            static_cast<int>(value.size()));
  const void* at = nullptr;
  int available = 0;
  uint32_t size = 0;
  while (in.CurrentPosition() < static_cast<int>(value.size())) {
    if (!in.ReadVarint32(&size) || !in.GetDirectBufferPointer(&at, &available) ||
        static_cast<uint32_t>(available) < size) {
      return Status::Corruption("time index entry does not parse");
    }
    FLOWGATE_RETURN_IF_ERROR(visit(std::string_view(static_cast<const char*>(at), size)));
    in.Skip(static_cast<int>(size));
  }
  return Status::Ok();
}

// Sets *out to the StoredEvent encoding (the bytes SerializeToString gives) of an event of
// `event_size` bytes with the agent identity already encoded in `agent_bytes`, all but the
// event's own bytes, which the caller appends: the event is not deep-copied into a
// StoredEvent first.
void StartStoredEvent(uint64_t sequence, uint64_t received_at_ms, const std::string& agent_bytes,
                      size_t event_size, std::string* out) {
  // Tags: field number << 3 | wire type (0 varint, 2 length-delimited).
  constexpr char kSequenceTag = 1 << 3, kReceivedAtTag = 2 << 3, kAgentTag = 3 << 3 | 2,
                 kEventTag = 4 << 3 | 2;
  out->clear();
  out->push_back(kSequenceTag);
  AppendVarint(sequence, out);
  if (received_at_ms != 0) {
    out->push_back(kReceivedAtTag);
    AppendVarint(received_at_ms, out);
  }
  if (!agent_bytes.empty()) {
    out->push_back(kAgentTag);
    AppendVarint(agent_bytes.size(), out);
    out->append(agent_bytes);
  }
  out->push_back(kEventTag);
  AppendVarint(event_size, out);
}

// Sets *out to the log row of `event`: `sent`, its bytes as the agent sent them, when
// DecodeEnvelope located them (parsed and found valid), else the event serialized here.
void EncodeStoredEvent(uint64_t sequence, uint64_t received_at_ms, const std::string& agent_bytes,
                       const v1::Event& event, std::optional<std::string_view> sent,
                       std::string* out) {
  if (sent) {
    StartStoredEvent(sequence, received_at_ms, agent_bytes, sent->size(), out);
    out->append(*sent);
    return;
  }
  const size_t event_size = event.ByteSizeLong();
  StartStoredEvent(sequence, received_at_ms, agent_bytes, event_size, out);
  const size_t at = out->size();
  out->resize(at + event_size);
  event.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(out->data() + at));
}

// The one place a rocksdb::Status becomes a flowgate Status.
Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::Ok();
  if (s.IsCorruption()) return Status::Corruption(what + ": " + s.ToString());
  if (s.IsNotFound()) return Status::NotFound(what + ": " + s.ToString());
  return Status::IoError(what + ": " + s.ToString());
}

// Folds FlowRecord operands with MergeFlowRecord. A value that does not parse is kept as
// the newer operand alone rather than failing every read of the flow. Operands lack what
// the key says (StripFlowKeyFields); every merge puts it back, so whatever a read returns
// (a merge of one operand at least) is whole.
class FlowRecordMergeOperator : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice& key, const rocksdb::Slice* existing_value,
             const rocksdb::Slice& value, std::string* new_value,
             rocksdb::Logger* /*logger*/) const override {
    v1::FlowRecord merged;
    if (existing_value != nullptr) {
      (void)merged.ParseFromArray(existing_value->data(), static_cast<int>(existing_value->size()));
    }
    v1::FlowRecord newer;
    if (!newer.ParseFromArray(value.data(), static_cast<int>(value.size()))) return false;
    MergeFlowRecord(newer, &merged);
    const std::string_view flow_key = key.ToStringView();
    const size_t separator = std::min(flow_key.find('\0'), flow_key.size());
    RestoreFlowKeyFields(flow_key.substr(0, separator),
                         flow_key.substr(std::min(separator + 1, flow_key.size())), &merged);
    return merged.SerializeToString(new_value);
  }
  const char* Name() const override { return "flowgate.FlowRecordMerge.v1"; }
};

class RocksFlowStore final : public FlowStore {
 public:
  static Result<std::unique_ptr<FlowStore>> Open(const FlowStoreOptions& options);
  ~RocksFlowStore() override;

  Status AppendBatch(std::vector<AppendItem>& items, bool want_stored) override;
  std::unique_ptr<PreparedBatch> PrepareBatch(std::vector<AppendItem>& items,
                                              bool want_stored) override;
  Status CommitBatch(std::unique_ptr<PreparedBatch> prepared,
                     std::vector<AppendItem>& items) override;
  Result<std::optional<v1::FlowRecord>> GetFlow(const std::string& agent_id,
                                                const std::string& digest) override;
  Status ScanFlows(const std::function<bool(const v1::FlowRecord&)>& visit) override;
  Status ScanActiveFlows(uint64_t from_ms, uint64_t to_ms,
                         const std::function<bool(const v1::FlowRecord&)>& visit) override;
  Status ScanMatchingFlows(const FlowScan& scan,
                           const std::function<bool(ScannedFlow&)>& visit) override;
  Status ScanRollups(RollupDimension dimension, uint64_t from_ms, uint64_t to_ms,
                     const std::function<bool(const RollupRow&)>& visit) override {
    return ScanRollupFamily(*db_, rollups_, rocksdb::ReadOptions(), dimension, from_ms, to_ms,
                            visit);
  }
  bool has_rollups() const override { return true; }
  Status CompactAll() override {
    for (rocksdb::ColumnFamilyHandle* family : handles_) {
      FLOWGATE_RETURN_IF_ERROR(
          FromRocks(db_->CompactRange(rocksdb::CompactRangeOptions(), family, nullptr, nullptr),
                    "compacting"));
    }
    return Status::Ok();
  }
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
  // A group ready to write, and what the committed state becomes once it is written.
  class Prepared final : public PreparedBatch {
   public:
    explicit Prepared(RocksFlowStore* store) : store_(store) {}
    ~Prepared() override {
      if (store_ != nullptr) store_->FinishCommit(*this, /*written=*/false);
    }
    RocksFlowStore* store_;  // null once committed
    Status status;           // of the preparation; not ok: nothing to write
    uint64_t generation = 0;
    uint64_t ticket = 0;  // its place in the order of preparation, from 1
    uint64_t last_sequence = 0;
    std::unique_ptr<rocksdb::WriteBatch> batch;
    std::vector<std::pair<std::string, v1::AgentRecord>> records;  // registry once written
  };

  RocksFlowStore() = default;
  Status LoadState();
  Result<uint64_t> HighWaterMark(const std::string& mark_key);
  // The body of PrepareBatch: fills `prepared` (its batch and what the commit applies) and
  // advances the prepare side's state; on error it changed no state.
  Status PrepareGroup(std::vector<AppendItem>& items, bool want_stored, Prepared& prepared);
  // When a write failed since the prepare side last looked, starts it again from the
  // committed state. Under prepare_mutex_.
  void CatchUpWithFailedWrites();
  // Returns once every prepared group is committed (or dropped).
  void WaitForCommits();
  // Ends `prepared`'s part in the pipeline: applies it to the committed state if `written`,
  // else makes the groups prepared after it fail; wakes WaitForCommits.
  void FinishCommit(Prepared& prepared, bool written);

  FlowStoreOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  // Owned by this class and destroyed before db_ (see the destructor).
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::ColumnFamilyHandle* events_ = nullptr;
  rocksdb::ColumnFamilyHandle* flows_ = nullptr;
  rocksdb::ColumnFamilyHandle* agents_ = nullptr;
  rocksdb::ColumnFamilyHandle* marks_ = nullptr;
  rocksdb::ColumnFamilyHandle* activity_ = nullptr;
  rocksdb::ColumnFamilyHandle* rollups_ = nullptr;
  // The prepare side: held by PrepareBatch (and by DropBefore while it deletes index
  // entries). What it guards is the state as if every prepared group were written.
  std::mutex prepare_mutex_;
  uint64_t state_generation_ = 0;  // the generation_ the state below holds for
  uint64_t next_sequence_ = 1;     // the gateway sequence of the next event prepared
  std::unordered_map<std::string, uint64_t> marks_cache_;  // mark key -> high-water
  // Flow key (agent id '\0' digest) -> the newest minute of it the time index holds, so
  // that a flow reporting many times a minute is indexed once a minute. Bounded by
  // clearing, after which flows are simply indexed again.
  std::unordered_map<std::string, uint64_t> indexed_minute_;
  static constexpr size_t kMaxIndexedFlows = 1 << 18;
  // Sums each applied batch's rollups; reads a flow's stored application, protocol and
  // host when it does not know them.
  RollupAccumulator rollup_sums_{[this](const std::string& agent_id, const std::string& digest) {
    return StoredDimensions(agent_id, digest);
  }};
  std::optional<FlowDimensions> StoredDimensions(const std::string& agent_id,
                                                 const std::string& digest);
  uint64_t rollup_forgets_seen_ = 0;  // rollup_sums_.forgets() when the store was last waited for
  // A group of 16 batches of 512 events needs a few megabytes of flow records.
  KeptArenaBlock group_arena_block_{8u << 20};

  mutable std::mutex mutex_;
  uint64_t last_sequence_ = 0;                                 // guarded by mutex_
  std::unordered_map<std::string, v1::AgentRecord> registry_;  // guarded by mutex_
  // Records of agents in groups prepared and not yet written: what the next group of the
  // agent builds on. Guarded by mutex_; the entry goes when the group that set it
  // (`ticket`) is written, or all go when a write fails.
  struct PendingRecord {
    v1::AgentRecord record;
    uint64_t ticket = 0;
  };
  std::unordered_map<std::string, PendingRecord> pending_records_;

  // Between the prepare and the commit side.
  std::atomic<uint64_t> generation_{0};  // bumped by each failed write
  std::mutex commit_mutex_;
  std::condition_variable committed_;
  uint64_t prepared_tickets_ = 0;   // guarded by commit_mutex_
  uint64_t committed_tickets_ = 0;  // guarded by commit_mutex_
  // Write batches to reuse (guarded by commit_mutex_): growing a fresh multi-megabyte batch
  // every time (copies, page faults, returning it to malloc) cost as much as the memtable
  // inserts. One being written, one being prepared; let go of after an unusually large group.
  std::vector<std::unique_ptr<rocksdb::WriteBatch>> spare_batches_;
  static constexpr size_t kMaxKeptBatchBytes = 64u << 20;
  // Held by each write of a group and by DropBefore while it deletes flows, so a flow
  // updated while it is dropped cannot lose the update.
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
  // LZ4 is cheap enough for the ingest path and is in Debian's librocksdb build. It stays
  // on at the bottom level too: history queries decompress every block of a range they
  // scan, and ZSTD there cost a third of a scan's time for a few tens of percent of disk.
  base.compression = rocksdb::kLZ4Compression;
  base.bottommost_compression = rocksdb::kLZ4Compression;
  // Block checksums in XXH3: Debian's librocksdb computes CRC32C without the CPU's
  // instruction, which made checksums a visible part of every flush on the ingest path.
  rocksdb::BlockBasedTableOptions table_options;
  table_options.checksum = rocksdb::kXXH3;
  base.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table_options));
  rocksdb::ColumnFamilyOptions flows_options = base;
  flows_options.merge_operator = std::make_shared<FlowRecordMergeOperator>();
  rocksdb::ColumnFamilyOptions rollups_options = base;
  rollups_options.merge_operator = NewRollupMergeOperator();

  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, base},
      {kEventsFamily, base},
      {kFlowsFamily, flows_options},
      {kAgentsFamily, base},
      {kMarksFamily, base},
      {kActivityFamily, base},
      {kRollupsFamily, rollups_options}};
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
  store->rollups_ = store->handles_[6];
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
  next_sequence_ = last_sequence_ + 1;
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

Status RocksFlowStore::AppendBatch(std::vector<AppendItem>& items, bool want_stored) {
  return CommitBatch(PrepareBatch(items, want_stored), items);
}

std::unique_ptr<PreparedBatch> RocksFlowStore::PrepareBatch(std::vector<AppendItem>& items,
                                                            bool want_stored) {
  std::lock_guard prepare_lock(prepare_mutex_);
  CatchUpWithFailedWrites();
  auto prepared = std::make_unique<Prepared>(this);
  prepared->generation = state_generation_;
  {
    std::lock_guard lock(commit_mutex_);
    prepared->ticket = prepared_tickets_ + 1;
    if (!spare_batches_.empty()) {
      prepared->batch = std::move(spare_batches_.back());
      spare_batches_.pop_back();
    }
  }
  if (prepared->batch == nullptr) prepared->batch = std::make_unique<rocksdb::WriteBatch>();
  prepared->status = PrepareGroup(items, want_stored, *prepared);
  if (!prepared->status.ok()) {
    // Nothing will be written: no item was applied, and sums gathered for them must not
    // leak into the next group.
    rollup_sums_.Discard();
    FailGroup(prepared->status, items);
  }
  std::lock_guard lock(commit_mutex_);
  prepared_tickets_ = prepared->ticket;
  return prepared;
}

Status RocksFlowStore::CommitBatch(std::unique_ptr<PreparedBatch> base,
                                   std::vector<AppendItem>& items) {
  auto& prepared = static_cast<Prepared&>(*base);
  if (!prepared.status.ok()) {
    FinishCommit(prepared, /*written=*/false);
    return prepared.status;
  }
  Status status = Status::Ok();
  if (prepared.generation != generation_.load()) {
    status = Status::Unavailable("not written: an earlier write of the store failed");
  } else if (prepared.batch->Count() != 0) {
    rocksdb::WriteOptions write_options;
    write_options.sync = options_.sync_writes;
    std::lock_guard drop_lock(drop_mutex_);
    status = FromRocks(db_->Write(write_options, prepared.batch.get()), "writing a batch");
  }
  if (!status.ok()) FailGroup(status, items);
  FinishCommit(prepared, status.ok());
  return status;
}

void RocksFlowStore::FinishCommit(Prepared& prepared, bool written) {
  if (written) {
    std::lock_guard lock(mutex_);
    for (auto& [agent_id, record] : prepared.records) {
      if (auto pending = pending_records_.find(agent_id);
          pending != pending_records_.end() && pending->second.ticket == prepared.ticket) {
        pending_records_.erase(pending);
      }
      registry_[agent_id] = std::move(record);
    }
    last_sequence_ = std::max(last_sequence_, prepared.last_sequence);
  } else if (prepared.status.ok()) {
    // The prepare side counted on this group being written (and every group after it
    // builds on it): make them fail and the prepare side start again. Only the first of a
    // run of failures bumps the generation; the ones after it were prepared on the old one.
    uint64_t expected = prepared.generation;
    generation_.compare_exchange_strong(expected, expected + 1);
  }
  prepared.store_ = nullptr;
  std::lock_guard lock(commit_mutex_);
  committed_tickets_ = std::max(committed_tickets_, prepared.ticket);
  if (prepared.batch != nullptr && prepared.batch->GetDataSize() <= kMaxKeptBatchBytes &&
      spare_batches_.size() < 2) {
    prepared.batch->Clear();
    spare_batches_.push_back(std::move(prepared.batch));
  }
  committed_.notify_all();
}

void RocksFlowStore::WaitForCommits() {
  std::unique_lock lock(commit_mutex_);
  committed_.wait(lock, [this] { return committed_tickets_ >= prepared_tickets_; });
}

void RocksFlowStore::CatchUpWithFailedWrites() {
  const uint64_t generation = generation_.load();
  if (generation == state_generation_) return;
  // Groups prepared on the old state are refused when their turn comes and write
  // nothing, so the committed state is final for them already.
  marks_cache_.clear();
  indexed_minute_.clear();
  {
    std::lock_guard lock(mutex_);
    pending_records_.clear();
    next_sequence_ = last_sequence_ + 1;
  }
  state_generation_ = generation;
}

Status RocksFlowStore::PrepareGroup(std::vector<AppendItem>& items, bool want_stored,
                                    Prepared& prepared) {
  // What the group changes, kept aside and applied to the prepare side's state only once the
  // whole group is encoded (so a failure part way changes nothing).
  struct AgentUpdate {
    v1::AgentRecord record;
    bool persist = false;  // out-of-order batches alone are counted in memory only
  };
  std::unordered_map<std::string, AgentUpdate> agents;
  std::unordered_map<std::string, uint64_t> marks;  // mark key -> high-water after the group
  // Flow deltas folded per flow (the merge operator is associative): one operand per flow
  // and group instead of one per event, in an arena dropped with the group.
  google::protobuf::Arena arena(group_arena_block_.options());
  std::unordered_map<std::string, v1::FlowRecord*> flows;
  std::string flow_key;
  uint64_t sequence = next_sequence_;
  const uint64_t first_sequence = sequence;

  rocksdb::WriteBatch& batch = *prepared.batch;
  std::string buffer, agent_bytes;
  for (AppendItem& item : items) {
    item.stored.clear();
    v1::Envelope& envelope = item.envelope;
    const v1::AgentIdentity& agent = envelope.agent();
    if (Status identified = CheckBatchIdentity(envelope); !identified.ok()) {
      item.result = identified;
      continue;
    }
    const std::string mark_key = JoinKey(agent.id(), agent.boot_id());
    uint64_t mark;
    if (auto it = marks.find(mark_key); it != marks.end()) {
      mark = it->second;
    } else {
      Result<uint64_t> stored_mark = HighWaterMark(mark_key);
      if (!stored_mark.ok()) return stored_mark.status();
      mark = *stored_mark;
    }
    auto [update_it, fresh] = agents.try_emplace(agent.id());
    AgentUpdate& update = update_it->second;
    if (fresh) {
      std::lock_guard lock(mutex_);
      if (auto pending = pending_records_.find(agent.id()); pending != pending_records_.end()) {
        update.record = pending->second.record;
      } else if (auto known = registry_.find(agent.id()); known != registry_.end()) {
        update.record = known->second;
      }
    }
    v1::AgentRecord& record = update.record;
    const BatchVerdict verdict = JudgeBatch(item, mark, &record);
    item.result = verdict.result;
    update.persist = update.persist || verdict.persist;
    if (!verdict.apply) continue;
    marks[mark_key] = envelope.sequence();

    // Only what identifies the agent is stored with each event, encoded once per batch.
    v1::AgentIdentity stored_agent;
    stored_agent.set_id(agent.id());
    stored_agent.set_name(agent.name());
    stored_agent.set_site(agent.site());
    stored_agent.SerializeToString(&agent_bytes);
    if (want_stored) item.stored.reserve(static_cast<size_t>(envelope.events_size()));
    const bool as_sent = item.wire.spans.size() == static_cast<size_t>(envelope.events_size());
    for (int index = 0; index < envelope.events_size(); ++index) {
      v1::Event& event = *envelope.mutable_events(index);
      EncodeStoredEvent(
          sequence, item.received_at_ms, agent_bytes, event,
          as_sent ? std::optional(item.wire.event(static_cast<size_t>(index))) : std::nullopt,
          &buffer);
      FLOWGATE_RETURN_IF_ERROR(FromRocks(batch.Put(events_, EncodeBigEndian(sequence), buffer),
                                         "building a write batch"));
      if (const std::string* digest = FlowEventDigest(event)) {
        flow_key.assign(agent.id());
        flow_key += '\0';
        flow_key += *digest;
        auto [flow, added] = flows.try_emplace(flow_key, nullptr);
        if (added) {
          flow->second = google::protobuf::Arena::CreateMessage<v1::FlowRecord>(&arena);
          // Only what identifies the agent: its status and version belong to the registry.
          v1::AgentIdentity* flow_agent = flow->second->mutable_agent();
          flow_agent->set_id(agent.id());
          flow_agent->set_name(agent.name());
          flow_agent->set_site(agent.site());
        }
        FoldFlowEvent(event, flow->second);
      }
      rollup_sums_.Add(agent.id(), event, item.received_at_ms);
      if (event.has_agent_status()) *record.mutable_last_status() = event.agent_status();
      if (want_stored) {
        v1::StoredEvent& out = item.stored.emplace_back();
        out.set_gateway_sequence(sequence);
        out.set_received_at(item.received_at_ms);
        *out.mutable_agent() = stored_agent;
        out.mutable_event()->Swap(&event);
      }
      ++sequence;
    }
  }

  // The time index needs an entry for each flow's last-activity minute; one already
  // written (and not dropped since) need not be written again.
  std::vector<std::pair<const std::string*, uint64_t>> indexed;
  std::vector<const std::string*> purged;
  // Flows go into the batch in key order: the memtable inserts a run of
  // ascending keys from where the previous one went instead of searching its skip list from
  // the top each time, which (with keys sharing the agent id) was half the write's cost.
  std::vector<std::pair<const std::string*, v1::FlowRecord*>> sorted_flows;
  sorted_flows.reserve(flows.size());
  for (const auto& [key, flow] : flows) sorted_flows.emplace_back(&key, flow);
  std::sort(sorted_flows.begin(), sorted_flows.end(),
            [](const auto& a, const auto& b) { return *a.first < *b.first; });
  std::map<uint64_t, std::string> activity_by_minute;  // minute -> the index entry's value
  for (const auto& [key_pointer, flow] : sorted_flows) {
    const std::string& key = *key_pointer;
    const uint64_t last_ms = FlowActivityOf(*flow).last_ms;
    if (flow->purge_reason() != v1::PURGE_REASON_UNSPECIFIED) purged.push_back(&key);
    StripFlowKeyFields(flow);
    flow->SerializeToString(&buffer);
    FLOWGATE_RETURN_IF_ERROR(FromRocks(batch.Merge(flows_, key, buffer), "building a write batch"));
    if (last_ms == 0) continue;
    const uint64_t minute = last_ms / kActivityBucketMs * kActivityBucketMs;
    if (auto known = indexed_minute_.find(key);
        known != indexed_minute_.end() && known->second >= minute) {
      continue;
    }
    std::string& entry = activity_by_minute[minute];
    AppendVarint(key.size(), &entry);
    entry += key;
    indexed.emplace_back(&key, minute);
  }
  for (const auto& [minute, entry] : activity_by_minute) {
    FLOWGATE_RETURN_IF_ERROR(
        FromRocks(batch.Put(activity_, ActivityKey(minute, first_sequence), entry),
                  "building a write batch"));
  }
  for (const auto& [mark_key, mark] : marks) {
    FLOWGATE_RETURN_IF_ERROR(
        FromRocks(batch.Put(marks_, mark_key, EncodeBigEndian(mark)), "building a write batch"));
  }
  for (const auto& [agent_id, update] : agents) {
    if (!update.persist) continue;
    FLOWGATE_RETURN_IF_ERROR(FromRocks(
        batch.Put(agents_, agent_id, update.record.SerializeAsString()), "building a write batch"));
  }
  FLOWGATE_RETURN_IF_ERROR(rollup_sums_.Flush(&batch, rollups_));

  // The group is ready: from here the prepare side counts it as written.
  for (const auto& [mark_key, mark] : marks) marks_cache_[mark_key] = mark;
  if (indexed_minute_.size() + indexed.size() > kMaxIndexedFlows) indexed_minute_.clear();
  for (const auto& [key, minute] : indexed) indexed_minute_[*key] = minute;
  // A purged flow rarely reports again: its entry would only take room.
  for (const std::string* key : purged) indexed_minute_.erase(*key);
  next_sequence_ = sequence;
  prepared.last_sequence = sequence - 1;
  prepared.records.reserve(agents.size());
  {
    std::lock_guard lock(mutex_);
    for (auto& [agent_id, update] : agents) {
      pending_records_[agent_id] = {update.record, prepared.ticket};
      prepared.records.emplace_back(agent_id, std::move(update.record));
    }
  }
  return Status::Ok();
}

std::optional<FlowDimensions> RocksFlowStore::StoredDimensions(const std::string& agent_id,
                                                               const std::string& digest) {
  // The rollup memory asks only for flows it does not know, which the groups being written
  // cannot have taught it, unless it forgot what they taught: then the store must hold
  // them before it answers, or attribution would depend on how far the writes got.
  if (rollup_sums_.forgets() != rollup_forgets_seen_) {
    WaitForCommits();
    rollup_forgets_seen_ = rollup_sums_.forgets();
  }
  Result<std::optional<v1::FlowRecord>> flow = GetFlow(agent_id, digest);
  if (!flow.ok() || !flow->has_value()) return std::nullopt;
  const v1::FlowMetadata& m = (*flow)->metadata();
  return FlowDimensions{m.detected_application_name(), m.detected_protocol_name(),
                        m.host_server_name()};
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
  Status failed = Status::Ok();
  FLOWGATE_RETURN_IF_ERROR(
      ScanMatchingFlows({.from_ms = from_ms, .to_ms = to_ms}, [&](ScannedFlow& flow) {
        const v1::FlowRecord* whole = flow.whole();
        if (whole == nullptr) {
          failed = Status::Corruption("flow record does not parse");
          return false;
        }
        return visit(*whole);
      }));
  return failed;
}

Status RocksFlowStore::ScanMatchingFlows(const FlowScan& scan,
                                         const std::function<bool(ScannedFlow&)>& visit) {
  const uint64_t from_ms = scan.from_ms, to_ms = scan.to_ms;
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
  // Flows are decided on their summary (times and the fields a filter reads, decoded from
  // the stored bytes); only those the visitor asks for are parsed whole.
  // Most flows of a range scan fall outside it: they are dropped on their times before
  // anything is copied.
  FlowSummaryView view;
  v1::FlowRecord summary, scratch;
  bool more = true;
  auto offer = [&](std::string_view bytes) -> Status {
    if (!ReadFlowSummary(bytes, &view)) return Status::Corruption("flow record does not parse");
    if (!ActivityIn(view.activity(), from_ms, to_ms)) return Status::Ok();
    CopyFlowSummary(view, &summary);
    if (scan.filter != nullptr && !scan.filter->Matches(FilterSubject::FromFlow(summary))) {
      return Status::Ok();
    }
    ScannedFlow flow(summary, bytes, &scratch);
    more = visit(flow);
    return Status::Ok();
  };
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, activity_));
  it->SeekToFirst();
  const std::string from_key = EncodeBigEndian(from_ms / kActivityBucketMs * kActivityBucketMs);
  bool scan_all = it->Valid() && DecodeBigEndian(it->key().ToStringView()) >= from_ms;
  if (!scan_all && it->Valid()) {
    // A lookup per flow costs several sequential steps: when the index from from_ms on is
    // more than a few percent of it, reading every flow in key order is cheaper.
    const std::string end_key(9, '\xff');
    const rocksdb::Range ranges[2] = {{from_key, end_key}, {it->key(), end_key}};
    uint64_t sizes[2] = {0, 0};
    rocksdb::SizeApproximationOptions approximate;
    approximate.include_memtables = true;
    if (db_->GetApproximateSizes(approximate, activity_, ranges, 2, sizes).ok()) {
      scan_all = sizes[0] * 8 > sizes[1];
    }
  }
  if (scan_all) {
    rocksdb::ReadOptions bulk = read;
    bulk.fill_cache = false;  // one pass over everything: keep the cache for point reads
    bulk.readahead_size = 2 << 20;
    std::unique_ptr<rocksdb::Iterator> flows(db_->NewIterator(bulk, flows_));
    for (flows->SeekToFirst(); flows->Valid() && more; flows->Next()) {
      FLOWGATE_RETURN_IF_ERROR(offer(flows->value().ToStringView()));
    }
    return FromRocks(flows->status(), "scanning flows");
  }
  // A long flow has an entry in each minute it reported; report it once.
  std::unordered_set<std::string> seen;
  std::vector<std::string> keys;
  std::vector<rocksdb::Slice> slices;
  std::vector<rocksdb::PinnableSlice> values;
  std::vector<rocksdb::Status> statuses;
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
      FLOWGATE_RETURN_IF_ERROR(offer(values[i].ToStringView()));
    }
    keys.clear();
    return Status::Ok();
  };
  constexpr size_t kMultiGetBatch = 256;
  for (it->Seek(from_key); it->Valid() && more; it->Next()) {
    FLOWGATE_RETURN_IF_ERROR(ForEachIndexedFlow(
        it->key().ToStringView(), it->value().ToStringView(), [&](std::string_view flow_key) {
          if (!seen.emplace(flow_key).second) return Status::Ok();
          keys.emplace_back(flow_key);
          return keys.size() == kMultiGetBatch ? flush() : Status::Ok();
        }));
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
      FLOWGATE_RETURN_IF_ERROR(ForEachIndexedFlow(
          it->key().ToStringView(), it->value().ToStringView(), [&](std::string_view flow_key) {
            if (!seen.emplace(flow_key).second) return Status::Ok();
            chunk.emplace_back(flow_key);
            return chunk.size() == 1024 ? drop_chunk() : Status::Ok();
          }));
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
  FLOWGATE_RETURN_IF_ERROR(DeleteRollupsBefore(&batch, rollups_, cutoff_ms));
  if (dropped.events != 0) {
    FLOWGATE_RETURN_IF_ERROR(
        FromRocks(batch.DeleteRange(events_, EncodeBigEndian(0), EncodeBigEndian(low)),
                  "building a write batch"));
  }
  const uint64_t horizon = std::max(retained_from_ms_.load(), cutoff_ms);
  FLOWGATE_RETURN_IF_ERROR(
      FromRocks(batch.Put(kRetainedFromKey, EncodeBigEndian(horizon)), "building a write batch"));
  {
    // With ingest held off (nothing prepared, every prepared group written), so that no
    // group relies on an index entry this deletes.
    std::lock_guard prepare_lock(prepare_mutex_);
    WaitForCommits();
    std::lock_guard lock(drop_mutex_);
    FLOWGATE_RETURN_IF_ERROR(FromRocks(db_->Write(rocksdb::WriteOptions(), &batch), "dropping"));
    indexed_minute_.clear();
  }
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
  FLOWGATE_RETURN_IF_ERROR(
      FromRocks(db_->CompactRange(compact, rollups_, nullptr, nullptr), "compacting"));
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

Result<StoreHealth> RocksFlowStore::Health() {
  StoreHealth health;
  Result<uint64_t> disk = DiskBytes();
  if (!disk.ok()) return disk.status();
  health.disk_bytes = *disk;
  // A property the engine does not know reads as 0 rather than failing the whole report.
  const auto sum = [this](const std::string& property) {
    uint64_t value = 0;
    return db_->GetAggregatedIntProperty(property, &value) ? value : uint64_t{0};
  };
  health.live_data_bytes = sum(rocksdb::DB::Properties::kLiveSstFilesSize);
  health.memtable_bytes = sum(rocksdb::DB::Properties::kCurSizeAllMemTables);
  health.pending_compaction_bytes = sum(rocksdb::DB::Properties::kEstimatePendingCompactionBytes);
  uint64_t value = 0;
  if (db_->GetIntProperty(rocksdb::DB::Properties::kNumRunningCompactions, &value)) {
    health.running_compactions = value;
  }
  if (db_->GetIntProperty(rocksdb::DB::Properties::kIsWriteStopped, &value)) {
    health.write_stopped = value != 0;
  }
  if (db_->GetIntProperty(rocksdb::DB::Properties::kActualDelayedWriteRate, &value)) {
    health.delayed_write_rate = value;
  }
  for (rocksdb::ColumnFamilyHandle* family : handles_) {
    std::map<std::string, std::string> stats;
    if (!db_->GetMapProperty(family, rocksdb::DB::Properties::kCFStats, &stats)) continue;
    const auto counter = [&stats](const char* key) -> uint64_t {
      auto it = stats.find(key);
      return it == stats.end() ? 0 : std::strtoull(it->second.c_str(), nullptr, 10);
    };
    health.write_slowdowns += counter("io_stalls.total_slowdown");
    health.write_stops += counter("io_stalls.total_stop");
  }
  return health;
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
  const uint64_t now_ms = WallClockMs();
  for (const auto& [id, record] : registry_) {
    SetOnline(now_ms, options_.offline_after_missed_intervals, &agents.emplace_back(record));
  }
  SortAgents(&agents);
  return agents;
}

Status RocksFlowStore::RecordRejection(const v1::AgentIdentity& agent, const std::string& reason,
                                       const std::string& address, uint64_t received_at_ms) {
  if (agent.id().empty()) return Status::Ok();
  // A group prepared and not yet written carries the agent's record as it was then, and
  // would write it over this one: count the rejection once they are written, into the
  // record they leave. (pending_records_ is then empty, or stale after a failed write and
  // cleared by the next prepare.)
  WaitForCommits();
  std::string value;
  {
    std::lock_guard lock(mutex_);
    v1::AgentRecord& record = registry_[agent.id()];
    CountRejection(agent, reason, address, received_at_ms, &record);
    record.SerializeToString(&value);
  }
  rocksdb::WriteOptions write_options;
  write_options.sync = options_.sync_writes;
  return FromRocks(db_->Put(write_options, agents_, agent.id(), value), "recording a rejection");
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
