#include "core/flow_key.h"

#include "flowgate/common/hash_mix.h"

namespace flowgate::agent {

FlowKey FlowKey::Of(const capture::DecodedPacket& packet, uint8_t interface_index,
                    bool* sender_is_lower) {
  const bool lower =
      packet.src != packet.dst ? packet.src < packet.dst : packet.src_port <= packet.dst_port;
  FlowKey key;
  key.ip_version = packet.ip_version;
  key.ip_protocol = packet.ip_protocol;
  key.interface_index = interface_index;
  key.vlan_id = packet.vlan_id;
  key.lower = lower ? packet.src : packet.dst;
  key.upper = lower ? packet.dst : packet.src;
  key.lower_port = lower ? packet.src_port : packet.dst_port;
  key.upper_port = lower ? packet.dst_port : packet.src_port;
  *sender_is_lower = lower;
  return key;
}

size_t FlowKeyHash::operator()(const FlowKey& key) const {
  // Mixed a 64-bit word at a time over the ordered key (both directions of a flow hash
  // alike because the key is ordered first): a byte at a time cost more per packet than
  // the rest of the flow lookup.
  const uint64_t ports_and_kind = uint64_t{key.lower_port} | uint64_t{key.upper_port} << 16 |
                                  uint64_t{key.vlan_id} << 32 | uint64_t{key.ip_protocol} << 48 |
                                  uint64_t{key.interface_index} << 56;
  uint64_t h = MixHash(key.ip_version, ports_and_kind);
  if (key.ip_version == 6) {
    h = MixHash(MixHash(h, key.lower.Word64(0)), key.lower.Word64(8));
    h = MixHash(MixHash(h, key.upper.Word64(0)), key.upper.Word64(8));
  } else {  // only an IPv4 address's own 4 bytes are defined
    h = MixHash(h, uint64_t{key.lower.Word32()} << 32 | key.upper.Word32());
  }
  // The index and the worker choice both use the low bits: fold the high ones in.
  h *= kHashMultiplier;
  return static_cast<size_t>(h ^ (h >> 29));
}

}  // namespace flowgate::agent
