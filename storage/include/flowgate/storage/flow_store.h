// The gateway's store: the merged event log, the flows, and the agents' delivery marks.
//
// This interface is what the gateway's ingest and APIs see. The embedded RocksDB
// implementation is the default; a clustered backend can implement the same interface,
// so nothing here names RocksDB types.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "flowgate/common/envelope_codec.h"
#include "flowgate/common/filter.h"
#include "flowgate/common/status.h"
#include "flowgate/v1/flowgate.pb.h"
#include "flowgate/v1/transport.pb.h"

namespace flowgate::storage {

struct FlowStoreOptions {
  // Directory of the database; created if missing. REQUIRED.
  std::string path;
  // fsync the write-ahead log on every batch. Without it an acknowledged batch survives a
  // crash (kill -9) of the gateway, but not a power loss of the host.
  // Default: false.
  bool sync_writes = false;
  // ListAgents reports an agent offline once this many of its status intervals passed
  // without a batch from it (or after its final status). Default: 3.
  uint32_t offline_after_missed_intervals = 3;
};

enum class AppendOutcome {
  kApplied,    // the batch is durable now
  kDuplicate,  // this (agent id, boot id, sequence) was applied before; nothing changed
  // An earlier sequence of this boot is still due (see Envelope.resend_floor); nothing was
  // written. `expected_sequence` says which one.
  kOutOfOrder,
};

struct AppendResult {
  AppendOutcome outcome = AppendOutcome::kApplied;
  // Batches this agent boot skipped before this one (sequence numbers never seen); counted
  // so that loss upstream of the gateway is visible.
  uint64_t missing_before = 0;
  // With kOutOfOrder: the sequence the store applies next for this agent boot.
  uint64_t expected_sequence = 0;
};

// One agent batch handed to FlowStore::AppendBatch, and what became of it.
struct AppendItem {
  // The batch. REQUIRED. When it is applied and the caller wants the stored events, its
  // events are moved into `stored` (the identity and sequence stay).
  v1::Envelope envelope;
  // Optional: where the envelope's events lie in the bytes the agent sent (DecodeEnvelope
  // fills it). When it locates every event, the store writes those bytes as they are
  // instead of serializing each event again.
  EventWire wire;
  // Gateway wall clock when it arrived, ms. Arrival times must not decrease along the log.
  uint64_t received_at_ms = 0;
  // The peer it came from ("" when unknown): the agent's address in the registry.
  std::string peer_address;
  // Set by AppendBatch: what Append would have returned for this batch alone...
  Result<AppendResult> result = Status::Internal("not appended");
  // ...and with kApplied (when wanted) its events as stored, in log order, for fan-out.
  std::vector<v1::StoredEvent> stored;
};

// What one FlowStore::DropBefore removed.
struct DropStats {
  uint64_t events = 0;
  uint64_t flows = 0;
};

// Per-minute rollups: what traffic each agent reported in each minute, summed by
// application, protocol or host (semantics in storage/src/rollups.h and on
// TopRequest.source in flowgate.proto).
enum class RollupDimension : uint8_t { kApplication, kProtocol, kHost };
inline constexpr uint64_t kRollupMinuteMs = 60'000;
struct RollupCounters {
  uint64_t bytes = 0;    // local + other byte deltas reported in the minute
  uint64_t packets = 0;  // local + other packet deltas reported in the minute
  uint64_t flows = 0;    // flows first seen in the minute (first detection of each)
};
// One rollup row as read; the views are valid during the visit only.
struct RollupRow {
  uint64_t minute_ms = 0;  // start of the minute
  std::string_view agent_id;
  std::string_view value;  // the application, protocol or host name ("" when unknown)
  RollupCounters counters;
};

// The engine's own gauges and counters (RocksDB properties), for the metrics endpoint.
struct StoreHealth {
  uint64_t disk_bytes = 0;                // every file of the database
  uint64_t live_data_bytes = 0;           // live SST files
  uint64_t memtable_bytes = 0;            // all memtables, active and immutable
  uint64_t pending_compaction_bytes = 0;  // estimated bytes compaction still has to rewrite
  uint64_t running_compactions = 0;
  uint64_t write_slowdowns = 0;     // writes delayed by a stall condition, since open
  uint64_t write_stops = 0;         // writes stopped by a stall condition, since open
  bool write_stopped = false;       // writes are stopped right now
  uint64_t delayed_write_rate = 0;  // bytes/s writes are held to now (0: not delayed)
};

// What FlowStore::ScanMatchingFlows reads: flows active in [from_ms, to_ms) (to_ms 0: no
// upper bound) that `filter` matches (null: every flow).
struct FlowScan {
  uint64_t from_ms = 0;
  uint64_t to_ms = 0;
  const Filter* filter = nullptr;
};

// One flow as a scan meets it: a summary holding the fields that filters, query orders and
// Top read, and the whole record, parsed only when asked for (most flows a query meets
// never need it). Valid during the visit only.
class ScannedFlow {
 public:
  // A flow already parsed whole: its summary is the record itself.
  explicit ScannedFlow(const v1::FlowRecord& whole) : summary_(&whole), whole_(&whole) {}
  // A flow stored as `bytes` (a serialized FlowRecord) with `summary` decoded from them;
  // whole() parses `bytes` into `*scratch` (reused from flow to flow).
  ScannedFlow(const v1::FlowRecord& summary, std::string_view bytes, v1::FlowRecord* scratch)
      : summary_(&summary), bytes_(bytes), scratch_(scratch) {}

