// How flow events fold into a stored FlowRecord. Pure functions, so the RocksDB merge
// operator and the tests share one definition.
#pragma once

#include <optional>

#include "flowgate/v1/flowgate.pb.h"

namespace flowgate::storage {

// The FlowRecord contribution of one flow event (flow, flow_stats or flow_purge), or
// nullopt for events that are not about a flow.
std::optional<v1::FlowRecord> FlowRecordDelta(const v1::AgentIdentity& agent,
                                              const v1::Event& event);

// Folds `newer` into `*into`. Associative: metadata and context are replaced by the newer
// ones when present, counter deltas add up, cumulative totals and times take the maximum,
// and a purge reason once set stays.
void MergeFlowRecord(const v1::FlowRecord& newer, v1::FlowRecord* into);

}  // namespace flowgate::storage
