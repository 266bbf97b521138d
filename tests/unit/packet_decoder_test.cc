#include "capture/packet_decoder.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <ostream>
#include <random>
#include <vector>

namespace flowgate::capture {

// Lets failure messages name the error (found by argument-dependent lookup).
static void PrintTo(DecodeError error, std::ostream* os) { *os << DecodeErrorName(error); }

namespace {

using Bytes = std::vector<uint8_t>;

constexpr int kEthernet = 1;
constexpr int kNull = 0;
constexpr int kLoop = 108;
constexpr int kSll = 113;
constexpr int kSll2 = 276;

void Put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
void Put32(Bytes& b, uint32_t v) {
  Put16(b, static_cast<uint16_t>(v >> 16));
  Put16(b, static_cast<uint16_t>(v));
}
void Append(Bytes& b, const Bytes& more) { b.insert(b.end(), more.begin(), more.end()); }
Bytes Cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& part : parts) Append(out, part);
  return out;
}

Bytes Tcp(uint16_t sport, uint16_t dport, uint8_t flags, const Bytes& payload,
          const Bytes& options = {}) {
  Bytes b;
  Put16(b, sport);
  Put16(b, dport);
  Put32(b, 1000);  // seq
  Put32(b, 0);     // ack
  b.push_back(static_cast<uint8_t>(((20 + options.size()) / 4) << 4));
  b.push_back(flags);
  Put16(b, 65535);
  Put32(b, 0);  // checksum, urgent pointer
  Append(b, options);
  Append(b, payload);
  return b;
}

Bytes Udp(uint16_t sport, uint16_t dport, const Bytes& payload) {
  Bytes b;
  Put16(b, sport);
  Put16(b, dport);
  Put16(b, static_cast<uint16_t>(8 + payload.size()));
  Put16(b, 0);
  Append(b, payload);
  return b;
}

Bytes Ipv4(uint8_t proto, uint32_t src, uint32_t dst, const Bytes& payload,
           const Bytes& options = {}, uint16_t id = 1, uint16_t fragment = 0) {
  Bytes b;
  b.push_back(static_cast<uint8_t>(0x40 | ((20 + options.size()) / 4)));
  b.push_back(0);
  Put16(b, static_cast<uint16_t>(20 + options.size() + payload.size()));
  Put16(b, id);
  Put16(b, fragment);
  b.push_back(64);
  b.push_back(proto);
  Put16(b, 0);
  Put32(b, src);
  Put32(b, dst);
  Append(b, options);
  Append(b, payload);
  return b;
}

Bytes V6Addr(uint8_t last) {
  Bytes b = {0x20, 0x01, 0x0d, 0xb8};
  b.resize(15, 0);
  b.push_back(last);
  return b;
}

Bytes Ipv6(uint8_t next, uint8_t src_last, uint8_t dst_last, const Bytes& payload) {
  Bytes b = {0x60, 0, 0, 0};
  Put16(b, static_cast<uint16_t>(payload.size()));
  b.push_back(next);
  b.push_back(64);
  Append(b, V6Addr(src_last));
  Append(b, V6Addr(dst_last));
  Append(b, payload);
  return b;
}

// A generic extension header of `units` 8-byte units beyond the first.
Bytes Ipv6Ext(uint8_t next, uint8_t units) {
  Bytes b = {next, units};
  b.resize((units + 1) * 8u, 0);
  return b;
}

Bytes Ipv6Fragment(uint8_t next, uint16_t offset_units, bool more, uint32_t id) {
  Bytes b = {next, 0};
  Put16(b, static_cast<uint16_t>((offset_units << 3) | (more ? 1 : 0)));
  Put32(b, id);
  return b;
}

const Bytes kDstMac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
const Bytes kSrcMac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};

Bytes Ethernet(uint16_t ether_type, const Bytes& payload, const std::vector<uint32_t>& tags = {}) {
  Bytes b = Cat({kDstMac, kSrcMac});
  for (uint32_t tag : tags) {  // high 16 bits: TPID, low 16: TCI
    Put16(b, static_cast<uint16_t>(tag >> 16));
    Put16(b, static_cast<uint16_t>(tag));
  }
  Put16(b, ether_type);
  Append(b, payload);
  return b;
}

constexpr uint32_t kA = 0xC0000201;  // 192.0.2.1
constexpr uint32_t kB = 0xC6336402;  // 198.51.100.2

// Decodes from an exactly sized heap copy, so that ASan flags any read past caplen.
struct Decoded {
  DecodeError error;
  DecodedPacket packet;
  std::unique_ptr<uint8_t[]> buffer;
};
Decoded Decode(int linktype, const Bytes& frame, size_t caplen, FragmentTracker* tracker) {
  Decoded d{DecodeError::kNone, {}, std::make_unique<uint8_t[]>(caplen == 0 ? 1 : caplen)};
  if (caplen > 0) std::memcpy(d.buffer.get(), frame.data(), caplen);
  d.error = DecodePacket(linktype, d.buffer.get(), caplen, tracker, &d.packet);
  return d;
}
Decoded Decode(int linktype, const Bytes& frame, FragmentTracker* tracker = nullptr) {
  return Decode(linktype, frame, frame.size(), tracker);
}

