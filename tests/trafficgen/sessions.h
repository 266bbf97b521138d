// One complete application session (DNS lookup, HTTPS page load, HTTP fetch, NTP poll,
// SSH login, HTTP/3 over QUIC) between a LAN client and a server, rendered to timed frames.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "conversation.h"
#include "rng.h"

namespace flowgate::trafficgen {

enum class SessionKind { kDns, kTls, kHttp, kNtp, kSsh, kQuic };
inline constexpr std::array<SessionKind, 6> kSessionKinds = {
    SessionKind::kDns, SessionKind::kTls, SessionKind::kHttp,
    SessionKind::kNtp, SessionKind::kSsh, SessionKind::kQuic};

struct SessionPlan {
  SessionKind kind = SessionKind::kDns;
  Peer client;              // MAC, IP, ephemeral port and TTL of the LAN client
  MacAddress router_mac{};  // every remote server, and the resolver, is behind it
  uint32_t resolver_ip = 0;
  uint64_t start_us = 0;  // time of the session's first packet
};

// Appends the session's frames to `out` (unsorted; times start at plan.start_us).
void GenerateSession(const SessionPlan& plan, Rng& rng, FrameList& out);

}  // namespace flowgate::trafficgen
