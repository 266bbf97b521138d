// Per-minute rollups of the traffic each agent reports, by application, protocol and host,
// so that aggregates over a day (Top) read a few rows per minute instead of every flow.
//
// What a row counts. Rows live in the "rollups" column family, keyed
//   dimension (1 byte: 'a' application, 'p' protocol, 'h' host)
//   minute start in ms (8 bytes, big-endian)
//   agent id '\0' value (the application, protocol or host name; "" when unknown)
// -> three little-endian uint64: bytes, packets, flows. Keys of one dimension are ordered by
// time, so a range of minutes is one contiguous scan and retention one DeleteRange.
//   bytes, packets  the traffic reported in the minute: the local + other deltas of every
//                   flow_stats and flow_purge event, at the minute of its counters'
//                   last_seen_at (the gateway's arrival time when the agent sent none).
//   flows           flows first seen in the minute: every `flow` event that is a flow's
//                   first detection (detection_updated false), at the minute of its
//                   first_seen_at (else last_seen_at, else arrival). Additive over minutes,
//                   unlike "flows active", which would count a long flow once per minute.
// A delta is attributed to the application, protocol and host the agent had reported for
// the flow when the delta arrived (a later refinement does not move earlier traffic). A
// flow whose `flow` event the store never received is attributed to "".
//
// Writing: the store's Append feeds every event of a batch to a RollupAccumulator, which
// sums in memory, and flushes the sums as Merge operands into the same WriteBatch as the
// events, so rollups are exactly-once with the log (a duplicate batch adds nothing). The
// merge operator adds counters: no read-modify-write on ingest.
#pragma once

#include <rocksdb/merge_operator.h>
#include <rocksdb/write_batch.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <memory_resource>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "flowgate/common/status.h"
#include "flowgate/storage/flow_store.h"
#include "flowgate/v1/events.pb.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
struct ReadOptions;
}  // namespace rocksdb

namespace flowgate::storage {

inline constexpr char kRollupsFamily[] = "rollups";

// The one-byte code of a dimension in stored keys and rows: 'a', 'p' or 'h'.
char RollupDimensionCode(RollupDimension dimension);

// The names a flow's traffic is rolled up under.
struct FlowDimensions {
  std::string application;
  std::string protocol;
  std::string host;
};

// Sums the rollup contributions of events in memory and emits them as Merge operands.
// Keeps the dimensions of the flows it saw (bounded; a miss asks `lookup`, which reads the
// stored flow). Thread safety: one thread (the store's Append, or PrepareBatch, thread).
class RollupAccumulator {
 public:
  // The stored dimensions of the flow (agent id, digest), or nullopt if it is not stored.
  using Lookup = std::function<std::optional<FlowDimensions>(const std::string& agent_id,
                                                             const std::string& digest)>;
  explicit RollupAccumulator(Lookup lookup) : lookup_(std::move(lookup)) {
    // Buckets for its usual size (the purged flows it keeps plus as many live ones) from
    // the start: growing there rehashed every node several times over.
    known_.reserve(kMaxPurgedFlows * 2);
  }

  // Adds the contribution of `event` of agent `agent_id` (events of one agent in log order).
  void Add(const std::string& agent_id, const v1::Event& event, uint64_t received_at_ms);
  // Adds the pending sums to `batch` as Merge operands of `family`, forgets them, and ends
  // the group (EndGroup).
  [[nodiscard]] Status Flush(rocksdb::WriteBatch* batch, rocksdb::ColumnFamilyHandle* family);
  // Hands the pending sums to `take` one dimension and minute at a time, as rows (their
  // views valid during the call), and forgets them: for stores that write rollup rows
  // themselves.
  void DrainByMinute(const std::function<void(RollupDimension, uint64_t minute_ms,
                                              const std::vector<RollupRow>&)>& take);
  // Forgets the names of the oldest purged flows beyond kMaxPurgedFlows (and everything,
  // should the flows it knows pass kMaxKnownFlows); call once a group is written (or
  // failed), not between its batches.
  void EndGroup();

  static constexpr size_t kMaxKnownFlows = 1 << 19;
  static constexpr size_t kMaxPurgedFlows = 1 << 17;
  // Forgets pending sums (the batch they were for is not written) and ends the group.
  void Discard() {
    pending_.clear();
    EndGroup();
  }
  // True when the dimensions of flow (agent id, digest) are known without asking `lookup`.
  bool Knows(const std::string& agent_id, const std::string& digest);
  // Counts the group ends at which the memory forgot names that the group just ended
  // taught it (all of them when it outgrew kMaxKnownFlows, or a flow that group purged): a
  // store that writes groups behind the accumulator must have written them before `lookup`
  // answers for the next one.
  uint64_t forgets() const { return forgets_; }

 private:
  // Which flow a known_ entry is about: see KeyOf.
  struct FlowKey {
    uint64_t first;
    uint64_t second;
    bool operator==(const FlowKey&) const = default;
  };
  struct FlowKeyHash {
    size_t operator()(const FlowKey& key) const { return key.first; }
  };
  // The names a flow's traffic goes to, interned in names_.
  struct KnownNames {
    const std::string* application;
    const std::string* protocol;
    const std::string* host;
    uint64_t purge_number = 0;  // 0 while live; else its place in purged_
  };
  FlowKey KeyOf(std::string_view agent_id, std::string_view digest);
  const std::string* Intern(const std::string& name);
  // The names of flow `key` (= KeyOf(agent_id, digest)), asking the store on a miss.
  KnownNames NamesOf(const FlowKey& key, const std::string& agent_id, const std::string& digest);
  void AddTo(const std::string& agent_id, const KnownNames& names, uint64_t at_ms,
             const RollupCounters& counters);

  Lookup lookup_;
  // Flows seen (live, or among the newest kMaxPurgedFlows purged) -> their names; cleared
  // with names_ when either outgrows kMaxKnownFlows (between groups), after which misses
  // read the store.
  // The memory's nodes come from a pool of their own: interleaved with the short-lived
  // allocations of every batch on the common heap they fragmented it, and malloc slowed
  // down for the whole gateway.
  std::pmr::unsynchronized_pool_resource known_pool_;
  std::pmr::unordered_map<FlowKey, KnownNames, FlowKeyHash> known_{&known_pool_};
  std::unordered_set<std::string> names_;  // node-based: the names' addresses stay put
  uint64_t purges_ = 0;                    // purge numbers given
  uint64_t purges_before_group_ = 0;       // purges_ when the group began
  uint64_t forgets_ = 0;
  std::pmr::deque<std::pair<FlowKey, uint64_t>> purged_{&known_pool_};  // oldest first
  std::unordered_map<std::string, RollupCounters> pending_;             // rollup key -> sums
  std::string flow_key_;                                                // scratch: KeyOf's text
  std::string key_;                                                     // scratch: a pending_ key
};

// Adds the counters of rollup values (any number of operands).
std::shared_ptr<rocksdb::MergeOperator> NewRollupMergeOperator();

// Reads the rows of `dimension` with minutes in [from_ms, to_ms) (to_ms 0: unbounded).
[[nodiscard]] Status ScanRollupFamily(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* family,
                                      const rocksdb::ReadOptions& read, RollupDimension dimension,
                                      uint64_t from_ms, uint64_t to_ms,
                                      const std::function<bool(const RollupRow&)>& visit);

// Adds to `batch` the range deletions of every rollup minute before `cutoff_ms`.
[[nodiscard]] Status DeleteRollupsBefore(rocksdb::WriteBatch* batch,
                                         rocksdb::ColumnFamilyHandle* family, uint64_t cutoff_ms);

}  // namespace flowgate::storage
