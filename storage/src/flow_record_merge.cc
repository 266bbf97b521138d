#include "flow_record_merge.h"

#include <algorithm>

namespace flowgate::storage {
namespace {

// The counter rules of MergeFlowRecord, shared with FoldFlowEvent.
void MergeCounters(const v1::FlowCounters& n, v1::FlowCounters* c) {
  if (!n.digest().empty()) c->set_digest(n.digest());
  c->set_last_seen_at(std::max(c->last_seen_at(), n.last_seen_at()));
  c->set_local_bytes(c->local_bytes() + n.local_bytes());
  c->set_other_bytes(c->other_bytes() + n.other_bytes());
  c->set_local_packets(c->local_packets() + n.local_packets());
  c->set_other_packets(c->other_packets() + n.other_packets());
  c->set_total_bytes(std::max(c->total_bytes(), n.total_bytes()));
  c->set_total_packets(std::max(c->total_packets(), n.total_packets()));
  c->set_detection_packets(std::max(c->detection_packets(), n.detection_packets()));
}

// A refinement replaces the metadata, but the flow's first sighting stays the first.
void ReplaceMetadata(const v1::FlowMetadata& newer, v1::FlowRecord* into) {
  const uint64_t first_seen = into->metadata().first_seen_at();
  *into->mutable_metadata() = newer;
  if (first_seen != 0 && first_seen < newer.first_seen_at()) {
    into->mutable_metadata()->set_first_seen_at(first_seen);
  }
}

}  // namespace

bool FoldFlowEvent(const v1::Event& event, v1::FlowRecord* into) {
  switch (event.body_case()) {
    case v1::Event::kFlow: {
      const v1::FlowMetadata& m = event.flow().flow();
      *into->mutable_context() = event.flow().context();
      ReplaceMetadata(m, into);
      v1::FlowCounters* c = into->mutable_counters();
      if (!m.digest().empty()) c->set_digest(m.digest());
      c->set_last_seen_at(std::max(c->last_seen_at(), m.last_seen_at()));
      return true;
    }
    case v1::Event::kFlowStats:
      *into->mutable_context() = event.flow_stats().context();
      MergeCounters(event.flow_stats().flow(), into->mutable_counters());
      return true;
    case v1::Event::kFlowPurge:
      *into->mutable_context() = event.flow_purge().context();
      MergeCounters(event.flow_purge().flow(), into->mutable_counters());
      if (event.flow_purge().reason() != v1::PURGE_REASON_UNSPECIFIED) {
        into->set_purge_reason(event.flow_purge().reason());
      }
      return true;
    default:
      return false;
  }
}

const std::string* FlowEventDigest(const v1::Event& event) {
  switch (event.body_case()) {
    case v1::Event::kFlow:
      return &event.flow().flow().digest();
    case v1::Event::kFlowStats:
      return &event.flow_stats().flow().digest();
    case v1::Event::kFlowPurge:
      return &event.flow_purge().flow().digest();
    default:
      return nullptr;
  }
}

void MergeFlowRecord(const v1::FlowRecord& newer, v1::FlowRecord* into) {
  if (newer.has_agent()) *into->mutable_agent() = newer.agent();
  if (newer.has_context()) *into->mutable_context() = newer.context();
  if (newer.has_metadata()) ReplaceMetadata(newer.metadata(), into);
  MergeCounters(newer.counters(), into->mutable_counters());
  if (newer.purge_reason() != v1::PURGE_REASON_UNSPECIFIED) {
    into->set_purge_reason(newer.purge_reason());
  }
}

void RestoreFlowKeyFields(std::string_view agent_id, std::string_view digest,
                          v1::FlowRecord* record) {
  if (record->agent().id().empty()) record->mutable_agent()->set_id(std::string(agent_id));
  if (record->counters().digest().empty()) {
    record->mutable_counters()->set_digest(std::string(digest));
  }
  if (record->has_metadata() && record->metadata().digest().empty()) {
    record->mutable_metadata()->set_digest(std::string(digest));
  }
}

void StripFlowKeyFields(v1::FlowRecord* record) {
  record->mutable_agent()->clear_id();
  record->mutable_counters()->clear_digest();
  if (record->has_metadata()) record->mutable_metadata()->clear_digest();
}

}  // namespace flowgate::storage
