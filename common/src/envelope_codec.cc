#include "flowgate/common/envelope_codec.h"

#include <zstd.h>

#include <memory>

namespace flowgate {
namespace {

DecodeResult Reject(RejectReason reason, std::string error) {
  return DecodeResult{reason, std::move(error)};
}

struct ZstdDCtxFree {
  void operator()(ZSTD_DCtx* ctx) const { ZSTD_freeDCtx(ctx); }
};

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

DecodeResult DecodeEnvelope(std::string_view frame, size_t max_bytes, v1::Envelope* out) {
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
  switch (out->compression()) {
    case v1::COMPRESSION_NONE:
      if (!out->compressed_events().empty()) {
        return Reject(RejectReason::kMalformed, "uncompressed batch carries compressed events");
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
  return {};
}

bool CompressEnvelopeEvents(int level, v1::Envelope* envelope) {
  v1::EventBatch batch;
  batch.mutable_events()->Swap(envelope->mutable_events());
  const std::string plain = batch.SerializeAsString();
  std::string packed(ZSTD_compressBound(plain.size()), '\0');
  const size_t n = ZSTD_compress(packed.data(), packed.size(), plain.data(), plain.size(), level);
  if (ZSTD_isError(n)) {
    envelope->mutable_events()->Swap(batch.mutable_events());
    return false;
  }
  packed.resize(n);
  envelope->set_compression(v1::COMPRESSION_ZSTD);
  envelope->set_compressed_events(std::move(packed));
  return true;
}

}  // namespace flowgate
