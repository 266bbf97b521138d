// How a packet finds its flow: the bidirectional key netifyd keys flows by, its hash, and
// which end of the flow sent the packet. Shared by the capture threads (which pick a
// packet's worker by the hash) and the workers' flow tables (which index flows by it).
#pragma once

#include <cstddef>
#include <cstdint>

#include "capture/packet_decoder.h"

namespace flowgate::agent {

struct FlowKey {
  uint8_t ip_version = 0;
  uint8_t ip_protocol = 0;
  uint8_t interface_index = 0;
  uint16_t vlan_id = 0;
  capture::IpAddress lower, upper;  // ordered: lower address first; equal: lower port first
  uint16_t lower_port = 0, upper_port = 0;
  bool operator==(const FlowKey&) const = default;

  // The key of `packet`'s flow; *sender_is_lower says which end sent it.
  static FlowKey Of(const capture::DecodedPacket& packet, uint8_t interface_index,
                    bool* sender_is_lower);
};

struct FlowKeyHash {
  // Symmetric by construction (the key is ordered), so it also picks a flow's worker.
  size_t operator()(const FlowKey& key) const;
};

// A packet's flow as the capture thread works it out to pick the packet's worker. It
// travels with the packet, so the worker's flow table does not work it out again.
struct PacketFlow {
  FlowKey key;
  size_t hash = 0;  // FlowKeyHash of key
  bool sender_is_lower = true;

  static PacketFlow Of(const capture::DecodedPacket& packet, uint8_t interface_index) {
    PacketFlow flow;
    flow.key = FlowKey::Of(packet, interface_index, &flow.sender_is_lower);
    flow.hash = FlowKeyHash()(flow.key);
    return flow;
  }
};

}  // namespace flowgate::agent