  // Of the record, at least: agent id, name and site; context interface; metadata digest,
  // addresses, ports, vlan_id, ip_version, ip_protocol, application, protocol and host
  // names, detection_guessed, first_seen_at, last_seen_at; counters digest, last_seen_at,
  // total_bytes, total_packets. Other fields may read as unset.
  const v1::FlowRecord& summary() const { return *summary_; }
  // The whole record, or null when its stored form does not parse.
  const v1::FlowRecord* whole();

 private:
  const v1::FlowRecord* summary_;
  const v1::FlowRecord* whole_ = nullptr;
  std::string_view bytes_;
  v1::FlowRecord* scratch_ = nullptr;
  bool parse_failed_ = false;
};

// A group of batches FlowStore::PrepareBatch made ready and CommitBatch writes.
class PreparedBatch {
 public:
  virtual ~PreparedBatch() = default;
};

class FlowStore {
 public:
  virtual ~FlowStore() = default;

  // Applies one agent batch atomically (one write to the log): every event is appended to
  // the merged log under the next gateway sequence numbers, flows are upserted (metadata
  // replaced, counters added; no read-modify-write), and the agent boot's high-water mark
  // advances to `envelope.sequence()`. A batch at or below the mark returns kDuplicate and
  // writes nothing. A batch past mark + 1 is applied only if its `resend_floor` equals its
  // sequence (the agent gave up on the gap); otherwise it returns kOutOfOrder and writes
  // nothing. On success `*stored` (if non-null) receives the events as stored, in
  // log order, for fan-out.
  // Thread safety: one thread calls Append; readers may run concurrently. The default
  // appends a group of one through AppendBatch.
  [[nodiscard]] virtual Result<AppendResult> Append(const v1::Envelope& envelope,
                                                    uint64_t received_at_ms,
                                                    std::vector<v1::StoredEvent>* stored);

  // Group commit: applies `items` in order, each exactly as Append would (the same
  // duplicate and order checks, where a later batch of an agent boot sees the mark as
  // advanced by the earlier ones in `items`), but all in ONE write, so they become durable
  // together at the cost of one. An item refused with InvalidArgument leaves the others
  // unaffected. When the write fails nothing was applied: the error is returned and is
  // every item's result. `want_stored`: fill each applied item's `stored`.
  // Thread safety: as Append (the same one thread calls both).
  [[nodiscard]] virtual Status AppendBatch(std::vector<AppendItem>& items, bool want_stored) = 0;

  // AppendBatch in two steps, so that one thread can prepare a group (judge and encode
  // it: everything but the write) while another writes the group before it. PrepareBatch
  // fills each item's result (and `stored`) as AppendBatch would if every group prepared
  // before had been written; CommitBatch writes the group and returns what AppendBatch
  // would. When a write fails, so does every group prepared on top of it before the
  // failure showed: none of them is applied, and CommitBatch gives their items the error
  // (the agents resend them). A prepared group dropped uncommitted counts as a failed write.
  // Thread safety: PrepareBatch and RecordRejection from one thread; CommitBatch from one
  // thread (that one or another), once for each prepared group, in the order they were
  // prepared, with the same `items`, untouched in between. PrepareBatch may wait for the
  // groups prepared before it to be committed, so a caller with one thread commits each
  // group before it prepares the next. The default appends the whole group in PrepareBatch
  // (so a store that does not override both works on one thread).
  [[nodiscard]] virtual std::unique_ptr<PreparedBatch> PrepareBatch(std::vector<AppendItem>& items,
                                                                    bool want_stored);
  [[nodiscard]] virtual Status CommitBatch(std::unique_ptr<PreparedBatch> prepared,
                                           std::vector<AppendItem>& items);

  // The flow of agent `agent_id` with `digest`, or nullopt. Thread-safe.
  [[nodiscard]] virtual Result<std::optional<v1::FlowRecord>> GetFlow(
      const std::string& agent_id, const std::string& digest) = 0;

  // Calls `visit` for every stored flow, ordered by (agent id, digest), until it returns
  // false. Thread-safe; sees a consistent snapshot.
  [[nodiscard]] virtual Status ScanFlows(
      const std::function<bool(const v1::FlowRecord&)>& visit) = 0;

