#include "capture_plan.h"

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "sessions.h"

namespace flowgate::trafficgen {
namespace {

constexpr uint32_t kFirstClientHost = 10;
constexpr uint32_t kLastClientHost = 60;
// The gateway router (PC Engines OUI), which is also the LAN's DNS resolver.
constexpr MacAddress kRouterMac = {0x00, 0x0d, 0xb9, 0x5e, 0x21, 0x40};

// Modern clients use a randomised, locally administered MAC per network; deriving it from
// the IP keeps one stable MAC per client across sessions.
MacAddress ClientMac(uint32_t ip) {
  return {0x02,
          0x1c,
          0x42,
          static_cast<uint8_t>(ip >> 16),
          static_cast<uint8_t>(ip >> 8),
          static_cast<uint8_t>(ip)};
}

// Session kinds in rounds: each round is every kind once, in a seeded order, so any
// capture with at least kSessionKinds.size() sessions contains every kind.
std::vector<SessionKind> PlanKinds(uint64_t count, Rng& rng) {
  std::vector<SessionKind> kinds;
  kinds.reserve(count);
  while (kinds.size() < count) {
    std::array<SessionKind, kSessionKinds.size()> round = kSessionKinds;
    rng.Shuffle(std::span<SessionKind>(round));
    for (SessionKind kind : round) {
      if (kinds.size() < count) kinds.push_back(kind);
    }
  }
  return kinds;
}

// `count` distinct ephemeral ports in random order (a partial Fisher-Yates shuffle).
std::vector<uint16_t> PlanClientPorts(uint64_t count, Rng& rng) {
  std::vector<uint16_t> pool(kMaxSessions);
  std::iota(pool.begin(), pool.end(), kFirstEphemeralPort);
  for (size_t i = 0; i < count; ++i) std::swap(pool[i], pool[i + rng.Below(pool.size() - i)]);
  pool.resize(count);
  return pool;
}

// Offsets from the capture start; the earliest is moved to zero so that the first packet
// carries exactly the requested start time.
std::vector<uint64_t> PlanStartOffsets(uint64_t count, uint64_t duration_us, Rng& rng) {
  std::vector<uint64_t> offsets(count);
  for (uint64_t& offset : offsets) offset = duration_us == 0 ? 0 : rng.Below(duration_us);
  uint64_t earliest = UINT64_MAX;
  for (uint64_t offset : offsets) earliest = std::min(earliest, offset);
  for (uint64_t& offset : offsets) offset -= earliest;
  return offsets;
}

}  // namespace

FrameList GenerateCapture(const CaptureOptions& options) {
  Rng rng(options.seed);
  const std::vector<SessionKind> kinds = PlanKinds(options.sessions, rng);
  const std::vector<uint16_t> ports = PlanClientPorts(options.sessions, rng);
  const std::vector<uint64_t> offsets =
      PlanStartOffsets(options.sessions, options.duration_ms * 1000, rng);
  const uint32_t network = options.client_network & 0xffffff00;

  FrameList frames;
  for (uint64_t i = 0; i < options.sessions; ++i) {
    SessionPlan plan;
    plan.kind = kinds[i];
    plan.client.ip =
        network | static_cast<uint32_t>(rng.Between(kFirstClientHost, kLastClientHost));
    plan.client.mac = ClientMac(plan.client.ip);
    plan.client.port = ports[i];
    plan.client.ttl = 64;  // captured on the LAN, before the router decrements it
    plan.router_mac = kRouterMac;
    plan.resolver_ip = network | 1;
    plan.start_us = options.start_ms * 1000 + offsets[i];
    // Each session draws from its own stream, so a change to one session's generator
    // does not reshuffle every session after it.
    Rng session_rng(rng.Next());
    GenerateSession(plan, session_rng, frames);
  }
  // Sessions overlap in time; a capture is in arrival order. stable_sort keeps the
  // order of frames a session emitted with the same timestamp.
  std::stable_sort(frames.begin(), frames.end(),
                   [](const TimedFrame& a, const TimedFrame& b) { return a.time_us < b.time_us; });
  return frames;
}

}  // namespace flowgate::trafficgen
