// Ethernet II / IPv4 / TCP and UDP frame construction with correct header checksums.
// nDPI does not verify checksums, but the agents' decoder, Wireshark and any replay onto a
// real interface do; a synthetic capture with bad checksums is not "believable".
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>

#include "byte_writer.h"

namespace flowgate::trafficgen {

using MacAddress = std::array<uint8_t, 6>;

// IPv4 addresses are host-order integers inside the generator and written big-endian.
constexpr uint32_t Ipv4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return (uint32_t{a} << 24) | (uint32_t{b} << 16) | (uint32_t{c} << 8) | uint32_t{d};
}
std::string Ipv4ToString(uint32_t address);

// TCP header flag bits.
inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpPsh = 0x08;
inline constexpr uint8_t kTcpAck = 0x10;

// What the Ethernet and IPv4 headers of one frame carry.
struct IpFields {
  MacAddress src_mac{}, dst_mac{};
  uint32_t src_ip = 0, dst_ip = 0;
  uint8_t ttl = 64;
  uint16_t ip_id = 0;
};

struct TcpFields {
  uint16_t src_port = 0, dst_port = 0;
  uint32_t seq = 0, ack = 0;
  uint8_t flags = 0;
  uint16_t window = 0;
  std::span<const uint8_t> options;  // length must be a multiple of 4
};

// RFC 1071 one's-complement sum over `data`, continuing from `partial` (unfolded).
uint32_t ChecksumAdd(std::span<const uint8_t> data, uint32_t partial);
uint16_t ChecksumFinish(uint32_t sum);

Bytes BuildTcpFrame(const IpFields& ip, const TcpFields& tcp, std::span<const uint8_t> payload);
Bytes BuildUdpFrame(const IpFields& ip, uint16_t src_port, uint16_t dst_port,
                    std::span<const uint8_t> payload);

}  // namespace flowgate::trafficgen
