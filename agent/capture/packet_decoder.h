// Link-layer to transport-layer decoding of captured frames.
//
// Decodes what nDPI's own reader decodes: Ethernet (with 802.1Q and QinQ tags), Linux
// SLL and SLL2, BSD loopback (DLT_NULL / DLT_LOOP), raw IPv4/IPv6; IPv4 with fragments,
// IPv6 with extension headers; IP-in-IP (4in4, 6in4, 4in6, 6in6) and GTP-U (UDP 2152)
// tunnels, whose inner packet is the one reported. Nothing here allocates per packet
// except the fragment tracker's bounded table. Malformed input never reads out of bounds:
// it yields a DecodeError that callers count.
#pragma once

#include <bit>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>

namespace flowgate::capture {

// An IPv4 or IPv6 address in network byte order; IPv4 uses the first 4 bytes.
struct IpAddress {
  uint8_t bytes[16] = {};
  uint8_t version = 0;  // 4 or 6; 0 = unset

  // Inline, a word at a time: the flow table orders and compares keys on every packet, and
  // a call to memcmp for 4 or 16 bytes cost more than the rest of the key.
  bool operator==(const IpAddress& o) const {
    if (version != o.version) return false;
    if (version == 4) return Word32() == o.Word32();
    return Word64(0) == o.Word64(0) && Word64(8) == o.Word64(8);
  }
  // Defined here rather than in the .cc file: a deduced (auto) return type must be visible
  // wherever the operator is used. Total order: version, then the bytes of `version` (4
  // for IPv4) as unsigned big-endian numbers, which is their order as bytes.
  auto operator<=>(const IpAddress& o) const {
    if (version != o.version) return version <=> o.version;
    if (version == 4) return Number32() <=> o.Number32();
    if (Word64(0) != o.Word64(0)) return Number64(0) <=> o.Number64(0);
    return Number64(8) <=> o.Number64(8);
  }
  // "192.0.2.1" or RFC 5952 text for IPv6 ("2001:db8::1").
  std::string ToString() const;
  // The same into *out, replacing its text but keeping its buffer (for per-event paths).
  void AssignText(std::string* out) const;

  // The address's bytes as native words, for hashing and comparing (IPv4: Word32 only).
  uint32_t Word32() const {
    uint32_t word;
    std::memcpy(&word, bytes, sizeof word);
    return word;
  }
  uint64_t Word64(size_t at) const {
    uint64_t word;
    std::memcpy(&word, bytes + at, sizeof word);
    return word;
  }

 private:
  // The same bytes read as big-endian numbers, whose order is the bytes' order.
  uint32_t Number32() const {
    const uint32_t word = Word32();
    return std::endian::native == std::endian::little ? __builtin_bswap32(word) : word;
  }
  uint64_t Number64(size_t at) const {
    const uint64_t word = Word64(at);
    return std::endian::native == std::endian::little ? __builtin_bswap64(word) : word;
  }
};

enum class DecodeError {
  kNone = 0,
  kTruncated,        // the frame ends inside a header
  kUnsupportedLink,  // a link type this decoder does not handle
  kNotIp,            // a valid frame that carries no IP (ARP, LLDP, ...)
  kBadIpHeader,      // version, header length or total length inconsistent
  kFragmentUnknown,  // a non-first IPv4/IPv6 fragment whose first fragment was not seen
  kTooManyTunnels,   // nesting deeper than kMaxTunnelDepth
};
std::string_view DecodeErrorName(DecodeError error);

struct DecodedPacket {
  // The innermost IP packet, as nDPI wants it (pointer into the caller's frame buffer).
  const uint8_t* l3 = nullptr;
  size_t l3_length = 0;  // bytes available from l3 (min of captured and IP total length)

  uint8_t ip_version = 0;
  uint8_t ip_protocol = 0;  // of the innermost packet, after extension headers
  IpAddress src, dst;
  uint16_t src_port = 0, dst_port = 0;  // 0 for protocols without ports
  uint16_t vlan_id = 0;                 // outermost 802.1Q tag; 0 = untagged
  uint8_t src_mac[6] = {}, dst_mac[6] = {};
  bool has_mac = false;

  // Transport details the flow table needs.
  uint8_t tcp_flags = 0;  // TH_FIN=0x01, SYN=0x02, RST=0x04, PSH=0x08, ACK=0x10
  const uint8_t* l4_payload = nullptr;
  size_t l4_payload_length = 0;

  bool is_fragment = false;        // part of a fragmented IPv4/IPv6 datagram
  bool is_first_fragment = false;  // carries the L4 header
  uint8_t tunnel_depth = 0;        // how many tunnel headers were removed
};

// Remembers the ports of IPv4 and IPv6 datagrams whose first fragment was seen, so that later
// fragments are attributed to the same flow. Bounded: the oldest entry goes first.
class FragmentTracker {
 public:
  explicit FragmentTracker(size_t max_entries = 4096);
  // Called with the first fragment's identity and ports.
  void Remember(const IpAddress& src, const IpAddress& dst, uint8_t protocol, uint32_t id,
                uint16_t src_port, uint16_t dst_port);
  // Returns true and fills ports when the datagram is known.
  bool Lookup(const IpAddress& src, const IpAddress& dst, uint8_t protocol, uint32_t id,
              uint16_t* src_port, uint16_t* dst_port) const;
  size_t size() const;

 private:
  struct Key {
    IpAddress src, dst;
    uint32_t id = 0;
    uint8_t protocol = 0;
    bool operator==(const Key& o) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& key) const;
  };
  struct Entry {
    Key key;
    uint16_t src_port = 0, dst_port = 0;
  };

  size_t max_entries_;
  // Newest first; the map points into the list so that eviction of the oldest is O(1).
  std::list<Entry> entries_;
  std::unordered_map<Key, std::list<Entry>::iterator, KeyHash> index_;
};

inline constexpr int kMaxTunnelDepth = 4;

// Decodes one frame of pcap link type `linktype` (DLT_* value from pcap_datalink()).
// `tracker` may be null, in which case non-first fragments yield kFragmentUnknown.
// On success returns kNone and fills *out; on error *out is unspecified.
DecodeError DecodePacket(int linktype, const uint8_t* frame, size_t caplen,
                         FragmentTracker* tracker, DecodedPacket* out);

}  // namespace flowgate::capture
