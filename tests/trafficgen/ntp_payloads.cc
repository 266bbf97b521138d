#include "payloads.h"

namespace flowgate::trafficgen {
namespace {

constexpr uint64_t kNtpEpochOffsetSeconds = 2208988800ULL;  // 1900-01-01 to 1970-01-01
constexpr uint8_t kLeapNoneVersion4ModeClient = (0 << 6) | (4 << 3) | 3;
constexpr uint8_t kLeapNoneVersion4ModeServer = (0 << 6) | (4 << 3) | 4;

}  // namespace

uint64_t NtpTimestamp(uint64_t unix_us) {
  const uint64_t seconds = unix_us / 1000000 + kNtpEpochOffsetSeconds;
  const uint64_t fraction = ((unix_us % 1000000) << 32) / 1000000;
  return (seconds << 32) | fraction;
}

Bytes NtpClientRequest(uint64_t transmit_unix_us) {
  ByteWriter w;
  w.U8(kLeapNoneVersion4ModeClient);
  w.Fill(39, 0);  // stratum, poll, precision, root delay/dispersion, refid, ref/origin/receive
  w.U64(NtpTimestamp(transmit_unix_us));
  return w.Take();
}

Bytes NtpServerReply(const NtpServerInfo& server, uint64_t client_transmit_unix_us,
                     uint64_t receive_unix_us, Rng& rng) {
  ByteWriter w;
  w.U8(kLeapNoneVersion4ModeServer);
  w.U8(server.stratum);
  w.U8(0);     // poll: echoes the client's (0 = unspecified)
  w.U8(0xe7);  // precision 2^-25 s, typical of a modern kernel clock
  // Root delay and dispersion in NTP short format (16.16 seconds): a few milliseconds.
  w.U32(server.stratum == 1 ? 0 : static_cast<uint32_t>(rng.Between(0x00000100, 0x00000a00)));
  w.U32(static_cast<uint32_t>(rng.Between(0x00000010, 0x00000200)));
  w.U32(server.reference_id);
  // Reference time: the last time the server synchronised, up to ~17 minutes ago.
  w.U64(NtpTimestamp(receive_unix_us - rng.Between(1000000, 1024000000)));
  w.U64(NtpTimestamp(client_transmit_unix_us));               // origin
  w.U64(NtpTimestamp(receive_unix_us));                       // receive
  w.U64(NtpTimestamp(receive_unix_us + rng.Between(5, 60)));  // transmit
  return w.Take();
}

}  // namespace flowgate::trafficgen
