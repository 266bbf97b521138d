// The agent-gateway envelope on the wire: decoding a frame from an agent (the gateway's
// one place that trusts nothing about agent input: size, parse, version, compression) and
// its inverse, zstd compression of a batch (the agent's side). Shared so that both ends
// use one definition of the format; the fuzz target tests/fuzz/envelope_decoder_fuzz.cc
// drives DecodeEnvelope directly.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

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

// Decodes `frame` into *out. A zstd-compressed batch is decompressed into out->events
// (compressed_events is cleared); it may not expand past `max_bytes` either. On failure
// *out may hold a partial envelope (its agent identity, if it parsed, still names whom to
// count the rejection against). Thread-safe.
DecodeResult DecodeEnvelope(std::string_view frame, size_t max_bytes, v1::Envelope* out);

// Moves envelope->events into compressed_events, compressed with zstd at `level`.
// Returns false, leaving *envelope unchanged, if compression fails.
bool CompressEnvelopeEvents(int level, v1::Envelope* envelope);

}  // namespace flowgate
