#include "capture/packet_decoder.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace flowgate::capture {
namespace {

// Link types as pcap_datalink() reports them. DLT_RAW is 12 on most systems and 14 on
// OpenBSD; libpcap normally maps LINKTYPE_RAW (101) to DLT_RAW, but a few builds pass it
// through, so every spelling is accepted.
constexpr int kDltNull = 0;
constexpr int kDltEn10mb = 1;
constexpr int kDltRaw = 12;
constexpr int kDltRawOpenBsd = 14;
constexpr int kLinktypeRaw = 101;
constexpr int kDltLoop = 108;
constexpr int kDltLinuxSll = 113;
constexpr int kDltIpv4 = 228;
constexpr int kDltIpv6 = 229;
constexpr int kDltLinuxSll2 = 276;

constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint16_t kEtherTypeIpv6 = 0x86DD;
constexpr uint16_t kEtherTypeVlan = 0x8100;        // 802.1Q
constexpr uint16_t kEtherTypeQinQ = 0x88A8;        // 802.1ad service tag
constexpr uint16_t kEtherTypeQinQLegacy = 0x9100;  // pre-standard QinQ
constexpr uint16_t kEtherTypeMplsUnicast = 0x8847;
constexpr uint16_t kEtherTypeMplsMulticast = 0x8848;
constexpr uint16_t kEtherTypePppoeSession = 0x8864;
constexpr uint16_t kPppIpv4 = 0x0021;
constexpr uint16_t kPppIpv6 = 0x0057;

constexpr size_t kEthernetHeaderLength = 14;
constexpr size_t kVlanTagLength = 4;
constexpr size_t kSllHeaderLength = 16;
constexpr size_t kSll2HeaderLength = 20;
constexpr size_t kNullHeaderLength = 4;
constexpr size_t kPppoeHeaderLength = 8;  // 6 bytes PPPoE + 2 bytes PPP protocol
constexpr size_t kMplsLabelLength = 4;

constexpr uint8_t kProtoHopByHop = 0;
constexpr uint8_t kProtoIpIp = 4;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kProtoIpv6 = 41;
constexpr uint8_t kProtoRouting = 43;
constexpr uint8_t kProtoFragment = 44;
constexpr uint8_t kProtoAh = 51;
constexpr uint8_t kProtoDestOpts = 60;
constexpr uint8_t kProtoMobility = 135;
constexpr uint8_t kProtoHip = 139;
constexpr uint8_t kProtoShim6 = 140;
constexpr uint8_t kProtoExperimental1 = 253;
constexpr uint8_t kProtoExperimental2 = 254;

constexpr size_t kIpv4MinHeaderLength = 20;
constexpr size_t kIpv6HeaderLength = 40;
constexpr size_t kTcpMinHeaderLength = 20;
constexpr size_t kUdpHeaderLength = 8;
constexpr size_t kIpv6FragmentHeaderLength = 8;

constexpr uint16_t kGtpUPort = 2152;
constexpr uint8_t kGtpTypeTpdu = 0xFF;
constexpr size_t kGtpMandatoryLength = 8;

// BSD loopback address families: AF_INET is 2 everywhere, AF_INET6 differs per system.
constexpr uint32_t kBsdAfInet = 2;
constexpr uint32_t kBsdAfInet6Linux = 10;
constexpr uint32_t kBsdAfInet6NetBsd = 24;  // also OpenBSD
constexpr uint32_t kBsdAfInet6FreeBsd = 28;
constexpr uint32_t kBsdAfInet6Darwin = 30;

// Multi-byte fields are assembled byte by byte: frames have no alignment guarantee.
uint16_t Load16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
uint32_t Load32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | static_cast<uint32_t>(p[3]);
}
uint32_t Load32Le(const uint8_t* p) {
  return (static_cast<uint32_t>(p[3]) << 24) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[1]) << 8) | static_cast<uint32_t>(p[0]);
}

bool IsInet6Family(uint32_t family) {
  return family == kBsdAfInet6Linux || family == kBsdAfInet6NetBsd ||
         family == kBsdAfInet6FreeBsd || family == kBsdAfInet6Darwin;
}

