#include "flow_record_merge.h"

#include <algorithm>

namespace flowgate::storage {

std::optional<v1::FlowRecord> FlowRecordDelta(const v1::AgentIdentity& agent,
                                              const v1::Event& event) {
  v1::FlowRecord delta;
  switch (event.body_case()) {
    case v1::Event::kFlow:
      *delta.mutable_context() = event.flow().context();
      *delta.mutable_metadata() = event.flow().flow();
      delta.mutable_counters()->set_digest(event.flow().flow().digest());
      delta.mutable_counters()->set_last_seen_at(event.flow().flow().last_seen_at());
      break;
    case v1::Event::kFlowStats:
      *delta.mutable_context() = event.flow_stats().context();
      *delta.mutable_counters() = event.flow_stats().flow();
      break;
    case v1::Event::kFlowPurge:
      *delta.mutable_context() = event.flow_purge().context();
      *delta.mutable_counters() = event.flow_purge().flow();
      delta.set_purge_reason(event.flow_purge().reason());
      break;
    default:
      return std::nullopt;
  }
  // Only what identifies the agent: its status and version belong to the registry.
  delta.mutable_agent()->set_id(agent.id());
  delta.mutable_agent()->set_name(agent.name());
  delta.mutable_agent()->set_site(agent.site());
  return delta;
}

void MergeFlowRecord(const v1::FlowRecord& newer, v1::FlowRecord* into) {
  if (newer.has_agent()) *into->mutable_agent() = newer.agent();
  if (newer.has_context()) *into->mutable_context() = newer.context();
  if (newer.has_metadata()) {
    // A refinement replaces the metadata, but the flow's first sighting stays the first.
    uint64_t first_seen = into->metadata().first_seen_at();
    *into->mutable_metadata() = newer.metadata();
    if (first_seen != 0 && first_seen < newer.metadata().first_seen_at()) {
      into->mutable_metadata()->set_first_seen_at(first_seen);
    }
  }
  const v1::FlowCounters& n = newer.counters();
  v1::FlowCounters* c = into->mutable_counters();
  if (!n.digest().empty()) c->set_digest(n.digest());
  c->set_last_seen_at(std::max(c->last_seen_at(), n.last_seen_at()));
  c->set_local_bytes(c->local_bytes() + n.local_bytes());
  c->set_other_bytes(c->other_bytes() + n.other_bytes());
  c->set_local_packets(c->local_packets() + n.local_packets());
  c->set_other_packets(c->other_packets() + n.other_packets());
  c->set_total_bytes(std::max(c->total_bytes(), n.total_bytes()));
  c->set_total_packets(std::max(c->total_packets(), n.total_packets()));
  c->set_detection_packets(std::max(c->detection_packets(), n.detection_packets()));
  if (newer.purge_reason() != v1::PURGE_REASON_UNSPECIFIED) {
    into->set_purge_reason(newer.purge_reason());
  }
}

}  // namespace flowgate::storage
