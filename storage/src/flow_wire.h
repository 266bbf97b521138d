// Reads a flow's activity times straight from its serialized FlowRecord, without parsing
// it, so that scans can drop flows outside a time range before paying for a full parse.
#pragma once

#include <optional>
#include <string_view>

#include "flowgate/storage/flow_store.h"

namespace flowgate::storage {

// The FlowActivityOf() of the serialized FlowRecord `bytes`, or nullopt when the bytes are
// not well-formed protobuf wire format (the caller then parses them and reports the error).
std::optional<FlowActivity> SerializedFlowActivity(std::string_view bytes);

// ParseFromArray into `*flow` for scans that parse record after record into one message:
// FlowRecord::Clear() frees every sub-message and string, so a plain parse allocates them
// all again per record; this clears their contents and keeps the allocations. The result
// equals a fresh parse (sub-messages absent from `bytes` are absent afterwards).
[[nodiscard]] bool ParseFlowRecordReusing(std::string_view bytes, v1::FlowRecord* flow);

}  // namespace flowgate::storage