// Where the next decoding step starts: an IP packet to decode (a tunnel's inner packet),
// or nothing when the current packet was the innermost one.
struct InnerPacket {
  const uint8_t* data = nullptr;
  size_t length = 0;
  uint8_t expected_version = 0;  // 0 = either
};

// Fills the transport fields of a packet whose L4 header starts at `p` (`len` bytes up
// to the end of the IP packet). Finds a GTP-U T-PDU's inner packet, if any.
DecodeError DecodeTransport(uint8_t protocol, const uint8_t* p, size_t len, DecodedPacket* out,
                            InnerPacket* inner) {
  if (protocol == kProtoTcp) {
    if (len < kTcpMinHeaderLength) return DecodeError::kTruncated;
    const size_t header_length = static_cast<size_t>(p[12] >> 4) * 4;
    // A data offset below the minimum header is malformed; there is no TCP-specific error,
    // and the packet is as unusable as one with a broken IP header.
    if (header_length < kTcpMinHeaderLength) return DecodeError::kBadIpHeader;
    if (header_length > len) return DecodeError::kTruncated;
    out->src_port = Load16(p);
    out->dst_port = Load16(p + 2);
    out->tcp_flags = p[13];
    out->l4_payload = p + header_length;
    out->l4_payload_length = len - header_length;
    return DecodeError::kNone;
  }
  if (protocol == kProtoUdp) {
    if (len < kUdpHeaderLength) return DecodeError::kTruncated;
    out->src_port = Load16(p);
    out->dst_port = Load16(p + 2);
    size_t payload_length = len - kUdpHeaderLength;
    // The UDP length bounds the payload when it is plausible; 0 (jumbograms) or a value
    // beyond the capture leaves what was captured.
    const uint16_t udp_length = Load16(p + 4);
    bool snapped = false;  // the capture ends before the datagram does
    if (udp_length >= kUdpHeaderLength) {
      const size_t declared = static_cast<size_t>(udp_length) - kUdpHeaderLength;
      snapped = declared > payload_length;
      payload_length = std::min(payload_length, declared);
    }
    out->l4_payload = p + kUdpHeaderLength;
    out->l4_payload_length = payload_length;

    if (out->src_port != kGtpUPort && out->dst_port != kGtpUPort) return DecodeError::kNone;
    // GTPv1-U (3GPP TS 29.281). Anything that is not a version-1 G-PDU carrying IP stays
    // an ordinary UDP packet: echo requests, GTP' and unrelated traffic on port 2152.
    const uint8_t* gtp = out->l4_payload;
    const size_t gtp_length = payload_length;
    // Too short to tell: a cut-off capture is an error (a tunnel's packets must not turn
    // into outer flows because of the snap length), a short datagram is just UDP.
    if (gtp_length < kGtpMandatoryLength)
      return snapped ? DecodeError::kTruncated : DecodeError::kNone;
    const uint8_t flags = gtp[0];
    const bool version1 = (flags >> 5) == 1;
    const bool protocol_type_gtp = (flags & 0x10) != 0;
    if (!version1 || !protocol_type_gtp || gtp[1] != kGtpTypeTpdu) return DecodeError::kNone;
    size_t offset = kGtpMandatoryLength;
    if ((flags & 0x07) != 0) {
      // Any of E, S, PN present: the 4-byte sequence/N-PDU/next-extension block follows.
      if (gtp_length < offset + 4) return DecodeError::kTruncated;
      uint8_t next_extension = gtp[offset + 3];
      offset += 4;
      if ((flags & 0x04) != 0) {
        // Each extension header: length in 4-byte units (covering the length byte and the
        // next-type byte), last byte is the next extension type; 0 ends the chain.
        while (next_extension != 0) {
          if (gtp_length < offset + 1) return DecodeError::kTruncated;
          const size_t ext_length = static_cast<size_t>(gtp[offset]) * 4;
          if (ext_length == 0) return DecodeError::kNone;  // malformed: not a G-PDU we trust
          if (gtp_length < offset + ext_length) return DecodeError::kTruncated;
          next_extension = gtp[offset + ext_length - 1];
          offset += ext_length;
        }
      }
    }
    if (gtp_length <= offset) {
      // An empty G-PDU carries no packet, unless the capture cut it off.
      return snapped ? DecodeError::kTruncated : DecodeError::kNone;
    }
    const uint8_t version = gtp[offset] >> 4;
    if (version != 4 && version != 6) return DecodeError::kNone;
    inner->data = gtp + offset;
    inner->length = gtp_length - offset;
    inner->expected_version = version;
    return DecodeError::kNone;
  }
  // Protocols without ports (ICMP, ICMPv6, GRE, ESP, ...): the payload is the whole L4
  // message, for callers that want to look at it.
  if (len > 0) {
    out->l4_payload = p;
    out->l4_payload_length = len;
  }
  return DecodeError::kNone;
}