TEST(PacketDecoderTest, EthernetIpv4Tcp) {
  const Bytes payload = {'h', 'e', 'l', 'l', 'o'};
  const Bytes frame = Ethernet(0x0800, Ipv4(6, kA, kB, Tcp(40000, 443, 0x18, payload)));
  const Decoded d = Decode(kEthernet, frame);
  ASSERT_EQ(d.error, DecodeError::kNone);
  const DecodedPacket& p = d.packet;
  EXPECT_EQ(p.l3, d.buffer.get() + 14);
  EXPECT_EQ(p.l3_length, 20u + 20u + 5u);
  EXPECT_EQ(p.ip_version, 4);
  EXPECT_EQ(p.ip_protocol, 6);
  EXPECT_EQ(p.src.ToString(), "192.0.2.1");
  EXPECT_EQ(p.dst.ToString(), "198.51.100.2");
  EXPECT_EQ(p.src_port, 40000);
  EXPECT_EQ(p.dst_port, 443);
  EXPECT_EQ(p.tcp_flags, 0x18);
  ASSERT_EQ(p.l4_payload_length, 5u);
  EXPECT_EQ(p.l4_payload, d.buffer.get() + 54);
  EXPECT_EQ(std::memcmp(p.l4_payload, "hello", 5), 0);
  EXPECT_TRUE(p.has_mac);
  EXPECT_EQ(Bytes(p.dst_mac, p.dst_mac + 6), kDstMac);
  EXPECT_EQ(Bytes(p.src_mac, p.src_mac + 6), kSrcMac);
  EXPECT_EQ(p.vlan_id, 0);
  EXPECT_FALSE(p.is_fragment);
  EXPECT_EQ(p.tunnel_depth, 0);
}

TEST(PacketDecoderTest, EthernetPaddingIsExcluded) {
  Bytes frame = Ethernet(0x0800, Ipv4(17, kA, kB, Udp(5353, 53, {1, 2})));
  ASSERT_LT(frame.size(), 60u);
  frame.resize(60, 0xEE);  // minimum Ethernet frame, padded
  const Decoded d = Decode(kEthernet, frame);
  ASSERT_EQ(d.error, DecodeError::kNone);
  EXPECT_EQ(d.packet.l3_length, 30u);
  EXPECT_EQ(d.packet.l4_payload_length, 2u);
  EXPECT_EQ(d.packet.src_port, 5353);
  EXPECT_EQ(d.packet.dst_port, 53);
}

TEST(PacketDecoderTest, VlanReportsOutermostTag) {
  const Bytes ip = Ipv4(17, kA, kB, Udp(1, 2, {}));
  struct Case {
    std::vector<uint32_t> tags;
    uint16_t vlan;
  };
  const Case cases[] = {
      {{0x81000064}, 100},                          // 802.1Q, priority 0
      {{0x8100E064}, 100},                          // priority bits are not part of the id
      {{0x88A800C8, 0x8100012C}, 200},              // 802.1ad QinQ
      {{0x810000C8, 0x8100012C}, 200},              // double 802.1Q
      {{0x910000C8, 0x8100012C, 0x81000001}, 200},  // legacy QinQ, three tags
  };
  for (const Case& c : cases) {
    const Decoded d = Decode(kEthernet, Ethernet(0x0800, ip, c.tags));
    ASSERT_EQ(d.error, DecodeError::kNone);
    EXPECT_EQ(d.packet.vlan_id, c.vlan);
    EXPECT_EQ(d.packet.dst_port, 2);
    EXPECT_EQ(d.packet.l3_length, ip.size());
  }
}

TEST(PacketDecoderTest, MplsAndPppoe) {
  const Bytes ip = Ipv4(17, kA, kB, Udp(1, 2, {}));
  const Bytes mpls = Cat({{0x00, 0x01, 0x00, 0x40}, {0x00, 0x02, 0x01, 0x40}, ip});
  EXPECT_EQ(Decode(kEthernet, Ethernet(0x8847, mpls)).error, DecodeError::kNone);
  const Bytes pppoe = Cat({{0x11, 0x00, 0x00, 0x01, 0x00, 0x20, 0x00, 0x21}, ip});
  const Decoded d = Decode(kEthernet, Ethernet(0x8864, pppoe));
  ASSERT_EQ(d.error, DecodeError::kNone);
  EXPECT_EQ(d.packet.dst_port, 2);
}

TEST(PacketDecoderTest, NonIpFramesAreNotIp) {
  Bytes arp(28, 0);
  EXPECT_EQ(Decode(kEthernet, Ethernet(0x0806, arp)).error, DecodeError::kNotIp);
  EXPECT_EQ(Decode(kEthernet, Ethernet(0x88CC, arp, {0x81000005})).error, DecodeError::kNotIp);
}

TEST(PacketDecoderTest, EtherTypeMustMatchIpVersion) {
  const Bytes v6 = Ipv6(17, 1, 2, Udp(1, 2, {}));
  EXPECT_EQ(Decode(kEthernet, Ethernet(0x0800, v6)).error, DecodeError::kBadIpHeader);
}