  // Calls `visit` for every stored flow active at some time in [from_ms, to_ms) (see
  // FlowActiveIn), in no particular order and each flow once, until it returns false.
  // Thread-safe; sees a consistent snapshot. The default scans every flow; a store with a
  // time index overrides it to read only the flows whose last activity is at or after
  // from_ms.
  [[nodiscard]] virtual Status ScanActiveFlows(
      uint64_t from_ms, uint64_t to_ms, const std::function<bool(const v1::FlowRecord&)>& visit);

  // Calls `visit` for every stored flow active at some time in [scan.from_ms, scan.to_ms)
  // that scan.filter matches (null: every flow), in no particular order and each flow once,
  // until it returns false. Thread-safe; sees a consistent snapshot. Stores that can decide
  // the range and the filter on a few fields read from the stored form (see ScannedFlow)
  // skip the full parse of the flows they drop; the default reads ScanActiveFlows.
  [[nodiscard]] virtual Status ScanMatchingFlows(const FlowScan& scan,
                                                 const std::function<bool(ScannedFlow&)>& visit);

  // Calls `visit` for every rollup row of `dimension` whose minute starts in
  // [from_ms, to_ms) (to_ms == 0: no upper bound), in (minute, agent id, value) order, until
  // it returns false. Thread-safe; sees a consistent snapshot. Only when has_rollups(); the
  // default (a store without rollups, whose Top reads raw flows) returns NotFound.
  [[nodiscard]] virtual Status ScanRollups(RollupDimension dimension, uint64_t from_ms,
                                           uint64_t to_ms,
                                           const std::function<bool(const RollupRow&)>& visit);
  virtual bool has_rollups() const { return false; }

  // Appends to *out up to `limit` events of the merged log with gateway sequence greater
  // than `after_sequence`, in order. Thread-safe.
  [[nodiscard]] virtual Status ReadEvents(uint64_t after_sequence, size_t limit,
                                          std::vector<v1::StoredEvent>* out) = 0;

  // The agents that ever delivered a batch, with their delivery counters. Thread-safe.
  [[nodiscard]] virtual Result<std::vector<v1::AgentRecord>> ListAgents() = 0;

  // Counts a batch of `agent` that ingest refused (`reason`: "malformed", "version",
  // "too_large", ...) and notes the peer `address` it came from (empty: unknown), in the
  // agent's registry record (persisted). An agent with an empty id is not recorded.
  // Thread safety: called by the Append (or PrepareBatch) thread only; it may wait for the
  // groups prepared before it to be committed (as PrepareBatch may).
  [[nodiscard]] virtual Status RecordRejection(const v1::AgentIdentity& agent,
                                               const std::string& reason,
                                               const std::string& address,
                                               uint64_t received_at_ms) = 0;

  // The gateway sequence number of the newest stored event (0 when the log is empty).
  virtual uint64_t last_sequence() const = 0;

  // Retention: drops everything older than `cutoff_ms` (rounded down to the store's time
  // granularity): events received before it, flows whose last activity is before it and
  // rollup minutes that start before it.
  // Whole time ranges go at once; the space is reclaimed before returning. Afterwards
  // retained_from_ms() is at least the cutoff. Thread-safe with Append and readers (a flow
  // updated while it is dropped keeps the update).
  [[nodiscard]] virtual Result<DropStats> DropBefore(uint64_t cutoff_ms) = 0;
  // The time of the oldest data held (flow activity or event arrival); 0 when empty.
  [[nodiscard]] virtual Result<uint64_t> OldestDataMs() = 0;
  // Compacts the whole store now (what background compaction does over time: merged
  // records, no pending operands). For benchmarks and maintenance. Thread-safe.
  [[nodiscard]] virtual Status CompactAll() { return Status::Ok(); }
  // Bytes the store occupies on disk now (every file of the database). Thread-safe.
  [[nodiscard]] virtual Result<uint64_t> DiskBytes() = 0;
  // What an operator watches: size, memory and write stalls. Thread-safe.
  [[nodiscard]] virtual Result<StoreHealth> Health() = 0;
  // Data before this time was dropped by retention (0: nothing ever dropped). Survives
  // restarts. Thread-safe.
  virtual uint64_t retained_from_ms() const = 0;
};

// The times a stored flow was active: from its first sighting (the metadata's
// first_seen_at; its last activity when no `flow` event arrived yet) to its last activity
// (the latest last_seen_at of its metadata and counters).
struct FlowActivity {
  uint64_t first_ms = 0;
  uint64_t last_ms = 0;
};
FlowActivity FlowActivityOf(const v1::FlowRecord& flow);
// True when `flow` was active at some time in [from_ms, to_ms).
bool FlowActiveIn(const v1::FlowRecord& flow, uint64_t from_ms, uint64_t to_ms);

// Opens (creating if needed) the RocksDB store at options.path. Fails with a message that
// names the path: not writable, locked by another process, corrupt.
Result<std::unique_ptr<FlowStore>> OpenRocksFlowStore(const FlowStoreOptions& options);

}  // namespace flowgate::storage
