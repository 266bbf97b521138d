// Decides which sessions a capture holds (kinds, clients, ports, start times) and renders
// them into one time-ordered frame list. Everything follows from the seed.
#pragma once

#include <cstdint>

#include "conversation.h"

namespace flowgate::trafficgen {

struct CaptureOptions {
  uint64_t sessions = 60;
  uint64_t seed = 1;
  uint64_t start_ms = 1700000000000;  // time of the first packet, ms since the Unix epoch
  uint64_t duration_ms = 30000;       // session start times spread over this interval
  uint32_t client_network = 0;        // a /24; clients are .10 to .60, the resolver is .1
};

// Linux's default ephemeral port range (net.ipv4.ip_local_port_range); every session gets
// its own client port from it, so the number of sessions is bounded by its size.
inline constexpr uint16_t kFirstEphemeralPort = 32768;
inline constexpr uint16_t kLastEphemeralPort = 60999;
inline constexpr uint64_t kMaxSessions = kLastEphemeralPort - kFirstEphemeralPort + 1;

// REQUIRED: 1 <= options.sessions <= kMaxSessions.
FrameList GenerateCapture(const CaptureOptions& options);

}  // namespace flowgate::trafficgen