TEST(PacketDecoderTest, LinuxSll) {
  Bytes frame = {0x00, 0x00, 0x00, 0x01, 0x00, 0x06};
  Append(frame, kSrcMac);
  Append(frame, {0, 0});
  Put16(frame, 0x86DD);
  Append(frame, Ipv6(17, 1, 2, Udp(1234, 53, {9})));
  const Decoded d = Decode(kSll, frame);
  ASSERT_EQ(d.error, DecodeError::kNone);
  EXPECT_EQ(d.packet.l3, d.buffer.get() + 16);
  EXPECT_EQ(d.packet.ip_version, 6);
  EXPECT_EQ(d.packet.src.ToString(), "2001:db8::1");
  EXPECT_EQ(d.packet.src_port, 1234);
  EXPECT_TRUE(d.packet.has_mac);
  EXPECT_EQ(Bytes(d.packet.src_mac, d.packet.src_mac + 6), kSrcMac);

  frame[5] = 0;  // no link-layer address
  const Decoded no_mac = Decode(kSll, frame);
  ASSERT_EQ(no_mac.error, DecodeError::kNone);
  EXPECT_FALSE(no_mac.packet.has_mac);
}

TEST(PacketDecoderTest, LinuxSll2) {
  Bytes frame;
  Put16(frame, 0x0800);
  Append(frame, {0, 0, 0, 0, 0, 2, 0x00, 0x01, 0x00, 0x06});
  Append(frame, kSrcMac);
  Append(frame, {0, 0});
  ASSERT_EQ(frame.size(), 20u);
  Append(frame, Ipv4(6, kA, kB, Tcp(1, 80, 0x02, {})));
  const Decoded d = Decode(kSll2, frame);
  ASSERT_EQ(d.error, DecodeError::kNone);
  EXPECT_EQ(d.packet.l3, d.buffer.get() + 20);
  EXPECT_EQ(d.packet.dst_port, 80);
  EXPECT_EQ(d.packet.tcp_flags, 0x02);
  EXPECT_EQ(Bytes(d.packet.src_mac, d.packet.src_mac + 6), kSrcMac);
}

TEST(PacketDecoderTest, BsdLoopbackFamilies) {
  const Bytes v4 = Ipv4(17, kA, kB, Udp(1, 2, {}));
  const Bytes v6 = Ipv6(17, 1, 2, Udp(1, 2, {}));
  // DLT_NULL: host order of the capturing machine, either way round.
  EXPECT_EQ(Decode(kNull, Cat({{2, 0, 0, 0}, v4})).packet.ip_version, 4);
  EXPECT_EQ(Decode(kNull, Cat({{0, 0, 0, 2}, v4})).packet.ip_version, 4);
  for (uint8_t family : {10, 24, 28, 30}) {
    const Decoded le = Decode(kNull, Cat({{family, 0, 0, 0}, v6}));
    ASSERT_EQ(le.error, DecodeError::kNone) << int{family};
    EXPECT_EQ(le.packet.ip_version, 6);
    EXPECT_EQ(Decode(kNull, Cat({{0, 0, 0, family}, v6})).error, DecodeError::kNone);
  }
  EXPECT_EQ(Decode(kNull, Cat({{7, 0, 0, 0}, v4})).error, DecodeError::kNotIp);
  // DLT_LOOP: network order only.
  EXPECT_EQ(Decode(kLoop, Cat({{0, 0, 0, 2}, v4})).error, DecodeError::kNone);
  EXPECT_EQ(Decode(kLoop, Cat({{0, 0, 0, 30}, v6})).error, DecodeError::kNone);
  EXPECT_EQ(Decode(kLoop, Cat({{2, 0, 0, 0}, v4})).error, DecodeError::kNotIp);
  EXPECT_EQ(Decode(kNull, Bytes{2, 0, 0}).error, DecodeError::kTruncated);
}

TEST(PacketDecoderTest, RawIpLinkTypes) {
  const Bytes v4 = Ipv4(6, kA, kB, Tcp(1, 2, 0x10, {}));
  const Bytes v6 = Ipv6(6, 1, 2, Tcp(1, 2, 0x10, {}));
  for (int linktype : {12, 14, 101}) {
    EXPECT_EQ(Decode(linktype, v4).packet.ip_version, 4) << linktype;
    EXPECT_EQ(Decode(linktype, v6).packet.ip_version, 6) << linktype;
  }
  EXPECT_EQ(Decode(228, v4).error, DecodeError::kNone);
  EXPECT_EQ(Decode(229, v6).error, DecodeError::kNone);
  EXPECT_EQ(Decode(228, v6).error, DecodeError::kBadIpHeader);
  EXPECT_EQ(Decode(229, v4).error, DecodeError::kBadIpHeader);
  EXPECT_EQ(Decode(12, Bytes{0x50, 0, 0, 0}).error, DecodeError::kBadIpHeader);
  EXPECT_EQ(Decode(127, v4).error, DecodeError::kUnsupportedLink);
  DecodedPacket out;
  EXPECT_EQ(DecodePacket(1, nullptr, 0, nullptr, &out), DecodeError::kTruncated);
}

TEST(PacketDecoderTest, Ipv4OptionsAreSkipped) {
  const Bytes options = {0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00};  // router alert, NOPs
  const Decoded d = Decode(12, Ipv4(17, kA, kB, Udp(7, 9, {1, 2, 3}), options));
  ASSERT_EQ(d.error, DecodeError::kNone);
  EXPECT_EQ(d.packet.src_port, 7);
  EXPECT_EQ(d.packet.dst_port, 9);
  EXPECT_EQ(d.packet.l4_payload, d.buffer.get() + 28 + 8);
  EXPECT_EQ(d.packet.l4_payload_length, 3u);
}

