#include "flowgate/common/envelope_codec.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <zstd.h>

#include <algorithm>
#include <memory>

namespace flowgate {
namespace {

DecodeResult Reject(RejectReason reason, std::string error) {
  return DecodeResult{reason, std::move(error)};
}

struct ZstdDCtxFree {
  void operator()(ZSTD_DCtx* ctx) const { ZSTD_freeDCtx(ctx); }
};

// Fills wire->spans with where each `field_number` message field of the message in
// wire->bytes lies, reading the fields as protobuf's parser does (any tag encoding, other
// fields skipped whatever their type), and keeps them only if they are `expected` (the
// events the parser found); else the store serializes the parsed events instead.
void LocateEvents(int field_number, int expected, EventWire* wire) {
  using google::protobuf::internal::WireFormatLite;
  wire->spans.clear();
  if (wire->bytes.size() > UINT32_MAX) return;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(wire->bytes.data()),
                                            static_cast<int>(wire->bytes.size()));
  wire->spans.reserve(static_cast<size_t>(expected));
  while (const uint32_t tag = in.ReadTag()) {
    if (WireFormatLite::GetTagFieldNumber(tag) == field_number &&
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      uint32_t size = 0;
      if (!in.ReadVarint32(&size)) break;
      const auto offset = static_cast<uint32_t>(in.CurrentPosition());
      if (!in.Skip(static_cast<int>(size))) break;
      wire->spans.push_back({offset, size});
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      break;
    }
  }
  if (!in.ConsumedEntireMessage() || in.CurrentPosition() != static_cast<int>(wire->bytes.size()) ||
      wire->spans.size() != static_cast<size_t>(expected)) {
    wire->spans.clear();
  }
}

}  // namespace

const char* RejectReasonName(RejectReason reason) {
  switch (reason) {
    case RejectReason::kNone:
      return "none";
    case RejectReason::kMalformed:
      return "malformed";
    case RejectReason::kUnsupportedVersion:
      return "version";
    case RejectReason::kTooLarge:
      return "too_large";
  }
  return "unknown";
}

std::string MissingBatchIdentity(const v1::Envelope& envelope) {
  const v1::AgentIdentity& agent = envelope.agent();
  if (agent.id().empty() || agent.boot_id().empty() || envelope.sequence() == 0) {
    return "batch lacks an agent id, boot id or sequence number";
  }
  return "";
}

DecodeResult DecodeEnvelope(std::string_view frame, size_t max_bytes, v1::Envelope* out,
                            EventWire* wire) {
  if (wire != nullptr) {
    wire->bytes.clear();
    wire->spans.clear();
  }
  if (frame.size() > max_bytes) {
    return Reject(RejectReason::kTooLarge, "batch of " + std::to_string(frame.size()) +
                                               " bytes is over the limit of " +
                                               std::to_string(max_bytes));
  }
  if (!out->ParseFromArray(frame.data(), static_cast<int>(frame.size()))) {
    return Reject(RejectReason::kMalformed, "batch does not parse as a flowgate envelope");
  }
  if (out->version() != v1::PROTOCOL_VERSION_1) {
    return Reject(RejectReason::kUnsupportedVersion,
                  "protocol version " + std::to_string(out->version()) +
                      " is not supported (this gateway speaks 1)");
  }
  if (std::string missing = MissingBatchIdentity(*out); !missing.empty()) {
    return Reject(RejectReason::kMalformed, std::move(missing));
  }
  switch (out->compression()) {
    case v1::COMPRESSION_NONE:
      if (!out->compressed_events().empty()) {
        return Reject(RejectReason::kMalformed, "uncompressed batch carries compressed events");
      }
      if (wire != nullptr) {
        wire->bytes.assign(frame);
        LocateEvents(v1::Envelope::kEventsFieldNumber, out->events_size(), wire);
      }
      return {};
    case v1::COMPRESSION_ZSTD:
      break;
    default:
      return Reject(RejectReason::kMalformed,
                    "unknown compression " + std::to_string(out->compression()));
  }
  if (out->events_size() > 0) {
    return Reject(RejectReason::kMalformed, "compressed batch also carries plain events");
  }
  const std::string& packed = out->compressed_events();
  // The decompressed size is bounded by the frame limit whatever the header claims, so a
  // small hostile frame cannot make the gateway allocate without bound.
  const unsigned long long claimed = ZSTD_getFrameContentSize(packed.data(), packed.size());
  if (claimed == ZSTD_CONTENTSIZE_ERROR || claimed == ZSTD_CONTENTSIZE_UNKNOWN) {
    return Reject(RejectReason::kMalformed,
                  "compressed events are not a zstd frame that states its size");
  }
  if (claimed > max_bytes) {
    return Reject(RejectReason::kTooLarge, "batch decompresses to " + std::to_string(claimed) +
                                               " bytes, over the limit of " +
                                               std::to_string(max_bytes));
  }
  std::unique_ptr<ZSTD_DCtx, ZstdDCtxFree> ctx(ZSTD_createDCtx());
  if (ctx == nullptr) return Reject(RejectReason::kMalformed, "zstd context allocation failed");
  std::string plain;
  plain.resize(static_cast<size_t>(claimed));
  const size_t n =
      ZSTD_decompressDCtx(ctx.get(), plain.data(), plain.size(), packed.data(), packed.size());
  if (ZSTD_isError(n)) {
    return Reject(RejectReason::kMalformed,
                  std::string("compressed events do not decompress: ") + ZSTD_getErrorName(n));
  }
  v1::EventBatch batch;
  if (!batch.ParseFromArray(plain.data(), static_cast<int>(n))) {
    return Reject(RejectReason::kMalformed, "decompressed events do not parse");
  }
  out->mutable_events()->Swap(batch.mutable_events());
  out->clear_compressed_events();
  out->set_compression(v1::COMPRESSION_NONE);
  if (wire != nullptr) {
    plain.resize(n);
    wire->bytes = std::move(plain);
    LocateEvents(v1::EventBatch::kEventsFieldNumber, out->events_size(), wire);
  }
  return {};
}

