#include "flow_wire.h"

#include <google/protobuf/io/coded_stream.h>

#include <algorithm>
#include <cstdint>

namespace flowgate::storage {
namespace {

using Record = v1::FlowRecord;
using Agent = v1::AgentIdentity;
using Context = v1::FlowContext;
using Metadata = v1::FlowMetadata;
using Counters = v1::FlowCounters;

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

class WireReader {
 public:
  explicit WireReader(std::string_view bytes)
      : at_(bytes.data()), end_(bytes.data() + bytes.size()) {}
  bool done() const { return at_ == end_; }

  // Reads one field: its number and wire type, and either its varint value or its
  // length-delimited bytes; fixed-width values are skipped. False on malformed input (also
  // a group or a field number 0, which no message of ours holds); never reads past the end.
  bool Field(uint32_t* number, uint32_t* type, uint64_t* varint, std::string_view* bytes) {
    uint64_t tag = 0;
    if (!Varint(&tag) || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff) return false;
    *number = static_cast<uint32_t>(tag >> 3);
    *type = static_cast<uint32_t>(tag & 7);
    switch (*type) {
      case kVarint:
        return Varint(varint);
      case kFixed64:
        return Skip(8);
      case kLengthDelimited: {
        uint64_t length = 0;
        if (!Varint(&length) || length > static_cast<uint64_t>(end_ - at_)) return false;
        *bytes = std::string_view(at_, length);
        at_ += length;
        return true;
      }
      case kFixed32:
        return Skip(4);
      default:
        return false;
    }
  }