TEST(PacketDecoderTest, BadIpv4Headers) {
  const Bytes good = Ipv4(6, kA, kB, Tcp(1, 2, 0, {}));
  Bytes bad = good;
  bad[0] = 0x44;  // IHL 16 bytes < 20
  EXPECT_EQ(Decode(12, bad).error, DecodeError::kBadIpHeader);
  bad = good;
  bad[0] = 0x4F;  // IHL 60 bytes > the 40 captured
  bad[3] = 60;
  EXPECT_EQ(Decode(12, bad).error, DecodeError::kTruncated);
  bad = good;
  bad[2] = 0;
  bad[3] = 19;  // total length shorter than the header
  EXPECT_EQ(Decode(12, bad).error, DecodeError::kBadIpHeader);
  bad = good;
  bad[32] = 0x40;  // TCP data offset 16 bytes
  EXPECT_EQ(Decode(12, bad).error, DecodeError::kBadIpHeader);
  bad[32] = 0xF0;  // TCP data offset 60 bytes, 20 captured
  EXPECT_EQ(Decode(12, bad).error, DecodeError::kTruncated);
  bad = good;
  bad[3] = 30;  // total length cuts into the TCP header
  EXPECT_EQ(Decode(12, bad).error, DecodeError::kTruncated);
}

TEST(PacketDecoderTest, IcmpHasNoPorts) {
  const Bytes icmp = {8, 0, 0, 0, 0, 1, 0, 1, 'p', 'i', 'n', 'g'};
  const Decoded d = Decode(12, Ipv4(1, kA, kB, icmp));
  ASSERT_EQ(d.error, DecodeError::kNone);
  EXPECT_EQ(d.packet.ip_protocol, 1);
  EXPECT_EQ(d.packet.src_port, 0);
  EXPECT_EQ(d.packet.dst_port, 0);
  const Decoded v6 = Decode(12, Ipv6(58, 1, 2, {128, 0, 0, 0, 0, 1, 0, 1}));
  ASSERT_EQ(v6.error, DecodeError::kNone);
  EXPECT_EQ(v6.packet.ip_protocol, 58);
  EXPECT_EQ(v6.packet.src_port, 0);
}

TEST(PacketDecoderTest, Ipv4FragmentsShareTheFirstFragmentsPorts) {
  FragmentTracker tracker;
  const Bytes first = Ipv4(17, kA, kB, Udp(5000, 6000, Bytes(32, 1)), {}, 77, 0x2000);
  const Bytes middle = Ipv4(17, kA, kB, Bytes(40, 2), {}, 77, 0x2000 | 5);
  const Bytes last = Ipv4(17, kA, kB, Bytes(8, 3), {}, 77, 10);

  // Seen before the first fragment: nothing to attribute it to.
  EXPECT_EQ(Decode(12, last, &tracker).error, DecodeError::kFragmentUnknown);

  const Decoded f = Decode(12, first, &tracker);
  ASSERT_EQ(f.error, DecodeError::kNone);
  EXPECT_TRUE(f.packet.is_fragment);
  EXPECT_TRUE(f.packet.is_first_fragment);
  EXPECT_EQ(f.packet.src_port, 5000);
  EXPECT_EQ(tracker.size(), 1u);

  for (const Bytes* later : {&middle, &last}) {
    const Decoded d = Decode(12, *later, &tracker);
    ASSERT_EQ(d.error, DecodeError::kNone);
    EXPECT_TRUE(d.packet.is_fragment);
    EXPECT_FALSE(d.packet.is_first_fragment);
    EXPECT_EQ(d.packet.src_port, 5000);
    EXPECT_EQ(d.packet.dst_port, 6000);
    EXPECT_EQ(d.packet.ip_protocol, 17);
    EXPECT_EQ(d.packet.l4_payload, nullptr);
    EXPECT_EQ(d.packet.l4_payload_length, 0u);
  }
  // Same id from another source, another id, or no tracker: unknown.
  EXPECT_EQ(Decode(12, Ipv4(17, kB, kA, Bytes(8, 3), {}, 77, 10), &tracker).error,
            DecodeError::kFragmentUnknown);
  EXPECT_EQ(Decode(12, Ipv4(17, kA, kB, Bytes(8, 3), {}, 78, 10), &tracker).error,
            DecodeError::kFragmentUnknown);
  EXPECT_EQ(Decode(12, last, nullptr).error, DecodeError::kFragmentUnknown);
  // Offset 0 without MF is a whole datagram, not a fragment.
  EXPECT_FALSE(Decode(12, Ipv4(17, kA, kB, Udp(1, 2, {}), {}, 5, 0x4000)).packet.is_fragment);
}

