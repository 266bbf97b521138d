// Reads a stored flow's activity times and the fields a scan decides on straight from its
// serialized FlowRecord, so that scans drop flows outside a time range or a filter before
// paying for a full parse.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "flowgate/storage/flow_store.h"

namespace flowgate::storage {

// The FlowActivityOf() of the serialized FlowRecord `bytes`, or nullopt when the bytes are
// not well-formed protobuf wire format (the caller then parses them and reports the error).
std::optional<FlowActivity> SerializedFlowActivity(std::string_view bytes);

// The fields of a serialized FlowRecord that ScannedFlow promises in its summary, as read
// from the wire: views into the bytes (valid while they are). Absent fields read as 0/"".
struct FlowSummaryView {
  std::string_view agent_id, agent_name, agent_site, interface;
  std::string_view digest, local_ip, other_ip, protocol, application, host;  // metadata
  uint32_t ip_version = 0, ip_protocol = 0, vlan_id = 0, local_port = 0, other_port = 0;
  bool guessed = false;
  uint64_t first_seen_at = 0, last_seen_at = 0;  // metadata
  std::string_view counters_digest;
  uint64_t counters_last_seen_at = 0, total_bytes = 0, total_packets = 0;
  // FlowActivityOf() the record.
  FlowActivity activity() const;
};
// Reads `*view` from `bytes` without copying anything. False when the bytes are not
// well-formed wire format (never reads past their end). Like a parse, it does not check
// that strings are UTF-8: the full parse does.
[[nodiscard]] bool ReadFlowSummary(std::string_view bytes, FlowSummaryView* view);
// Sets the summary fields of `*summary` from `view` (every other field is left as it is),
// reusing its strings' allocations.
void CopyFlowSummary(const FlowSummaryView& view, v1::FlowRecord* summary);

// ReadFlowSummary then CopyFlowSummary, and `*activity` set to the record's FlowActivityOf().
// A message only ever filled this way holds exactly the summary fields.
[[nodiscard]] bool DecodeFlowSummary(std::string_view bytes, v1::FlowRecord* summary,
                                     FlowActivity* activity);

// FlowActiveIn() on times already known.
inline bool ActivityIn(const FlowActivity& activity, uint64_t from_ms, uint64_t to_ms) {
  return activity.last_ms >= from_ms && (to_ms == 0 || activity.first_ms < to_ms);
}

// ParseFromArray into `*flow` for scans that parse record after record into one message:
// FlowRecord::Clear() frees every sub-message and string, so a plain parse allocates them
// all again per record; this clears their contents and keeps the allocations. The result
// equals a fresh parse (sub-messages absent from `bytes` are absent afterwards).
[[nodiscard]] bool ParseFlowRecordReusing(std::string_view bytes, v1::FlowRecord* flow);

}  // namespace flowgate::storage
