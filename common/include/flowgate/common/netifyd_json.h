// The netifyd JSON socket format (shared/design/netifyd-socket.md), in one place: the
// agent's --json-out and the gateway's socket both encode with these functions, and
// every reader in tests and tools parses frames with NetifydFrameReader.
#pragma once

#include <cstddef>
#include <deque>
#include <string>
#include <string_view>

#include "flowgate/common/status.h"
#include "flowgate/v1/events.pb.h"

namespace flowgate {

// netifyd's JSON schema version, sent as `json_version` and `version`.
inline constexpr double kNetifydJsonVersion = 1.9;

// The `type` of the message an event becomes: "agent_hello", "flow", "flow_purge", ...
// Returns an empty view for an event with no body.
std::string_view NetifydTypeName(const v1::Event& event);

// Encodes `event` as one compact JSON object with sorted keys followed by '\n'. Empty
// strings and empty objects are omitted; invalid UTF-8 becomes U+FFFD. When `source` is
// non-null the object also carries `"agent": {"id", "name", "site"}` (the gateway's
// merged stream). An event with no body encodes as {"type":"unknown"}.
std::string EncodeNetifydPayload(const v1::Event& event, const v1::AgentIdentity* source);

// Wraps a payload (which must end in '\n') in netifyd framing: `{"length": N}\n` + payload.
std::string FrameNetifydPayload(std::string_view payload);

// EncodeNetifydPayload + FrameNetifydPayload.
std::string EncodeNetifydFrame(const v1::Event& event, const v1::AgentIdentity* source);

// The netifyd `reason` text of a purge: "closed", "expired" or "terminated".
std::string_view PurgeReasonName(v1::PurgeReason reason);
// "local", "remote", "multicast", "broadcast" or "unknown".
std::string_view OtherTypeName(v1::OtherType type);

// A strict reader of a netifyd stream: feed it bytes as they arrive, take whole payloads
// out. Rejects (and stays failed after) a header that is not exactly `{"length": N}\n`, a
// length over `max_payload_bytes`, or a payload that is not one line ending in '\n'.
// Payloads stay in the reader's buffer until taken, so reading copies nothing per frame.
class NetifydFrameReader {
 public:
  explicit NetifydFrameReader(size_t max_payload_bytes = 64u << 20)
      : max_payload_bytes_(max_payload_bytes) {}

  Status Feed(std::string_view bytes);
  // Copies the next complete payload (including its '\n') into *payload.
  bool Next(std::string* payload);
  // The same without a copy: *payload stays valid until the next Feed().
  bool Next(std::string_view* payload);
  // Bytes received that do not yet form a whole frame.
  size_t pending_bytes() const { return buffer_.size() - parsed_; }

 private:
  struct Span {
    size_t offset;
    size_t size;
  };
  Status Parse();

  size_t max_payload_bytes_;
  std::string buffer_;
  size_t parsed_ = 0;       // bytes of buffer_ that form whole frames
  std::deque<Span> ready_;  // payloads in buffer_ not yet taken
  Status failure_;
};

}  // namespace flowgate