TEST(PacketDecoderTest, Ipv6ExtensionHeadersAndFragments) {
  FragmentTracker tracker;
  // hop-by-hop (8) -> destination options (16) -> fragment -> TCP
  const Bytes first = Ipv6(0, 1, 2,
                           Cat({Ipv6Ext(60, 0), Ipv6Ext(44, 1), Ipv6Fragment(6, 0, true, 0xABCDEF),
                                Tcp(8080, 443, 0x18, Bytes(16, 7))}));
  const Decoded f = Decode(12, first, &tracker);
  ASSERT_EQ(f.error, DecodeError::kNone);
  EXPECT_EQ(f.packet.ip_protocol, 6);
  EXPECT_EQ(f.packet.src_port, 8080);
  EXPECT_EQ(f.packet.dst_port, 443);
  EXPECT_TRUE(f.packet.is_fragment);
  EXPECT_TRUE(f.packet.is_first_fragment);
  EXPECT_EQ(f.packet.l4_payload, f.buffer.get() + 40 + 8 + 16 + 8 + 20);
  EXPECT_EQ(f.packet.l4_payload_length, 16u);

  const Bytes later = Ipv6(44, 1, 2, Cat({Ipv6Fragment(6, 6, false, 0xABCDEF), Bytes(24, 9)}));
  const Decoded l = Decode(12, later, &tracker);
  ASSERT_EQ(l.error, DecodeError::kNone);
  EXPECT_TRUE(l.packet.is_fragment);
  EXPECT_FALSE(l.packet.is_first_fragment);
  EXPECT_EQ(l.packet.ip_protocol, 6);
  EXPECT_EQ(l.packet.src_port, 8080);
  EXPECT_EQ(l.packet.l4_payload, nullptr);
  const Bytes unknown = Ipv6(44, 1, 2, Cat({Ipv6Fragment(6, 6, false, 1), Bytes(24, 9)}));
  EXPECT_EQ(Decode(12, unknown, &tracker).error, DecodeError::kFragmentUnknown);
  // An atomic fragment is a complete datagram.
  const Decoded atomic =
      Decode(12, Ipv6(44, 1, 2, Cat({Ipv6Fragment(17, 0, false, 3), Udp(1, 2, {})})));
  ASSERT_EQ(atomic.error, DecodeError::kNone);
  EXPECT_FALSE(atomic.packet.is_fragment);
  EXPECT_EQ(atomic.packet.dst_port, 2);
}

TEST(PacketDecoderTest, Ipv6AuthenticationHeaderLengthUnit) {
  // AH payload length 4 -> (4 + 2) * 4 = 24 bytes; the generic rule would say 40.
  Bytes ah = {17, 4, 0, 0};
  ah.resize(24, 0xAA);
  const Decoded d = Decode(12, Ipv6(51, 1, 2, Cat({ah, Udp(4500, 4501, {1})})));
  ASSERT_EQ(d.error, DecodeError::kNone);
  EXPECT_EQ(d.packet.ip_protocol, 17);
  EXPECT_EQ(d.packet.src_port, 4500);
  EXPECT_EQ(d.packet.dst_port, 4501);
  EXPECT_EQ(d.packet.l4_payload_length, 1u);
}

TEST(PacketDecoderTest, Ipv6RoutingMobilityAndNoNextHeader) {
  const Decoded d = Decode(12, Ipv6(43, 1, 2, Cat({Ipv6Ext(135, 2), Ipv6Ext(59, 0)})));
  ASSERT_EQ(d.error, DecodeError::kNone);
  EXPECT_EQ(d.packet.ip_protocol, 59);
  EXPECT_EQ(d.packet.src_port, 0);
  // The upper-layer header missing after the extension headers.
  EXPECT_EQ(Decode(12, Ipv6(0, 1, 2, Ipv6Ext(6, 0))).error, DecodeError::kTruncated);
  // An extension header longer than the packet.
  Bytes overlong = Ipv6(0, 1, 2, Ipv6Ext(59, 0));
  overlong[41] = 3;
  EXPECT_EQ(Decode(12, overlong).error, DecodeError::kTruncated);
}

TEST(PacketDecoderTest, IpInIpTunnelsReportTheInnerPacket) {
  const Bytes inner4 = Ipv4(6, 0x0A000001, 0x0A000002, Tcp(1111, 22, 0x02, {}));
  const Bytes inner6 = Ipv6(17, 5, 6, Udp(3333, 53, {1, 2, 3}));
  struct Case {
    Bytes packet;
    size_t inner_offset;
    uint8_t version;
  };
  const Case cases[] = {
      {Ipv4(4, kA, kB, inner4), 20, 4},   // 4in4
      {Ipv4(41, kA, kB, inner6), 20, 6},  // 6in4
      {Ipv6(4, 1, 2, inner4), 40, 4},     // 4in6
      {Ipv6(41, 1, 2, inner6), 40, 6},    // 6in6
  };
  for (const Case& c : cases) {
    Bytes frame = Ethernet(c.packet[0] >> 4 == 4 ? 0x0800 : 0x86DD, c.packet);
    frame.resize(std::max<size_t>(frame.size(), 60), 0);  // padding stays outside
    const Decoded d = Decode(kEthernet, frame);
    ASSERT_EQ(d.error, DecodeError::kNone);
    EXPECT_EQ(d.packet.tunnel_depth, 1);
    EXPECT_EQ(d.packet.ip_version, c.version);
    EXPECT_EQ(d.packet.l3, d.buffer.get() + 14 + c.inner_offset);
    EXPECT_EQ(d.packet.l3_length, c.version == 4 ? inner4.size() : inner6.size());
    if (c.version == 4) {
      EXPECT_EQ(d.packet.src.ToString(), "10.0.0.1");
      EXPECT_EQ(d.packet.ip_protocol, 6);
      EXPECT_EQ(d.packet.dst_port, 22);
      EXPECT_EQ(d.packet.tcp_flags, 0x02);
    } else {
      EXPECT_EQ(d.packet.dst.ToString(), "2001:db8::6");
      EXPECT_EQ(d.packet.ip_protocol, 17);
      EXPECT_EQ(d.packet.src_port, 3333);
      EXPECT_EQ(d.packet.l4_payload_length, 3u);
    }
    EXPECT_TRUE(d.packet.has_mac);
  }
  // Protocol 4 promises IPv4 inside.
  EXPECT_EQ(Decode(12, Ipv4(4, kA, kB, inner6)).error, DecodeError::kBadIpHeader);
}