 private:
  bool Varint(uint64_t* value) {
    *value = 0;
    for (int shift = 0; shift < 70 && at_ < end_; shift += 7) {
      const auto byte = static_cast<uint8_t>(*at_++);
      if (shift < 64) *value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;  // truncated, or longer than the 10 bytes a varint may take
  }
  bool Skip(size_t n) {
    if (static_cast<size_t>(end_ - at_) < n) return false;
    at_ += n;
    return true;
  }
  const char* at_;
  const char* end_;
};

// Calls on_field(number, type, varint, bytes) for every field of the message `bytes`.
// False when it is malformed or on_field returns false.
template <typename OnField>
bool ForEachField(std::string_view bytes, OnField&& on_field) {
  WireReader reader(bytes);
  uint32_t number = 0, type = 0;
  uint64_t varint = 0;
  std::string_view nested;
  while (!reader.done()) {
    if (!reader.Field(&number, &type, &varint, &nested)) return false;
    if (!on_field(number, type, varint, nested)) return false;
  }
  return true;
}

// The same rule as FlowActivityOf.
FlowActivity ActivityOf(uint64_t first_seen, uint64_t metadata_last, uint64_t counters_last) {
  FlowActivity activity;
  activity.last_ms = std::max(metadata_last, counters_last);
  activity.first_ms = first_seen;
  if (activity.first_ms == 0 || activity.first_ms > activity.last_ms) {
    activity.first_ms =
        std::min(activity.first_ms == 0 ? activity.last_ms : activity.first_ms, activity.last_ms);
  }
  return activity;
}

// A field of the wrong wire type is an unknown field to a parse, which skips it: so do we.
bool IsText(uint32_t type) { return type == kLengthDelimited; }
bool IsNumber(uint32_t type) { return type == kVarint; }

void Assign(std::string* to, std::string_view from) { to->assign(from.data(), from.size()); }

}  // namespace

FlowActivity FlowSummaryView::activity() const {
  return ActivityOf(first_seen_at, last_seen_at, counters_last_seen_at);
}

bool ReadFlowSummary(std::string_view bytes, FlowSummaryView* view) {
  FlowSummaryView& v = *view;
  v = FlowSummaryView();
  return ForEachField(
      bytes, [&](uint32_t number, uint32_t type, uint64_t, std::string_view nested) {
        if (!IsText(type)) return true;
        switch (number) {
          case Record::kAgentFieldNumber:
            return ForEachField(
                nested, [&](uint32_t field, uint32_t field_type, uint64_t, std::string_view text) {
                  if (!IsText(field_type)) return true;
                  if (field == Agent::kIdFieldNumber) v.agent_id = text;
                  if (field == Agent::kNameFieldNumber) v.agent_name = text;
                  if (field == Agent::kSiteFieldNumber) v.agent_site = text;
                  return true;
                });
          case Record::kContextFieldNumber:
            return ForEachField(
                nested, [&](uint32_t field, uint32_t field_type, uint64_t, std::string_view text) {
                  if (IsText(field_type) && field == Context::kInterfaceFieldNumber)
                    v.interface = text;
                  return true;
                });
          case Record::kMetadataFieldNumber:
            return ForEachField(nested, [&](uint32_t field, uint32_t field_type, uint64_t value,
                                            std::string_view text) {
              if (IsText(field_type)) {
                switch (field) {
                  case Metadata::kDigestFieldNumber:
                    v.digest = text;
                    break;
                  case Metadata::kLocalIpFieldNumber:
                    v.local_ip = text;
                    break;
                  case Metadata::kOtherIpFieldNumber:
                    v.other_ip = text;
                    break;
                  case Metadata::kDetectedProtocolNameFieldNumber:
                    v.protocol = text;
                    break;
                  case Metadata::kDetectedApplicationNameFieldNumber:
                    v.application = text;
                    break;
                  case Metadata::kHostServerNameFieldNumber:
                    v.host = text;
                    break;
                  default:
                    break;
                }
                return true;
              }
              if (!IsNumber(field_type)) return true;
              // uint32 fields keep the low 32 bits of the varint, as a parse does.
              const auto low = static_cast<uint32_t>(value);
              switch (field) {
                case Metadata::kIpVersionFieldNumber:
                  v.ip_version = low;
                  break;
                case Metadata::kIpProtocolFieldNumber:
                  v.ip_protocol = low;
                  break;
                case Metadata::kVlanIdFieldNumber:
                  v.vlan_id = low;
                  break;
                case Metadata::kLocalPortFieldNumber:
                  v.local_port = low;
                  break;
                case Metadata::kOtherPortFieldNumber:
                  v.other_port = low;
                  break;
                case Metadata::kDetectionGuessedFieldNumber:
                  v.guessed = value != 0;
                  break;
                case Metadata::kFirstSeenAtFieldNumber:
                  v.first_seen_at = value;
                  break;
                case Metadata::kLastSeenAtFieldNumber:
                  v.last_seen_at = value;
                  break;
                default:
                  break;
              }
              return true;
            });
          case Record::kCountersFieldNumber:
            return ForEachField(nested, [&](uint32_t field, uint32_t field_type, uint64_t value,
                                            std::string_view text) {
              if (IsText(field_type) && field == Counters::kDigestFieldNumber) {
                v.counters_digest = text;
              }
              if (!IsNumber(field_type)) return true;
              if (field == Counters::kLastSeenAtFieldNumber) v.counters_last_seen_at = value;
              if (field == Counters::kTotalBytesFieldNumber) v.total_bytes = value;
              if (field == Counters::kTotalPacketsFieldNumber) v.total_packets = value;
              return true;
            });
          default:
            return true;
        }
      });
}

void CopyFlowSummary(const FlowSummaryView& view, v1::FlowRecord* summary) {
  Agent* agent = summary->mutable_agent();
  Assign(agent->mutable_id(), view.agent_id);
  Assign(agent->mutable_name(), view.agent_name);
  Assign(agent->mutable_site(), view.agent_site);
  Assign(summary->mutable_context()->mutable_interface(), view.interface);
  Metadata* m = summary->mutable_metadata();
  Assign(m->mutable_digest(), view.digest);
  Assign(m->mutable_local_ip(), view.local_ip);
  Assign(m->mutable_other_ip(), view.other_ip);
  Assign(m->mutable_detected_protocol_name(), view.protocol);
  Assign(m->mutable_detected_application_name(), view.application);
  Assign(m->mutable_host_server_name(), view.host);
  m->set_ip_version(view.ip_version);
  m->set_ip_protocol(view.ip_protocol);
  m->set_vlan_id(view.vlan_id);
  m->set_local_port(view.local_port);
  m->set_other_port(view.other_port);
  m->set_detection_guessed(view.guessed);
  m->set_first_seen_at(view.first_seen_at);
  m->set_last_seen_at(view.last_seen_at);
  Counters* c = summary->mutable_counters();
  Assign(c->mutable_digest(), view.counters_digest);
  c->set_last_seen_at(view.counters_last_seen_at);
  c->set_total_bytes(view.total_bytes);
  c->set_total_packets(view.total_packets);
}

std::optional<FlowActivity> SerializedFlowActivity(std::string_view bytes) {
  FlowSummaryView view;
  if (!ReadFlowSummary(bytes, &view)) return std::nullopt;
  return view.activity();
}

bool DecodeFlowSummary(std::string_view bytes, v1::FlowRecord* summary, FlowActivity* activity) {
  FlowSummaryView view;
  if (!ReadFlowSummary(bytes, &view)) return false;
  CopyFlowSummary(view, summary);
  *activity = view.activity();
  return true;
}

bool ParseFlowRecordReusing(std::string_view bytes, v1::FlowRecord* flow) {
  flow->mutable_agent()->Clear();
  flow->mutable_context()->Clear();
  flow->mutable_metadata()->Clear();
  flow->mutable_counters()->Clear();
  flow->clear_purge_reason();
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  if (!flow->MergePartialFromCodedStream(&in) ||
      in.CurrentPosition() != static_cast<int>(bytes.size())) {
    return false;
  }
  // Presence as a fresh parse has it: only the sub-messages the bytes hold.
  bool present[5] = {false, false, false, false, false};
  const bool well_formed =
      ForEachField(bytes, [&](uint32_t number, uint32_t type, uint64_t, std::string_view) {
        if (number < 5 && IsText(type)) present[number] = true;
        return true;
      });
  if (!well_formed) return false;
  if (!present[Record::kAgentFieldNumber]) flow->clear_agent();
  if (!present[Record::kContextFieldNumber]) flow->clear_context();
  if (!present[Record::kMetadataFieldNumber]) flow->clear_metadata();
  if (!present[Record::kCountersFieldNumber]) flow->clear_counters();
  return true;
}

const v1::FlowRecord* ScannedFlow::whole() {
  if (whole_ == nullptr && !parse_failed_) {
    if (ParseFlowRecordReusing(bytes_, scratch_)) {
      whole_ = scratch_;
    } else {
      parse_failed_ = true;
    }
  }
  return whole_;
}

}  // namespace flowgate::storage
