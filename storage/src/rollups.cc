#include "rollups.h"

#include "agent_registry.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <algorithm>
#include <cstring>
#include <deque>

namespace flowgate::storage {
namespace {

constexpr size_t kValueSize = 24;  // bytes, packets, flows: little-endian uint64 each

}  // namespace

char RollupDimensionCode(RollupDimension dimension) {
  switch (dimension) {
    case RollupDimension::kProtocol:
      return 'p';
    case RollupDimension::kHost:
      return 'h';
    default:
      return 'a';
  }
}

namespace {

RollupDimension DimensionOfByte(char byte) {
  switch (byte) {
    case 'p':
      return RollupDimension::kProtocol;
    case 'h':
      return RollupDimension::kHost;
    default:
      return RollupDimension::kApplication;
  }
}

void AppendBigEndian(uint64_t value, std::string* out) {
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>(value >> shift));
}

uint64_t ReadBigEndian(const char* bytes) {
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value = (value << 8) | static_cast<uint8_t>(bytes[i]);
  return value;
}

void PutLittleEndian(uint64_t value, char* out) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(value >> (8 * i));
}

uint64_t ReadLittleEndian(const char* bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(bytes[i]);
  return value;
}

std::string EncodeCounters(const RollupCounters& counters) {
  std::string value(kValueSize, '\0');
  PutLittleEndian(counters.bytes, value.data());
  PutLittleEndian(counters.packets, value.data() + 8);
  PutLittleEndian(counters.flows, value.data() + 16);
  return value;
}

// A value of the wrong size (never written by this code) counts as zero rather than
// failing every read of its minute.
void AddEncoded(const rocksdb::Slice& value, RollupCounters* sum) {
  if (value.size() != kValueSize) return;
  sum->bytes += ReadLittleEndian(value.data());
  sum->packets += ReadLittleEndian(value.data() + 8);
  sum->flows += ReadLittleEndian(value.data() + 16);
}

class RollupMergeOperator final : public rocksdb::MergeOperator {
 public:
  bool FullMergeV2(const MergeOperationInput& input, MergeOperationOutput* output) const override {
    RollupCounters sum;
    if (input.existing_value != nullptr) AddEncoded(*input.existing_value, &sum);
    for (const rocksdb::Slice& operand : input.operand_list) AddEncoded(operand, &sum);
    output->new_value = EncodeCounters(sum);
    return true;
  }
  bool PartialMergeMulti(const rocksdb::Slice& /*key*/,
                         const std::deque<rocksdb::Slice>& operand_list, std::string* new_value,
                         rocksdb::Logger* /*logger*/) const override {
    RollupCounters sum;
    for (const rocksdb::Slice& operand : operand_list) AddEncoded(operand, &sum);
    *new_value = EncodeCounters(sum);
    return true;
  }
  const char* Name() const override { return "flowgate.RollupAdd.v1"; }
};

uint64_t MinuteOf(uint64_t at_ms) { return at_ms / kRollupMinuteMs * kRollupMinuteMs; }

}  // namespace

RollupAccumulator::FlowKey RollupAccumulator::KeyOf(std::string_view agent_id,
                                                    std::string_view digest) {
  // Two independent 64-bit hashes (FNV-1a and the standard library's) of agent id '\0'
  // digest: a fixed-size key costs no allocation per flow and a third of the memory of the
  // text. Two flows sharing both hashes (odds about n^2 / 2^129) would share names.
  flow_key_.assign(agent_id);
  flow_key_ += '\0';
  flow_key_ += digest;
  return {Fnv1a64(flow_key_), std::hash<std::string>{}(flow_key_)};
}

const std::string* RollupAccumulator::Intern(const std::string& name) {
  return &*names_.insert(name).first;
}

RollupAccumulator::KnownNames RollupAccumulator::NamesOf(const FlowKey& key,
                                                         const std::string& agent_id,
                                                         const std::string& digest) {
  auto it = known_.find(key);
  if (it != known_.end()) return it->second;
  // Not seen since start (or since the cache was cleared): the stored flow knows. A flow
  // that is not stored is remembered as unknown ("") until its `flow` event comes.
  std::optional<FlowDimensions> stored = lookup_(agent_id, digest);
  const FlowDimensions dimensions = stored ? std::move(*stored) : FlowDimensions{};
  const KnownNames names{Intern(dimensions.application), Intern(dimensions.protocol),
                         Intern(dimensions.host)};
  known_.emplace(key, names);
  return names;
}