Bytes Gtp(uint8_t flags, uint8_t type, const Bytes& optional, const Bytes& inner) {
  Bytes b = {flags, type};
  Put16(b, static_cast<uint16_t>(optional.size() + inner.size()));
  Put32(b, 0x01020304);  // TEID
  Append(b, optional);
  Append(b, inner);
  return b;
}

TEST(PacketDecoderTest, GtpUTunnels) {
  const Bytes inner = Ipv4(6, 0x0A2D0001, 0x08080808, Tcp(50000, 443, 0x02, {}));
  const Bytes inner6 = Ipv6(17, 7, 8, Udp(1, 53, {}));
  // Plain, with sequence number, with a PDU session container extension header.
  const Bytes plain = Gtp(0x30, 0xFF, {}, inner);
  const Bytes with_seq = Gtp(0x32, 0xFF, {0x00, 0x2A, 0x00, 0x00}, inner);
  const Bytes with_ext = Gtp(0x34, 0xFF, {0, 0, 0, 0x85, 1, 0x10, 0x01, 0x00}, inner);
  for (const Bytes* gtp : {&plain, &with_seq, &with_ext}) {
    const Decoded d = Decode(kEthernet, Ethernet(0x0800, Ipv4(17, kA, kB, Udp(2152, 2152, *gtp))));
    ASSERT_EQ(d.error, DecodeError::kNone);
    EXPECT_EQ(d.packet.tunnel_depth, 1);
    EXPECT_EQ(d.packet.src.ToString(), "10.45.0.1");
    EXPECT_EQ(d.packet.dst_port, 443);
    EXPECT_EQ(d.packet.l3_length, inner.size());
  }
  // Source port 2152 is enough; IPv6 inside; IPv6 outside.
  const Decoded v6 = Decode(12, Ipv6(17, 1, 2, Udp(2152, 40000, Gtp(0x30, 0xFF, {}, inner6))));
  ASSERT_EQ(v6.error, DecodeError::kNone);
  EXPECT_EQ(v6.packet.ip_version, 6);
  EXPECT_EQ(v6.packet.dst_port, 53);
  // An echo request (not a T-PDU) and a GTPv2 message stay plain UDP.
  for (const Bytes& other : {Gtp(0x32, 0x01, {0, 1, 0, 0}, {}), Gtp(0x48, 0xFF, {}, inner)}) {
    const Decoded d = Decode(12, Ipv4(17, kA, kB, Udp(2152, 2152, other)));
    ASSERT_EQ(d.error, DecodeError::kNone);
    EXPECT_EQ(d.packet.tunnel_depth, 0);
    EXPECT_EQ(d.packet.src_port, 2152);
    EXPECT_EQ(d.packet.l4_payload_length, other.size());
  }
}

TEST(PacketDecoderTest, TunnelNestingIsLimited) {
  Bytes packet = Ipv4(17, kA, kB, Udp(1, 2, {}));
  for (int depth = 1; depth <= kMaxTunnelDepth; ++depth) {
    const uint8_t proto = packet[0] >> 4 == 4 ? 4 : 41;
    packet = depth % 2 == 0 ? Ipv4(proto, kA, kB, packet) : Ipv6(proto, 1, 2, packet);
    const Decoded d = Decode(12, packet);
    ASSERT_EQ(d.error, DecodeError::kNone) << depth;
    EXPECT_EQ(d.packet.tunnel_depth, depth);
    EXPECT_EQ(d.packet.dst_port, 2);
  }
  EXPECT_EQ(Decode(12, Ipv4(packet[0] >> 4 == 4 ? 4 : 41, kA, kB, packet)).error,
            DecodeError::kTooManyTunnels);
}

// Every prefix of a valid frame must decode without reading past it, and either fail with
// a header error or describe only captured bytes.
void CheckEveryPrefix(int linktype, const Bytes& frame, size_t headers_end) {
  FragmentTracker tracker;
  for (size_t n = 0; n <= frame.size(); ++n) {
    SCOPED_TRACE(n);
    const Decoded d = Decode(linktype, frame, n, &tracker);
    if (n < headers_end) {
      EXPECT_TRUE(d.error == DecodeError::kTruncated || d.error == DecodeError::kBadIpHeader)
          << DecodeErrorName(d.error);
      continue;
    }
    ASSERT_EQ(d.error, DecodeError::kNone);
    const uint8_t* end = d.buffer.get() + n;
    EXPECT_LE(d.packet.l3 + d.packet.l3_length, end);
    EXPECT_LE(d.packet.l4_payload + d.packet.l4_payload_length, end);
    EXPECT_EQ(d.packet.l4_payload + d.packet.l4_payload_length, end);
  }
}

