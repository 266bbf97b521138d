// RocksDB implementation of FlowStore.
//
// Column families:
//   events  gateway sequence (8 bytes, big-endian) -> StoredEvent   the merged log
//   flows   agent id '\0' digest                   -> FlowRecord    merge operator upserts
//   agents  agent id                               -> AgentRecord   the registry
//   marks   agent id '\0' boot id                  -> high-water sequence (8 bytes, BE)
// One Append is one WriteBatch across all four, so a batch, its flows and the mark that
// makes a resend a duplicate become durable together.
#include <rocksdb/db.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <mutex>
#include <tuple>
#include <unordered_map>

#include "flow_record_merge.h"
#include "flowgate/storage/flow_store.h"

namespace flowgate::storage {
namespace {

constexpr char kEventsFamily[] = "events";
constexpr char kFlowsFamily[] = "flows";
constexpr char kAgentsFamily[] = "agents";
constexpr char kMarksFamily[] = "marks";

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
  Status ReadEvents(uint64_t after_sequence, size_t limit,
                    std::vector<v1::StoredEvent>* out) override;
  Result<std::vector<v1::AgentRecord>> ListAgents() override;
  uint64_t last_sequence() const override;

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

  mutable std::mutex mutex_;
  uint64_t last_sequence_ = 0;                                 // guarded by mutex_
  std::unordered_map<std::string, v1::AgentRecord> registry_;  // guarded by mutex_
  std::unordered_map<std::string, uint64_t> marks_cache_;      // ingest thread only
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
      {kMarksFamily, base}};
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
  if (envelope.sequence() <= *mark) {
    result.outcome = AppendOutcome::kDuplicate;
    record.set_batches_duplicate(record.batches_duplicate() + 1);
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
  for (const auto& [id, record] : registry_) agents.push_back(record);
  std::sort(agents.begin(), agents.end(), [](const v1::AgentRecord& a, const v1::AgentRecord& b) {
    return std::tie(a.identity().name(), a.identity().id()) <
           std::tie(b.identity().name(), b.identity().id());
  });
  return agents;
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
