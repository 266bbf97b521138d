#include "flow_wire.h"

#include <google/protobuf/io/coded_stream.h>

#include <algorithm>
#include <cstdint>

namespace flowgate::storage {
namespace {

// Field numbers in flowgate.proto / events.proto.
constexpr uint32_t kRecordMetadata = 3;      // FlowRecord.metadata
constexpr uint32_t kRecordCounters = 4;      // FlowRecord.counters
constexpr uint32_t kMetadataFirstSeen = 28;  // FlowMetadata.first_seen_at
constexpr uint32_t kMetadataLastSeen = 29;   // FlowMetadata.last_seen_at
constexpr uint32_t kCountersLastSeen = 2;    // FlowCounters.last_seen_at

class WireReader {
 public:
  explicit WireReader(std::string_view bytes)
      : at_(bytes.data()), end_(bytes.data() + bytes.size()) {}
  bool done() const { return at_ == end_; }

  bool Varint(uint64_t* value) {
    *value = 0;
    for (int shift = 0; shift < 64 && at_ < end_; shift += 7) {
      const auto byte = static_cast<uint8_t>(*at_++);
      *value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;
  }

  // Reads one field: its number, and either its varint value or its length-delimited bytes.
  // Other wire types are skipped. False on malformed input.
  bool Field(uint32_t* number, uint64_t* varint, std::string_view* bytes) {
    uint64_t tag = 0;
    if (!Varint(&tag)) return false;
    *number = static_cast<uint32_t>(tag >> 3);
    *bytes = {};
    *varint = 0;
    switch (tag & 7) {
      case 0:
        return Varint(varint);
      case 1:
        return Skip(8);
      case 2: {
        uint64_t length = 0;
        if (!Varint(&length) || length > static_cast<uint64_t>(end_ - at_)) return false;
        *bytes = std::string_view(at_, length);
        at_ += length;
        return true;
      }
      case 5:
        return Skip(4);
      default:
        return false;
    }
  }

 private:
  bool Skip(size_t n) {
    if (static_cast<size_t>(end_ - at_) < n) return false;
    at_ += n;
    return true;
  }
  const char* at_;
  const char* end_;
};

}  // namespace

std::optional<FlowActivity> SerializedFlowActivity(std::string_view bytes) {
  uint64_t first_seen = 0, metadata_last = 0, counters_last = 0;
  WireReader record(bytes);
  uint32_t number = 0;
  uint64_t varint = 0;
  std::string_view nested;
  while (!record.done()) {
    if (!record.Field(&number, &varint, &nested)) return std::nullopt;
    if (number != kRecordMetadata && number != kRecordCounters) continue;
    // A message field that occurs twice merges: its scalars take the later value.
    WireReader inner(nested);
    uint32_t inner_number = 0;
    uint64_t value = 0;
    std::string_view ignored;
    while (!inner.done()) {
      if (!inner.Field(&inner_number, &value, &ignored)) return std::nullopt;
      if (number == kRecordMetadata && inner_number == kMetadataFirstSeen) first_seen = value;
      if (number == kRecordMetadata && inner_number == kMetadataLastSeen) metadata_last = value;
      if (number == kRecordCounters && inner_number == kCountersLastSeen) counters_last = value;
    }
  }
  // The same rule as FlowActivityOf.
  FlowActivity activity;
  activity.last_ms = std::max(metadata_last, counters_last);
  activity.first_ms = first_seen;
  if (activity.first_ms == 0 || activity.first_ms > activity.last_ms) {
    activity.first_ms =
        std::min(activity.first_ms == 0 ? activity.last_ms : activity.first_ms, activity.last_ms);
  }
  return activity;
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
  WireReader record(bytes);
  uint32_t number = 0;
  uint64_t varint = 0;
  std::string_view nested;
  while (!record.done()) {
    if (!record.Field(&number, &varint, &nested)) return false;
    if (number < 5) present[number] = true;
  }
  if (!present[1]) flow->clear_agent();
  if (!present[2]) flow->clear_context();
  if (!present[3]) flow->clear_metadata();
  if (!present[4]) flow->clear_counters();
  return true;
}

}  // namespace flowgate::storage