TEST(PacketDecoderTest, TruncatedAtEveryLength) {
  const Bytes tcp = Tcp(443, 51000, 0x18, Bytes(30, 0x5A), {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2});
  const Bytes ipv4 = Ipv4(6, kA, kB, tcp, {1, 1, 1, 0});
  CheckEveryPrefix(kEthernet, Ethernet(0x0800, ipv4, {0x88A80010, 0x81000020}), 22 + 24 + 32);
  const Bytes ipv6 = Ipv6(0, 1, 2, Cat({Ipv6Ext(17, 0), Udp(1, 2, Bytes(20, 1))}));
  CheckEveryPrefix(kSll, Cat({Bytes(14, 0), {0x86, 0xDD}, ipv6}), 16 + 40 + 8 + 8);
  const Bytes gtp =
      Gtp(0x34, 0xFF, {0, 0, 0, 0x85, 1, 0x10, 0x01, 0x00}, Ipv6(4, 3, 4, Ipv4(6, kA, kB, tcp)));
  CheckEveryPrefix(12, Ipv4(17, kA, kB, Udp(9, 2152, gtp)), 20 + 8 + 16 + 40 + 20 + 32);
}

TEST(PacketDecoderTest, RandomCorruptionNeverReadsOutOfBounds) {
  const Bytes tcp = Tcp(443, 51000, 0x18, Bytes(30, 0x5A));
  const Bytes gtp = Gtp(0x34, 0xFF, {0, 0, 0, 0x85, 1, 0x10, 0x01, 0x00},
                        Ipv6(0, 3, 4, Cat({Ipv6Ext(44, 0), Ipv6Fragment(6, 0, true, 9), tcp})));
  const Bytes seeds[] = {
      Ethernet(0x0800, Ipv4(17, kA, kB, Udp(9, 2152, gtp)), {0x81000001}),
      Ethernet(0x86DD, Ipv6(51, 1, 2, Cat({{41, 1, 0, 0}, Bytes(8, 0), Ipv6(6, 1, 2, tcp)}))),
      Ethernet(0x0800, Ipv4(4, kA, kB, Ipv4(6, kA, kB, tcp, {}, 3, 0x2000))),
  };
  std::mt19937 rng(12345);
  FragmentTracker tracker(64);
  for (int i = 0; i < 20000; ++i) {
    Bytes frame = seeds[static_cast<size_t>(i) % std::size(seeds)];
    const int flips = 1 + static_cast<int>(rng() % 8);
    for (int f = 0; f < flips; ++f) frame[rng() % frame.size()] = static_cast<uint8_t>(rng());
    const size_t caplen = rng() % (frame.size() + 1);
    const int linktype = i % 7 == 0 ? kSll2 : (i % 11 == 0 ? 12 : kEthernet);
    const Decoded d = Decode(linktype, frame, caplen, &tracker);
    if (d.error != DecodeError::kNone) continue;
    const uint8_t* begin = d.buffer.get();
    ASSERT_GE(d.packet.l3, begin);
    ASSERT_LE(d.packet.l3 + d.packet.l3_length, begin + caplen);
    if (d.packet.l4_payload != nullptr) {
      ASSERT_GE(d.packet.l4_payload, d.packet.l3);
      ASSERT_LE(d.packet.l4_payload + d.packet.l4_payload_length, d.packet.l3 + d.packet.l3_length);
    }
  }
  EXPECT_LE(tracker.size(), 64u);
}

