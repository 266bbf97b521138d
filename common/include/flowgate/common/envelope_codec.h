// The agent-gateway envelope on the wire: decoding a frame from an agent (the gateway's
// one place that trusts nothing about agent input: size, parse, version, compression) and
// its inverse, zstd compression of a batch (the agent's side). Shared so that both ends
// use one definition of the format; the fuzz target tests/fuzz/envelope_decoder_fuzz.cc
// drives DecodeEnvelope directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "flowgate/v1/transport.pb.h"

namespace flowgate {

enum class RejectReason {
  kNone,
  kMalformed,           // does not parse, or a compressed batch does not decompress
  kUnsupportedVersion,  // parses, but in a protocol version this build does not speak
  kTooLarge,            // over the frame limit, or decompresses past it
};

// A short stable name for logs and counters: "malformed", "version", "too_large".
const char* RejectReasonName(RejectReason reason);

struct DecodeResult {
  RejectReason reason = RejectReason::kNone;
  std::string error;  // one line, set when reason != kNone
  bool ok() const { return reason == RejectReason::kNone; }
};

// Why `envelope` cannot be stored as an agent's batch, or "" when it can: a batch names its
// agent (id), the agent's boot and its sequence number. DecodeEnvelope refuses such frames
// as malformed; the store checks again for batches that do not come through it.
std::string MissingBatchIdentity(const v1::Envelope& envelope);

// A decoded batch's events in the bytes the agent serialized them to: the gateway stores
// these as they came rather than serializing the parsed events again (4-7% of the store's
// CPU per event). `spans[i]` is where out->events(i) lies in `bytes`.
struct EventWire {
  struct Span {
    uint32_t offset = 0;
    uint32_t size = 0;
  };
  std::string bytes;  // the frame, or the EventBatch it decompressed to
  std::vector<Span> spans;

  // The bytes of event `i`. REQUIRES: i < spans.size().
  std::string_view event(size_t i) const {
    return std::string_view(bytes).substr(spans[i].offset, spans[i].size);
  }
};

// Decodes `frame` into *out. A frame without the identity of its batch is malformed (see
// MissingBatchIdentity). A zstd-compressed batch is decompressed into out->events
// (compressed_events is cleared); it may not expand past `max_bytes` either. On failure
// *out may hold a partial envelope (its agent identity, if it parsed, still names whom to
// count the rejection against). With `wire`, a decoded batch's events are also located in
// the frame (see EventWire). Thread-safe.
DecodeResult DecodeEnvelope(std::string_view frame, size_t max_bytes, v1::Envelope* out,
                            EventWire* wire = nullptr);

// Appends `event` to *out as one `events` field of an Envelope (tag, length, message). A
// batch is its header Envelope's bytes followed by such fields: protobuf parses
// concatenated messages as one, so an agent serializes each event once, when it is
// emitted, and a batch is a copy of queued bytes rather than a tree of messages.
void AppendEnvelopeEventField(const v1::Event& event, std::string* out);

// Sets envelope->compressed_events to the events in `event_fields` (a run of
// AppendEnvelopeEventField output), compressed with zstd at `level` in the form
// DecodeEnvelope reads, and envelope->compression to ZSTD. Returns false, leaving *envelope
// unchanged, if `event_fields` is not such a run or compression fails.
bool CompressEventFields(int level, std::string_view event_fields, v1::Envelope* envelope);

}  // namespace flowgate