// Handles the L4 part common to IPv4 and IPv6: fragments, tunnels, transport headers.
// `p`/`len` cover the bytes after the IP header (and IPv6 extension headers).
DecodeError DecodeUpperLayer(uint8_t protocol, const uint8_t* p, size_t len, bool is_fragment,
                             bool is_first_fragment, uint32_t fragment_id, FragmentTracker* tracker,
                             DecodedPacket* out, InnerPacket* inner) {
  out->ip_protocol = protocol;
  out->is_fragment = is_fragment;
  out->is_first_fragment = is_first_fragment;
  if (is_fragment && !is_first_fragment) {
    // No L4 header here: the ports come from the first fragment, if it was seen.
    if (tracker == nullptr || !tracker->Lookup(out->src, out->dst, protocol, fragment_id,
                                               &out->src_port, &out->dst_port)) {
      return DecodeError::kFragmentUnknown;
    }
    return DecodeError::kNone;
  }
  if (protocol == kProtoIpIp || protocol == kProtoIpv6) {
    // A fragmented tunnel packet is reported as the outer packet: its later fragments
    // cannot be decapsulated, and all fragments must land in the same flow.
    if (is_fragment) {
      out->l4_payload = len > 0 ? p : nullptr;
      out->l4_payload_length = len;
    } else {
      inner->data = p;
      inner->length = len;
      inner->expected_version = protocol == kProtoIpIp ? 4 : 6;
    }
  } else {
    const DecodeError error = DecodeTransport(protocol, p, len, out, inner);
    if (error != DecodeError::kNone) return error;
    // A GTP-U payload inside a fragment is not decapsulated, for the same reason.
    if (is_fragment) *inner = InnerPacket{};
  }
  if (is_first_fragment && tracker != nullptr) {
    // Also for protocols without ports, so later fragments of e.g. ICMP are attributed.
    tracker->Remember(out->src, out->dst, protocol, fragment_id, out->src_port, out->dst_port);
  }
  return DecodeError::kNone;
}

DecodeError DecodeIpv4(const uint8_t* p, size_t len, FragmentTracker* tracker, DecodedPacket* out,
                       InnerPacket* inner) {
  if (len < kIpv4MinHeaderLength) return DecodeError::kTruncated;
  if ((p[0] >> 4) != 4) return DecodeError::kBadIpHeader;
  const size_t header_length = static_cast<size_t>(p[0] & 0x0F) * 4;
  if (header_length < kIpv4MinHeaderLength) return DecodeError::kBadIpHeader;
  const size_t total_length = Load16(p + 2);
  if (total_length < header_length) return DecodeError::kBadIpHeader;
  if (header_length > len) return DecodeError::kTruncated;

  out->l3 = p;
  // Excludes link-layer padding after a short packet; a snapped capture keeps what it has.
  out->l3_length = std::min(len, total_length);
  out->ip_version = 4;
  out->src = IpAddress{};
  out->dst = IpAddress{};
  out->src.version = out->dst.version = 4;
  std::memcpy(out->src.bytes, p + 12, 4);
  std::memcpy(out->dst.bytes, p + 16, 4);

  const uint16_t fragment_field = Load16(p + 6);
  const size_t fragment_offset = fragment_field & 0x1FFF;
  const bool more_fragments = (fragment_field & 0x2000) != 0;
  const bool is_fragment = fragment_offset != 0 || more_fragments;
  return DecodeUpperLayer(p[9], p + header_length, out->l3_length - header_length, is_fragment,
                          is_fragment && fragment_offset == 0, Load16(p + 4), tracker, out, inner);
}