TEST(PacketDecoderTest, IpAddressTextAndOrder) {
  IpAddress v4{{192, 0, 2, 1}, 4};
  IpAddress v6{{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 6};
  EXPECT_EQ(v4.ToString(), "192.0.2.1");
  EXPECT_EQ(v6.ToString(), "2001:db8::1");
  EXPECT_EQ((IpAddress{{}, 6}).ToString(), "::");
  // RFC 5952: a single zero group is not shortened, the first longest run is.
  EXPECT_EQ((IpAddress{{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1}, 6}).ToString(),
            "2001:db8:0:1:1:1:1:1");
  EXPECT_EQ((IpAddress{{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1}, 6}).ToString(),
            "2001:db8::1:0:0:1");
  EXPECT_EQ(IpAddress{}.ToString(), "");

  IpAddress v4_noise = v4;
  v4_noise.bytes[10] = 0xFF;  // beyond an IPv4 address: ignored
  EXPECT_EQ(v4, v4_noise);
  EXPECT_TRUE((v4 <=> v4_noise) == 0);
  IpAddress v4_higher{{192, 0, 2, 2}, 4};
  EXPECT_NE(v4, v4_higher);
  EXPECT_TRUE(v4 < v4_higher);
  EXPECT_TRUE(v4_higher < v6);  // version first
  EXPECT_FALSE(v6 < v4);
  IpAddress v4_as_v6 = v4;
  v4_as_v6.version = 6;
  EXPECT_NE(v4, v4_as_v6);
}

// The text is written by hand for speed: it must stay inet_ntop's, which every netifyd
// reader has seen, for every shape of address (zero runs of each length and place,
// IPv4-mapped and -compatible forms). The order must stay the bytes' order.
TEST(PacketDecoderTest, IpAddressTextAndOrderAgreeWithLibc) {
  std::mt19937 random(5952);
  std::vector<IpAddress> addresses;
  auto v6_of_words = [](const uint16_t(&words)[8]) {
    IpAddress a;
    a.version = 6;
    for (int i = 0; i < 8; ++i) {
      a.bytes[2 * i] = static_cast<uint8_t>(words[i] >> 8);
      a.bytes[2 * i + 1] = static_cast<uint8_t>(words[i]);
    }
    return a;
  };
  // Every pattern of zero and non-zero words, with non-zero values of each digit count.
  const uint16_t kValues[] = {0x1, 0xab, 0xdb8, 0xffff, 0x1000};
  for (uint32_t mask = 0; mask < 256; ++mask) {
    uint16_t words[8];
    for (int i = 0; i < 8; ++i) words[i] = (mask >> i & 1) ? kValues[(mask + i) % 5] : 0;
    addresses.push_back(v6_of_words(words));
  }
  for (uint16_t fifth : {0x0000, 0xffff, 0xfffe}) {  // ::a.b.c.d, ::ffff:a.b.c.d, neither
    const uint16_t words[8] = {0, 0, 0, 0, 0, fifth, 0xc000, 0x0201};
    addresses.push_back(v6_of_words(words));
  }
  for (int b = 0; b < 256; ++b) {  // every byte's digits, in each position
    IpAddress a;
    a.version = 4;
    const uint8_t byte = static_cast<uint8_t>(b), flipped = static_cast<uint8_t>(255 - b);
    a.bytes[0] = byte, a.bytes[1] = flipped, a.bytes[2] = byte, a.bytes[3] = flipped;
    addresses.push_back(a);
  }
  for (int i = 0; i < 2000; ++i) {
    IpAddress a;
    a.version = (i % 3 == 0) ? 4 : 6;
    for (uint8_t& b : a.bytes) b = (random() % 3 == 0) ? 0 : static_cast<uint8_t>(random());
    addresses.push_back(a);
  }
  for (const IpAddress& a : addresses) {
    char expected[INET6_ADDRSTRLEN];
    ASSERT_NE(inet_ntop(a.version == 4 ? AF_INET : AF_INET6, a.bytes, expected, sizeof expected),
              nullptr);
    std::string text = "a previous, longer text in the buffer";
    a.AssignText(&text);
    EXPECT_EQ(text, expected);
    EXPECT_EQ(a.ToString(), expected);
  }
  for (size_t i = 1; i < addresses.size(); ++i) {
    const IpAddress& a = addresses[i - 1];
    const IpAddress& b = addresses[i];
    if (a.version != b.version) continue;
    const int bytes_order = std::memcmp(a.bytes, b.bytes, a.version == 4 ? 4 : 16);
    EXPECT_EQ(a < b, bytes_order < 0) << a.ToString() << " " << b.ToString();
    EXPECT_EQ(a == b, bytes_order == 0) << a.ToString() << " " << b.ToString();
  }
}

TEST(PacketDecoderTest, DecodeErrorNamesAreDistinct) {
  const DecodeError all[] = {
      DecodeError::kNone,          DecodeError::kTruncated,   DecodeError::kUnsupportedLink,
      DecodeError::kNotIp,         DecodeError::kBadIpHeader, DecodeError::kFragmentUnknown,
      DecodeError::kTooManyTunnels};
  for (DecodeError a : all) {
    EXPECT_FALSE(DecodeErrorName(a).empty());
    for (DecodeError b : all) {
      if (a != b) {
        EXPECT_NE(DecodeErrorName(a), DecodeErrorName(b));
      }
    }
  }
  EXPECT_EQ(DecodeErrorName(DecodeError::kTruncated), "truncated");
}

TEST(PacketDecoderTest, FragmentTrackerIsBounded) {
  const IpAddress a{{10, 0, 0, 1}, 4}, b{{10, 0, 0, 2}, 4};
  FragmentTracker tracker(2);
  uint16_t sport = 0, dport = 0;
  tracker.Remember(a, b, 17, 1, 11, 12);
  tracker.Remember(a, b, 17, 2, 21, 22);
  tracker.Remember(a, b, 17, 1, 31, 32);  // refreshes id 1: id 2 is now the oldest
  tracker.Remember(a, b, 17, 3, 41, 42);
  EXPECT_EQ(tracker.size(), 2u);
  EXPECT_FALSE(tracker.Lookup(a, b, 17, 2, &sport, &dport));
  ASSERT_TRUE(tracker.Lookup(a, b, 17, 1, &sport, &dport));
  EXPECT_EQ(sport, 31);
  EXPECT_EQ(dport, 32);
  ASSERT_TRUE(tracker.Lookup(a, b, 17, 3, &sport, &dport));
  EXPECT_EQ(sport, 41);
  EXPECT_FALSE(tracker.Lookup(a, b, 6, 3, &sport, &dport));  // protocol is part of the key
  EXPECT_FALSE(tracker.Lookup(b, a, 17, 3, &sport, &dport));

  FragmentTracker none(0);
  none.Remember(a, b, 17, 1, 1, 2);
  EXPECT_EQ(none.size(), 0u);
}

}  // namespace
}  // namespace flowgate::capture
