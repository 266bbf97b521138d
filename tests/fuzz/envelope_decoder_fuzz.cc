// libFuzzer target over the gateway's envelope decoder (flowgate::DecodeEnvelope): every
// frame an agent (or anyone who reaches the agent port) sends goes through it first.
// Hostile frames (garbage, truncated, unknown versions, zstd bombs, compressed batches that
// lie about their size) must be refused with a reason, never crash, hang or allocate past
// the frame limit. A frame that decodes is also re-encoded as netifyd JSON, as the gateway
// would fan it out.
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
  const flowgate::DecodeResult result = flowgate::DecodeEnvelope(
      std::string_view(reinterpret_cast<const char*>(data), size), kMaxFrameBytes, &envelope);
  if (!result.ok()) {
    if (result.error.empty()) __builtin_trap();  // every refusal must say why
    return 0;
  }
  for (const flowgate::v1::Event& event : envelope.events()) {
    (void)flowgate::EncodeNetifydFrame(event, &envelope.agent());
  }
  return 0;
}
