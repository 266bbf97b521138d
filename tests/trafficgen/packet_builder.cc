#include "packet_builder.h"

namespace flowgate::trafficgen {
namespace {

constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr size_t kIpv4HeaderLength = 20;
// Frames shorter than this are padded by the sending NIC; a tap or mirror port (where the
// agents capture) sees the padding, so the generator adds it too.
constexpr size_t kMinEthernetFrame = 60;

// The pseudo-header both TCP and UDP checksums cover (RFC 793 / RFC 768).
uint32_t PseudoHeaderSum(const IpFields& ip, uint8_t protocol, size_t l4_length) {
  ByteWriter w;
  w.U32(ip.src_ip);
  w.U32(ip.dst_ip);
  w.U8(0);
  w.U8(protocol);
  w.U16(static_cast<uint16_t>(l4_length));
  return ChecksumAdd(w.bytes(), 0);
}

// Wraps a finished transport segment into IPv4 and Ethernet.
Bytes WrapInIpv4(const IpFields& ip, uint8_t protocol, std::span<const uint8_t> l4) {
  ByteWriter ipw;
  ipw.U8(0x45);  // version 4, 5 words of header, no options
  ipw.U8(0);     // DSCP/ECN
  ipw.U16(static_cast<uint16_t>(kIpv4HeaderLength + l4.size()));
  ipw.U16(ip.ip_id);
  ipw.U16(0x4000);  // Don't Fragment, as Linux and modern servers set it
  ipw.U8(ip.ttl);
  ipw.U8(protocol);
  ipw.U16(0);  // checksum, patched below
  ipw.U32(ip.src_ip);
  ipw.U32(ip.dst_ip);
  Bytes header = ipw.Take();
  const uint16_t checksum = ChecksumFinish(ChecksumAdd(header, 0));
  header[10] = static_cast<uint8_t>(checksum >> 8);
  header[11] = static_cast<uint8_t>(checksum & 0xff);

  ByteWriter frame;
  frame.Append(ip.dst_mac);
  frame.Append(ip.src_mac);
  frame.U16(kEtherTypeIpv4);
  frame.Append(header);
  frame.Append(l4);
  if (frame.size() < kMinEthernetFrame) frame.Fill(kMinEthernetFrame - frame.size(), 0);
  return frame.Take();
}

void PatchChecksum(Bytes& segment, size_t offset, uint16_t checksum) {
  segment[offset] = static_cast<uint8_t>(checksum >> 8);
  segment[offset + 1] = static_cast<uint8_t>(checksum & 0xff);
}

}  // namespace

std::string Ipv4ToString(uint32_t address) {
  return std::to_string(address >> 24) + "." + std::to_string((address >> 16) & 0xff) + "." +
         std::to_string((address >> 8) & 0xff) + "." + std::to_string(address & 0xff);
}

uint32_t ChecksumAdd(std::span<const uint8_t> data, uint32_t partial) {
  uint64_t sum = partial;
  for (size_t i = 0; i + 1 < data.size(); i += 2) sum += (uint32_t{data[i]} << 8) | data[i + 1];
  if (data.size() % 2 == 1) sum += uint32_t{data.back()} << 8;  // odd byte, zero-padded
  while (sum >> 32) sum = (sum & 0xffffffff) + (sum >> 32);
  return static_cast<uint32_t>(sum);
}

uint16_t ChecksumFinish(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum & 0xffff);
}

Bytes BuildTcpFrame(const IpFields& ip, const TcpFields& tcp, std::span<const uint8_t> payload) {
  const size_t header_length = 20 + tcp.options.size();
  ByteWriter w;
  w.U16(tcp.src_port);
  w.U16(tcp.dst_port);
  w.U32(tcp.seq);
  w.U32(tcp.ack);
  w.U8(static_cast<uint8_t>((header_length / 4) << 4));
  w.U8(tcp.flags);
  w.U16(tcp.window);
  w.U16(0);  // checksum, patched below
  w.U16(0);  // urgent pointer
  w.Append(tcp.options);
  w.Append(payload);
  Bytes segment = w.Take();
  const uint32_t sum = ChecksumAdd(segment, PseudoHeaderSum(ip, kProtoTcp, segment.size()));
  PatchChecksum(segment, 16, ChecksumFinish(sum));
  return WrapInIpv4(ip, kProtoTcp, segment);
}

Bytes BuildUdpFrame(const IpFields& ip, uint16_t src_port, uint16_t dst_port,
                    std::span<const uint8_t> payload) {
  ByteWriter w;
  w.U16(src_port);
  w.U16(dst_port);
  w.U16(static_cast<uint16_t>(8 + payload.size()));
  w.U16(0);  // checksum, patched below
  w.Append(payload);
  Bytes datagram = w.Take();
  uint16_t checksum =
      ChecksumFinish(ChecksumAdd(datagram, PseudoHeaderSum(ip, kProtoUdp, datagram.size())));
  if (checksum == 0) checksum = 0xffff;  // RFC 768: zero means "no checksum"
  PatchChecksum(datagram, 6, checksum);
  return WrapInIpv4(ip, kProtoUdp, datagram);
}

}  // namespace flowgate::trafficgen