bool IsIpv6ExtensionHeader(uint8_t next_header) {
  switch (next_header) {
    case kProtoHopByHop:
    case kProtoRouting:
    case kProtoFragment:
    case kProtoAh:
    case kProtoDestOpts:
    case kProtoMobility:
    case kProtoHip:
    case kProtoShim6:
    case kProtoExperimental1:
    case kProtoExperimental2:
      return true;
    default:
      return false;
  }
}

DecodeError DecodeIpv6(const uint8_t* p, size_t len, FragmentTracker* tracker, DecodedPacket* out,
                       InnerPacket* inner) {
  if (len < kIpv6HeaderLength) return DecodeError::kTruncated;
  if ((p[0] >> 4) != 6) return DecodeError::kBadIpHeader;
  const size_t payload_length = Load16(p + 4);
  uint8_t next_header = p[6];

  out->l3 = p;
  // A zero payload length with a hop-by-hop header is a jumbogram (RFC 2675): its real
  // length is in an option, so the captured length is the best bound.
  if (payload_length == 0 && next_header == kProtoHopByHop) {
    out->l3_length = len;
  } else {
    out->l3_length = std::min(len, kIpv6HeaderLength + payload_length);
  }
  out->ip_version = 6;
  out->src = IpAddress{};
  out->dst = IpAddress{};
  out->src.version = out->dst.version = 6;
  std::memcpy(out->src.bytes, p + 8, 16);
  std::memcpy(out->dst.bytes, p + 24, 16);

  size_t offset = kIpv6HeaderLength;
  const size_t end = out->l3_length;
  bool is_fragment = false;
  bool is_first_fragment = false;
  uint32_t fragment_id = 0;
  // Every extension header is at least 8 bytes long, so the walk ends within the packet.
  while (IsIpv6ExtensionHeader(next_header)) {
    if (end - offset < 2) return DecodeError::kTruncated;
    const uint8_t* header = p + offset;
    size_t header_length;
    if (next_header == kProtoFragment) {
      header_length = kIpv6FragmentHeaderLength;
      if (end - offset < header_length) return DecodeError::kTruncated;
      const uint16_t fragment_field = Load16(header + 2);
      const size_t fragment_offset = fragment_field >> 3;
      const bool more_fragments = (fragment_field & 0x1) != 0;
      // An atomic fragment (offset 0, no more fragments) is a whole datagram (RFC 6946).
      if (fragment_offset != 0 || more_fragments) {
        is_fragment = true;
        is_first_fragment = fragment_offset == 0;
        fragment_id = Load32(header + 4);
      }
    } else if (next_header == kProtoAh) {
      // AH counts its length in 4-byte units minus 2 (RFC 4302), unlike the others.
      header_length = (static_cast<size_t>(header[1]) + 2) * 4;
    } else {
      header_length = (static_cast<size_t>(header[1]) + 1) * 8;
    }
    if (end - offset < header_length) return DecodeError::kTruncated;
    next_header = header[0];
    offset += header_length;
    if (is_fragment && !is_first_fragment) break;  // the rest is not a header
  }
  return DecodeUpperLayer(next_header, p + offset, end - offset, is_fragment, is_first_fragment,
                          fragment_id, tracker, out, inner);
}

// Decodes an IP packet and any tunnels inside it, leaving the innermost packet in *out.
DecodeError DecodeIp(const uint8_t* p, size_t len, uint8_t expected_version,
                     FragmentTracker* tracker, DecodedPacket* out) {
  for (uint8_t depth = 0;; ++depth) {
    if (len < 1) return DecodeError::kTruncated;
    const uint8_t version = p[0] >> 4;
    if (expected_version != 0 && version != expected_version) return DecodeError::kBadIpHeader;
    // Each level reports its own transport fields; an outer packet's must not leak in.
    out->src_port = out->dst_port = 0;
    out->tcp_flags = 0;
    out->l4_payload = nullptr;
    out->l4_payload_length = 0;
    InnerPacket inner;
    DecodeError error;
    if (version == 4) {
      error = DecodeIpv4(p, len, tracker, out, &inner);
    } else if (version == 6) {
      error = DecodeIpv6(p, len, tracker, out, &inner);
    } else {
      return DecodeError::kBadIpHeader;
    }
    if (error != DecodeError::kNone) return error;
    out->tunnel_depth = depth;
    if (inner.data == nullptr) return DecodeError::kNone;
    if (depth + 1 > kMaxTunnelDepth) return DecodeError::kTooManyTunnels;
    p = inner.data;
    len = inner.length;
    expected_version = inner.expected_version;
  }
}