void RollupAccumulator::AddTo(const std::string& agent_id, const KnownNames& names, uint64_t at_ms,
                              const RollupCounters& counters) {
  const uint64_t minute = MinuteOf(at_ms);
  for (const auto& [dimension, value] : {std::pair<RollupDimension, const std::string*>{
                                             RollupDimension::kApplication, names.application},
                                         {RollupDimension::kProtocol, names.protocol},
                                         {RollupDimension::kHost, names.host}}) {
    // Most events add to a row the group already has: look it up by the scratch key and
    // copy the key only for a new row.
    key_.clear();
    key_.push_back(RollupDimensionCode(dimension));
    AppendBigEndian(minute, &key_);
    key_ += agent_id;
    key_ += '\0';
    key_ += *value;
    auto row = pending_.find(key_);
    if (row == pending_.end()) row = pending_.emplace(key_, RollupCounters{}).first;
    RollupCounters& sum = row->second;
    sum.bytes += counters.bytes;
    sum.packets += counters.packets;
    sum.flows += counters.flows;
  }
}

void RollupAccumulator::Add(const std::string& agent_id, const v1::Event& event,
                            uint64_t received_at_ms) {
  switch (event.body_case()) {
    case v1::Event::kFlow: {
      const v1::FlowMetadata& m = event.flow().flow();
      const KnownNames names{Intern(m.detected_application_name()),
                             Intern(m.detected_protocol_name()), Intern(m.host_server_name())};
      known_.insert_or_assign(KeyOf(agent_id, m.digest()), names);
      if (!m.detection_updated()) {
        const uint64_t at = m.first_seen_at() != 0  ? m.first_seen_at()
                            : m.last_seen_at() != 0 ? m.last_seen_at()
                                                    : received_at_ms;
        AddTo(agent_id, names, at, {.bytes = 0, .packets = 0, .flows = 1});
      }
      return;
    }
    case v1::Event::kFlowStats:
    case v1::Event::kFlowPurge: {
      const bool purge = event.has_flow_purge();
      const v1::FlowCounters& c = purge ? event.flow_purge().flow() : event.flow_stats().flow();
      const RollupCounters delta{.bytes = c.local_bytes() + c.other_bytes(),
                                 .packets = c.local_packets() + c.other_packets(),
                                 .flows = 0};
      const FlowKey key = KeyOf(agent_id, c.digest());
      if (delta.bytes != 0 || delta.packets != 0) {
        AddTo(agent_id, NamesOf(key, agent_id, c.digest()),
              c.last_seen_at() != 0 ? c.last_seen_at() : received_at_ms, delta);
      }
      // A purged flow's names stay known for a while (the newest kMaxPurgedFlows purged
      // flows): a later flow with the same addresses has the same digest, and its traffic
      // reported before its own `flow` event (flow_stats of a flow still in detection) is
      // attributed to them without reading the stored flow. They are forgotten only when a
      // group ends: until then the store lacks the group's `flow` events, and forgetting
      // within a group made attribution depend on where group boundaries fell. Remembering
      // every purged flow filled the memory with dead flows and fragmented the heap.
      if (purge) {
        if (auto known = known_.find(key); known != known_.end()) {
          known->second.purge_number = ++purges_;
          purged_.emplace_back(known->first, purges_);
        }
      }
      return;
    }
    default:
      return;
  }
}

Status RollupAccumulator::Flush(rocksdb::WriteBatch* batch, rocksdb::ColumnFamilyHandle* family) {
  Status status = Status::Ok();
  for (const auto& [key, counters] : pending_) {
    rocksdb::Status s = batch->Merge(family, key, EncodeCounters(counters));
    if (!s.ok()) {
      status = Status::IoError("building a write batch: " + s.ToString());
      break;
    }
  }
  pending_.clear();
  EndGroup();
  return status;
}

void RollupAccumulator::EndGroup() {
  bool forgot_this_group = false;
  while (purged_.size() > kMaxPurgedFlows) {
    const auto [key, number] = purged_.front();
    purged_.pop_front();
    // Unless a `flow` event made it live again (or it was purged again since).
    if (auto known = known_.find(key);
        known != known_.end() && known->second.purge_number == number) {
      known_.erase(known);
      forgot_this_group = forgot_this_group || number > purges_before_group_;
    }
  }
  if (known_.size() > kMaxKnownFlows || names_.size() > kMaxKnownFlows) {
    known_.clear();
    names_.clear();
    purged_.clear();
    forgot_this_group = true;
  }
  if (forgot_this_group) ++forgets_;
  purges_before_group_ = purges_;
}

