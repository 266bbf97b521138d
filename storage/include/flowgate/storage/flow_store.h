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
#include <vector>

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
};

enum class AppendOutcome {
  kApplied,    // the batch is durable now
  kDuplicate,  // this (agent id, boot id, sequence) was applied before; nothing changed
};

struct AppendResult {
  AppendOutcome outcome = AppendOutcome::kApplied;
  // Batches this agent boot skipped before this one (sequence numbers never seen); counted
  // so that loss upstream of the gateway is visible.
  uint64_t missing_before = 0;
};

class FlowStore {
 public:
  virtual ~FlowStore() = default;

  // Applies one agent batch atomically (one write to the log): every event is appended to
  // the merged log under the next gateway sequence numbers, flows are upserted (metadata
  // replaced, counters added; no read-modify-write), and the agent boot's high-water mark
  // advances to `envelope.sequence()`. A batch at or below the mark returns kDuplicate and
  // writes nothing. On success `*stored` (if non-null) receives the events as stored, in
  // log order, for fan-out.
  // Thread safety: one thread calls Append; readers may run concurrently.
  [[nodiscard]] virtual Result<AppendResult> Append(const v1::Envelope& envelope,
                                                    uint64_t received_at_ms,
                                                    std::vector<v1::StoredEvent>* stored) = 0;

  // The flow of agent `agent_id` with `digest`, or nullopt. Thread-safe.
  [[nodiscard]] virtual Result<std::optional<v1::FlowRecord>> GetFlow(
      const std::string& agent_id, const std::string& digest) = 0;

  // Calls `visit` for every stored flow, ordered by (agent id, digest), until it returns
  // false. Thread-safe; sees a consistent snapshot.
  [[nodiscard]] virtual Status ScanFlows(
      const std::function<bool(const v1::FlowRecord&)>& visit) = 0;

  // Appends to *out up to `limit` events of the merged log with gateway sequence greater
  // than `after_sequence`, in order. Thread-safe.
  [[nodiscard]] virtual Status ReadEvents(uint64_t after_sequence, size_t limit,
                                          std::vector<v1::StoredEvent>* out) = 0;

  // The agents that ever delivered a batch, with their delivery counters. Thread-safe.
  [[nodiscard]] virtual Result<std::vector<v1::AgentRecord>> ListAgents() = 0;

  // The gateway sequence number of the newest stored event (0 when the log is empty).
  virtual uint64_t last_sequence() const = 0;
};

// Opens (creating if needed) the RocksDB store at options.path. Fails with a message that
// names the path: not writable, locked by another process, corrupt.
Result<std::unique_ptr<FlowStore>> OpenRocksFlowStore(const FlowStoreOptions& options);

}  // namespace flowgate::storage