// Follows VLAN tags, MPLS labels and PPPoE from an EtherType to the IP packet.
DecodeError DecodeEtherType(uint16_t ether_type, const uint8_t* p, size_t len,
                            FragmentTracker* tracker, DecodedPacket* out) {
  bool outer_tag = true;
  // Each iteration consumes at least 4 bytes, so the loop ends with the frame.
  for (;;) {
    switch (ether_type) {
      case kEtherTypeIpv4:
        return DecodeIp(p, len, 4, tracker, out);
      case kEtherTypeIpv6:
        return DecodeIp(p, len, 6, tracker, out);
      case kEtherTypeVlan:
      case kEtherTypeQinQ:
      case kEtherTypeQinQLegacy: {
        if (len < kVlanTagLength) return DecodeError::kTruncated;
        if (outer_tag) out->vlan_id = Load16(p) & 0x0FFF;
        outer_tag = false;
        ether_type = Load16(p + 2);
        p += kVlanTagLength;
        len -= kVlanTagLength;
        break;
      }
      case kEtherTypeMplsUnicast:
      case kEtherTypeMplsMulticast: {
        bool bottom_of_stack = false;
        while (!bottom_of_stack) {
          if (len < kMplsLabelLength) return DecodeError::kTruncated;
          bottom_of_stack = (p[2] & 0x01) != 0;
          p += kMplsLabelLength;
          len -= kMplsLabelLength;
        }
        // MPLS does not name its payload; IP is recognised by its version nibble.
        if (len < 1) return DecodeError::kTruncated;
        const uint8_t version = p[0] >> 4;
        if (version != 4 && version != 6) return DecodeError::kNotIp;
        return DecodeIp(p, len, version, tracker, out);
      }
      case kEtherTypePppoeSession: {
        if (len < kPppoeHeaderLength) return DecodeError::kTruncated;
        const uint16_t ppp_protocol = Load16(p + 6);
        p += kPppoeHeaderLength;
        len -= kPppoeHeaderLength;
        if (ppp_protocol == kPppIpv4) return DecodeIp(p, len, 4, tracker, out);
        if (ppp_protocol == kPppIpv6) return DecodeIp(p, len, 6, tracker, out);
        return DecodeError::kNotIp;
      }
      default:
        return DecodeError::kNotIp;
    }
  }
}

DecodeError DecodeEthernet(const uint8_t* frame, size_t caplen, FragmentTracker* tracker,
                           DecodedPacket* out) {
  if (caplen < kEthernetHeaderLength) return DecodeError::kTruncated;
  std::memcpy(out->dst_mac, frame, 6);
  std::memcpy(out->src_mac, frame + 6, 6);
  out->has_mac = true;
  return DecodeEtherType(Load16(frame + 12), frame + kEthernetHeaderLength,
                         caplen - kEthernetHeaderLength, tracker, out);
}

DecodeError DecodeLinuxSll(const uint8_t* frame, size_t caplen, FragmentTracker* tracker,
                           DecodedPacket* out) {
  // packet type (2), ARPHRD type (2), address length (2), address (8), protocol (2).
  if (caplen < kSllHeaderLength) return DecodeError::kTruncated;
  if (Load16(frame + 4) == 6) {
    // Only the sender's address is recorded; dst_mac stays zero.
    std::memcpy(out->src_mac, frame + 6, 6);
    out->has_mac = true;
  }
  return DecodeEtherType(Load16(frame + 14), frame + kSllHeaderLength, caplen - kSllHeaderLength,
                         tracker, out);
}

DecodeError DecodeLinuxSll2(const uint8_t* frame, size_t caplen, FragmentTracker* tracker,
                            DecodedPacket* out) {
  // protocol (2), reserved (2), ifindex (4), ARPHRD type (2), packet type (1),
  // address length (1), address (8).
  if (caplen < kSll2HeaderLength) return DecodeError::kTruncated;
  if (frame[11] == 6) {
    std::memcpy(out->src_mac, frame + 12, 6);
    out->has_mac = true;
  }
  return DecodeEtherType(Load16(frame), frame + kSll2HeaderLength, caplen - kSll2HeaderLength,
                         tracker, out);
}

