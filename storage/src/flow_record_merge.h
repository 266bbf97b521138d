// How flow events fold into a stored FlowRecord. Pure functions, so the RocksDB merge
// operator, the store's ingest and the tests share one definition.
#pragma once

#include <google/protobuf/arena.h>

#include <cstddef>
#include <memory>
#include <string_view>

#include "flowgate/v1/flowgate.pb.h"

namespace flowgate::storage {

// Folds the FlowRecord contribution of one flow event (flow, flow_stats or flow_purge) into
// `*into` as MergeFlowRecord would fold that contribution as a record of its own, without
// building one: the context (and for `flow` the metadata) replaced, counters added or
// maxed, a purge reason kept. The agent is not touched. Returns false, leaving `*into`
// alone, for events that are not about a flow.
bool FoldFlowEvent(const v1::Event& event, v1::FlowRecord* into);

// The digest of the flow `event` is about, or nullptr for events that are not about one.
const std::string* FlowEventDigest(const v1::Event& event);

// Folds `newer` into `*into`. Associative: metadata and context are replaced by the newer
// ones when present, counter deltas add up, cumulative totals and times take the maximum,
// and a purge reason once set stays.
void MergeFlowRecord(const v1::FlowRecord& newer, v1::FlowRecord* into);

// Ingest leaves out of a flow's merge operands what its key (agent id '\0' digest) says:
// agent.id, counters.digest and metadata.digest (a third of the bytes). This puts them back
// where they are empty.
void RestoreFlowKeyFields(std::string_view agent_id, std::string_view digest,
                          v1::FlowRecord* record);
// ...and this takes them out.
void StripFlowKeyFields(v1::FlowRecord* record);

// The first block of the arenas that ingest folds a group's (or a batch's) flow records in,
// kept from one to the next: fresh memory for each costs a page fault per 4 KiB, and
// building and freeing records through malloc cost more than folding them.
class KeptArenaBlock {
 public:
  explicit KeptArenaBlock(size_t bytes)
      : block_(std::make_unique_for_overwrite<char[]>(bytes)), bytes_(bytes) {}
  // Options for an Arena starting in this block; one such Arena alive at a time.
  google::protobuf::ArenaOptions options() const {
    google::protobuf::ArenaOptions options;
    options.initial_block = block_.get();
    options.initial_block_size = bytes_;
    options.max_block_size = 4u << 20;
    return options;
  }

 private:
  std::unique_ptr<char[]> block_;
  size_t bytes_;
};

}  // namespace flowgate::storage