namespace {

// The one-byte tags (field number << 3 | length-delimited) of a batch's events in an
// Envelope and in the EventBatch that compressed_events holds.
constexpr uint8_t kEnvelopeEventsTag = v1::Envelope::kEventsFieldNumber << 3 | 2;
constexpr uint8_t kEventBatchEventsTag = v1::EventBatch::kEventsFieldNumber << 3 | 2;
static_assert(kEnvelopeEventsTag < 0x80 && kEventBatchEventsTag < 0x80);

}  // namespace

void AppendEnvelopeEventField(const v1::Event& event, std::string* out) {
  using google::protobuf::io::CodedOutputStream;
  const size_t size = event.ByteSizeLong();
  const size_t head = 1 + CodedOutputStream::VarintSize32(static_cast<uint32_t>(size));
  const size_t at = out->size();
  out->resize(at + head + size);
  auto* bytes = reinterpret_cast<uint8_t*>(out->data() + at);
  bytes[0] = kEnvelopeEventsTag;
  CodedOutputStream::WriteVarint32ToArray(static_cast<uint32_t>(size), bytes + 1);
  event.SerializeWithCachedSizesToArray(bytes + head);
}

bool CompressEventFields(int level, std::string_view event_fields, v1::Envelope* envelope) {
  // The same fields with the EventBatch's tag are the EventBatch's bytes.
  std::string plain(event_fields);
  for (size_t at = 0; at < plain.size();) {
    if (static_cast<uint8_t>(plain[at]) != kEnvelopeEventsTag) return false;
    plain[at] = static_cast<char>(kEventBatchEventsTag);
    google::protobuf::io::CodedInputStream length(
        reinterpret_cast<const uint8_t*>(plain.data() + at + 1),
        static_cast<int>(std::min<size_t>(plain.size() - at - 1, 5)));
    uint32_t size = 0;
    if (!length.ReadVarint32(&size)) return false;
    at += 1 + static_cast<size_t>(length.CurrentPosition()) + size;
    if (at > plain.size()) return false;
  }
  std::string packed(ZSTD_compressBound(plain.size()), '\0');
  const size_t n = ZSTD_compress(packed.data(), packed.size(), plain.data(), plain.size(), level);
  if (ZSTD_isError(n)) return false;
  packed.resize(n);
  envelope->set_compression(v1::COMPRESSION_ZSTD);
  envelope->set_compressed_events(std::move(packed));
  return true;
}

}  // namespace flowgate
