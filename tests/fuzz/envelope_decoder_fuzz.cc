// libFuzzer target over the gateway's envelope decoder (flowgate::DecodeEnvelope): every
// frame an agent (or anyone who reaches the agent port) sends goes through it first.
// Hostile frames (garbage, truncated, unknown versions, zstd bombs, compressed batches that
// lie about their size) must be refused with a reason, never crash, hang or allocate past
// the frame limit. A frame that decodes is also re-encoded as netifyd JSON, as the gateway
// would fan it out, and the events located in its bytes (which the store writes as they
// are) must be the events parsed.
//
// Input: the frame itself. Seeds: tests/fuzz/envelope_corpus (made with protoc --encode).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <google/protobuf/stubs/logging.h>

#include "flowgate/common/envelope_codec.h"
#include "flowgate/common/netifyd_json.h"

namespace {

// Small, so that the "decompresses past the limit" paths are reached often.
constexpr size_t kMaxFrameBytes = 1 << 20;

}  // namespace

// libprotobuf logs every string field that is not UTF-8; for fuzz input that is noise.
extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  google::protobuf::SetLogHandler(
      [](google::protobuf::LogLevel, const char*, int, const std::string&) {});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  flowgate::v1::Envelope envelope;
  flowgate::EventWire wire;
  const flowgate::DecodeResult result =
      flowgate::DecodeEnvelope(std::string_view(reinterpret_cast<const char*>(data), size),
                               kMaxFrameBytes, &envelope, &wire);
  if (!result.ok()) {
    if (result.error.empty()) __builtin_trap();  // every refusal must say why
    return 0;
  }
  if (!wire.spans.empty()) {
    if (wire.spans.size() != static_cast<size_t>(envelope.events_size())) __builtin_trap();
    flowgate::v1::Event reparsed;
    for (size_t i = 0; i < wire.spans.size(); ++i) {
      const flowgate::EventWire::Span& span = wire.spans[i];
      if (span.offset > wire.bytes.size() || span.size > wire.bytes.size() - span.offset) {
        __builtin_trap();
      }
      const std::string_view bytes = wire.event(i);
      if (!reparsed.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) ||
          reparsed.SerializeAsString() !=
              envelope.events(static_cast<int>(i)).SerializeAsString()) {
        __builtin_trap();
      }
    }
  }
  for (const flowgate::v1::Event& event : envelope.events()) {
    (void)flowgate::EncodeNetifydFrame(event, &envelope.agent());
  }
  return 0;
}