DecodeError DecodeLoopback(bool network_order, const uint8_t* frame, size_t caplen,
                           FragmentTracker* tracker, DecodedPacket* out) {
  if (caplen < kNullHeaderLength) return DecodeError::kTruncated;
  uint32_t family = Load32(frame);
  if (!network_order) {
    // DLT_NULL stores the family in the byte order of the machine that captured, which
    // need not be ours: accept whichever order gives a known family.
    const uint32_t little_endian = Load32Le(frame);
    if (little_endian == kBsdAfInet || IsInet6Family(little_endian)) family = little_endian;
  }
  const uint8_t* p = frame + kNullHeaderLength;
  const size_t len = caplen - kNullHeaderLength;
  if (family == kBsdAfInet) return DecodeIp(p, len, 4, tracker, out);
  if (IsInet6Family(family)) return DecodeIp(p, len, 6, tracker, out);
  return DecodeError::kNotIp;
}

// "0" to "255", each as up to three digits and their count: a byte's text is one load and
// one copy, where dividing by 100 and 10 and branching on the count showed in the worker's
// profile (every flow event writes two addresses).
struct DecimalByte {
  char digits[3];
  uint8_t length;
};
constexpr std::array<DecimalByte, 256> kDecimalBytes = [] {
  std::array<DecimalByte, 256> table{};
  for (int b = 0; b < 256; ++b) {
    DecimalByte& d = table[static_cast<size_t>(b)];
    if (b >= 100) d.digits[d.length++] = static_cast<char>('0' + b / 100);
    if (b >= 10) d.digits[d.length++] = static_cast<char>('0' + b / 10 % 10);
    d.digits[d.length++] = static_cast<char>('0' + b % 10);
  }
  return table;
}();

}  // namespace

std::string IpAddress::ToString() const {
  std::string text;
  AssignText(&text);
  return text;
}

void IpAddress::AssignText(std::string* out) const {
  // By hand, not inet_ntop: glibc formats each number with sprintf, which cost more than a
  // flow event's other fields together. The IPv6 text is inet_ntop's, RFC 5952's.
  // Room for the longest text and the two bytes a short number's copy writes past it.
  char text[INET6_ADDRSTRLEN + 2];
  char* end = text;
  auto put_decimal = [&end](uint8_t b) {
    const DecimalByte& d = kDecimalBytes[b];
    std::memcpy(end, d.digits, sizeof d.digits);
    end += d.length;
  };
  auto put_dotted = [&](const uint8_t* four) {
    for (int i = 0; i < 4; ++i) {
      if (i > 0) *end++ = '.';
      put_decimal(four[i]);
    }
  };
  if (version == 4) {
    put_dotted(bytes);
  } else if (version == 6) {
    uint16_t words[8];
    for (int i = 0; i < 8; ++i)
      words[i] = static_cast<uint16_t>(bytes[2 * i] << 8 | bytes[2 * i + 1]);
    // The first longest run of two or more zero words becomes "::".
    int best = -1, best_length = 0;
    for (int i = 0; i < 8;) {
      if (words[i] != 0) {
        ++i;
        continue;
      }
      int j = i;
      while (j < 8 && words[j] == 0) ++j;
      if (j - i > best_length) best = i, best_length = j - i;
      i = j;
    }
    if (best_length < 2) best = -1;
    constexpr char kDigits[] = "0123456789abcdef";
    for (int i = 0; i < 8; ++i) {
      if (best >= 0 && i >= best && i < best + best_length) {
        if (i == best) *end++ = ':';
        continue;
      }
      if (i > 0) *end++ = ':';
      // IPv4-compatible (::a.b.c.d) and IPv4-mapped (::ffff:a.b.c.d) addresses end dotted.
      if (i == 6 && best == 0 && (best_length == 6 || (best_length == 5 && words[5] == 0xffff))) {
        put_dotted(bytes + 12);
        break;
      }
      bool leading = true;  // no leading zeros: "db8", "0"
      for (int shift = 12; shift >= 0; shift -= 4) {
        const int digit = (words[i] >> shift) & 15;
        if (leading && digit == 0 && shift > 0) continue;
        leading = false;
        *end++ = kDigits[digit];
      }
    }
    if (best >= 0 && best + best_length == 8) *end++ = ':';
  }
  out->assign(text, end);
}

