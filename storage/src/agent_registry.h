// The delivery rules a store applies to each agent batch and the registry record they keep,
// shared by every FlowStore so that each backend judges batches and lists agents alike.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "flowgate/storage/flow_store.h"

namespace flowgate::storage {

// The key of a pair in the stores' maps and tables: a '\0' b. Marks are keyed
// (agent id, boot id), flows (agent id, digest).
std::string JoinKey(std::string_view a, std::string_view b);

// FNV-1a (64-bit) of `bytes`: a hash every gateway and every build computes alike (a shard
// choice must not depend on the standard library's hash).
uint64_t Fnv1a64(std::string_view bytes);

// InvalidArgument when `envelope` lacks what identifies a batch (agent id, boot id,
// sequence): no store can apply or deduplicate it.
Status CheckBatchIdentity(const v1::Envelope& envelope);

// What becomes of one batch.
struct BatchVerdict {
  AppendResult result;
  bool apply = false;    // kApplied: write its events and advance the mark to its sequence
  bool persist = false;  // the registry record changed in a way worth writing
};

// Judges `item`'s envelope (CheckBatchIdentity passed) against its agent boot's high-water
// `mark` and counts it in `*record` (with the address it came from, when known): batches of
// a boot apply strictly in order, so the mark alone tells what was applied; a batch at or
// below it is a duplicate; a gap is accepted only when the agent says it holds nothing below
// this batch (resend_floor == sequence): whatever is missing it gave up on, so skipping it
// can never skip something it will still resend. Out-of-order batches are counted but not
// persisted (nothing is written for a batch that will come again).
BatchVerdict JudgeBatch(const AppendItem& item, uint64_t mark, v1::AgentRecord* record);

// A group's write failed: nothing of it was applied, `status` is every item's result.
void FailGroup(const Status& status, std::vector<AppendItem>& items);

// Counts a batch of `agent` refused by ingest for `reason`, from peer `address` ("" unknown).
void CountRejection(const v1::AgentIdentity& agent, const std::string& reason,
                    const std::string& address, uint64_t received_at_ms, v1::AgentRecord* record);

// Online is judged when asked: an agent that said goodbye (final status) is offline at once;
// otherwise after `offline_after_missed_intervals` status intervals without a batch.
void SetOnline(uint64_t now_ms, uint32_t offline_after_missed_intervals, v1::AgentRecord* record);

// ListAgents order: by name, then id.
void SortAgents(std::vector<v1::AgentRecord>* agents);

// Milliseconds since the epoch, by the system clock.
uint64_t WallClockMs();

}  // namespace flowgate::storage