void RollupAccumulator::DrainByMinute(
    const std::function<void(RollupDimension, uint64_t, const std::vector<RollupRow>&)>& take) {
  // Ordered by the keys' first 9 bytes (dimension, minute) alone: rows of one dimension
  // and minute come together, and the sort compares no names.
  std::vector<const std::pair<const std::string, RollupCounters>*> sorted;
  sorted.reserve(pending_.size());
  for (const auto& entry : pending_) sorted.push_back(&entry);
  std::sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) {
    return std::memcmp(a->first.data(), b->first.data(), 9) < 0;
  });
  std::vector<RollupRow> rows;
  for (size_t i = 0; i < sorted.size(); ++i) {
    const auto& [key, counters] = *sorted[i];
    const std::string_view rest = std::string_view(key).substr(9);
    const size_t separator = rest.find('\0');
    RollupRow& row = rows.emplace_back();
    row.minute_ms = ReadBigEndian(key.data() + 1);
    row.agent_id = rest.substr(0, separator);
    row.value = rest.substr(separator + 1);
    row.counters = counters;
    if (i + 1 == sorted.size() || std::memcmp(key.data(), sorted[i + 1]->first.data(), 9) != 0) {
      take(DimensionOfByte(key[0]), row.minute_ms, rows);
      rows.clear();
    }
  }
  pending_.clear();
}

bool RollupAccumulator::Knows(const std::string& agent_id, const std::string& digest) {
  return known_.contains(KeyOf(agent_id, digest));
}

std::shared_ptr<rocksdb::MergeOperator> NewRollupMergeOperator() {
  return std::make_shared<RollupMergeOperator>();
}

Status ScanRollupFamily(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* family,
                        const rocksdb::ReadOptions& read, RollupDimension dimension,
                        uint64_t from_ms, uint64_t to_ms,
                        const std::function<bool(const RollupRow&)>& visit) {
  std::string lower(1, RollupDimensionCode(dimension));
  AppendBigEndian(MinuteOf(from_ms), &lower);
  // The upper bound: the first minute at or after to_ms, or the end of the dimension.
  std::string upper(1, RollupDimensionCode(dimension));
  if (to_ms == 0) {
    upper[0] = static_cast<char>(upper[0] + 1);
  } else {
    AppendBigEndian(MinuteOf(to_ms + kRollupMinuteMs - 1), &upper);
  }
  rocksdb::ReadOptions options = read;
  rocksdb::Slice upper_slice(upper);
  options.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(options, family));
  RollupRow row;
  for (it->Seek(lower); it->Valid(); it->Next()) {
    const rocksdb::Slice key = it->key();
    if (key.size() < 10) continue;
    const std::string_view rest(key.data() + 9, key.size() - 9);
    const size_t separator = rest.find('\0');
    if (separator == std::string_view::npos) continue;
    row.minute_ms = ReadBigEndian(key.data() + 1);
    row.agent_id = rest.substr(0, separator);
    row.value = rest.substr(separator + 1);
    row.counters = {};
    AddEncoded(it->value(), &row.counters);
    if (!visit(row)) break;
  }
  if (!it->status().ok()) return Status::IoError("scanning rollups: " + it->status().ToString());
  return Status::Ok();
}

Status DeleteRollupsBefore(rocksdb::WriteBatch* batch, rocksdb::ColumnFamilyHandle* family,
                           uint64_t cutoff_ms) {
  for (RollupDimension dimension :
       {RollupDimension::kApplication, RollupDimension::kProtocol, RollupDimension::kHost}) {
    std::string begin(1, RollupDimensionCode(dimension));
    std::string end = begin;
    AppendBigEndian(0, &begin);
    AppendBigEndian(MinuteOf(cutoff_ms), &end);
    rocksdb::Status s = batch->DeleteRange(family, begin, end);
    if (!s.ok()) return Status::IoError("building a write batch: " + s.ToString());
  }
  return Status::Ok();
}

}  // namespace flowgate::storage