std::string_view DecodeErrorName(DecodeError error) {
  switch (error) {
    case DecodeError::kNone:
      return "none";
    case DecodeError::kTruncated:
      return "truncated";
    case DecodeError::kUnsupportedLink:
      return "unsupported_link";
    case DecodeError::kNotIp:
      return "not_ip";
    case DecodeError::kBadIpHeader:
      return "bad_ip_header";
    case DecodeError::kFragmentUnknown:
      return "fragment_unknown";
    case DecodeError::kTooManyTunnels:
      return "too_many_tunnels";
  }
  return "unknown";
}

size_t FragmentTracker::KeyHash::operator()(const Key& key) const {
  // FNV-1a over the fields that identify a datagram; addresses use only their own bytes.
  uint64_t hash = 14695981039346656037ULL;
  auto mix = [&hash](const uint8_t* data, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      hash ^= data[i];
      hash *= 1099511628211ULL;
    }
  };
  mix(key.src.bytes, key.src.version == 4 ? 4 : 16);
  mix(key.dst.bytes, key.dst.version == 4 ? 4 : 16);
  const uint8_t tail[6] = {key.src.version,
                           key.protocol,
                           static_cast<uint8_t>(key.id >> 24),
                           static_cast<uint8_t>(key.id >> 16),
                           static_cast<uint8_t>(key.id >> 8),
                           static_cast<uint8_t>(key.id)};
  mix(tail, sizeof(tail));
  return static_cast<size_t>(hash);
}

FragmentTracker::FragmentTracker(size_t max_entries) : max_entries_(max_entries) {}

void FragmentTracker::Remember(const IpAddress& src, const IpAddress& dst, uint8_t protocol,
                               uint32_t id, uint16_t src_port, uint16_t dst_port) {
  if (max_entries_ == 0) return;
  const Key key{src, dst, id, protocol};
  if (auto it = index_.find(key); it != index_.end()) {
    // A repeated first fragment (retransmission or ID reuse): newest ports win, and the
    // entry counts as fresh again.
    it->second->src_port = src_port;
    it->second->dst_port = dst_port;
    entries_.splice(entries_.begin(), entries_, it->second);
    return;
  }
  if (entries_.size() >= max_entries_) {
    index_.erase(entries_.back().key);
    entries_.pop_back();
  }
  entries_.push_front(Entry{key, src_port, dst_port});
  index_.emplace(key, entries_.begin());
}

bool FragmentTracker::Lookup(const IpAddress& src, const IpAddress& dst, uint8_t protocol,
                             uint32_t id, uint16_t* src_port, uint16_t* dst_port) const {
  const auto it = index_.find(Key{src, dst, id, protocol});
  if (it == index_.end()) return false;
  *src_port = it->second->src_port;
  *dst_port = it->second->dst_port;
  return true;
}

size_t FragmentTracker::size() const { return entries_.size(); }

DecodeError DecodePacket(int linktype, const uint8_t* frame, size_t caplen,
                         FragmentTracker* tracker, DecodedPacket* out) {
  *out = DecodedPacket{};
  if (frame == nullptr) return DecodeError::kTruncated;
  switch (linktype) {
    case kDltEn10mb:
      return DecodeEthernet(frame, caplen, tracker, out);
    case kDltLinuxSll:
      return DecodeLinuxSll(frame, caplen, tracker, out);
    case kDltLinuxSll2:
      return DecodeLinuxSll2(frame, caplen, tracker, out);
    case kDltNull:
      return DecodeLoopback(/*network_order=*/false, frame, caplen, tracker, out);
    case kDltLoop:
      return DecodeLoopback(/*network_order=*/true, frame, caplen, tracker, out);
    case kDltRaw:
    case kDltRawOpenBsd:
    case kLinktypeRaw:
      return DecodeIp(frame, caplen, 0, tracker, out);
    case kDltIpv4:
      return DecodeIp(frame, caplen, 4, tracker, out);
    case kDltIpv6:
      return DecodeIp(frame, caplen, 6, tracker, out);
    default:
      return DecodeError::kUnsupportedLink;
  }
}

}  // namespace flowgate::capture
