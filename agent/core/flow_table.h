// The agent's flow table: bidirectional flows keyed as netifyd keys them, classified by
// nDPI, and turned into `flow`, `flow_stats` and `flow_purge` events.
//
// Owned and used by one thread (a capture worker), together with its NdpiModule.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>

#include "capture/packet_decoder.h"
#include "classify/ndpi_classifier.h"
#include "core/local_networks.h"
#include "export/event_sink.h"

namespace flowgate::agent {

struct FlowTableOptions {
  // Salts every flow digest, so that equal flows seen by two agents stay distinct. REQUIRED.
  std::string agent_id;
  // The capture's name (interface or file): the `interface` of flow messages. REQUIRED.
  std::string interface_name;
  // The interface faces the LAN (netifyd's `internal`). Default: true.
  bool internal = true;
  // Idle time after which a non-TCP flow, or a TCP flow after FIN/RST, is purged.
  // Default: 30 s.
  uint64_t idle_timeout_ms = 30'000;
  // Idle time after which an open TCP flow is purged. Default: 300 s.
  uint64_t tcp_idle_timeout_ms = 300'000;
  // Flows tracked at most; a new flow beyond it evicts the least recently seen one.
  // Default: 262144.
  size_t max_flows = 262'144;
};

struct FlowKey {
  uint8_t ip_version = 0;
  uint8_t ip_protocol = 0;
  uint16_t vlan_id = 0;
  capture::IpAddress lower, upper;  // ordered: lower address first; equal: lower port first
  uint16_t lower_port = 0, upper_port = 0;
  bool operator==(const FlowKey&) const = default;
};

struct FlowKeyHash {
  size_t operator()(const FlowKey& key) const;
};

class FlowTable {
 public:
  FlowTable(FlowTableOptions options, const LocalNetworks& local_networks,
            classify::NdpiModule& ndpi, EventSink& sink);
  ~FlowTable();
  FlowTable(const FlowTable&) = delete;
  FlowTable& operator=(const FlowTable&) = delete;

  // Accounts one decoded packet to its flow (creating it), feeds nDPI, emits `flow` on
  // detection and refinement. `wire_length` is the frame's length on the wire.
  void OnPacket(const capture::DecodedPacket& packet, uint64_t time_us, uint32_t wire_length);
  // Purges flows idle past their timeout at time `now_ms` (packet time for files).
  void ExpireIdle(uint64_t now_ms);
  // Emits `flow_stats` for every flow that saw packets since the previous call.
  void EmitStats();
  // Purges every flow with `reason` (end of capture, shutdown).
  void PurgeAll(v1::PurgeReason reason);

  const v1::FlowTableStats& stats() const { return stats_; }
  size_t size() const { return flows_.size(); }

 private:
  struct Flow;
  using FlowList = std::list<Flow*>;

  Flow* FindOrCreate(const capture::DecodedPacket& packet, bool sender_is_lower, uint64_t time_ms);
  void Purge(Flow* flow, v1::PurgeReason reason);
  void EmitFlow(Flow& flow, bool updated);
  void FillCounters(Flow& flow, v1::FlowCounters* counters, bool consume_deltas);
  v1::FlowContext Context() const;
  std::string Digest(const FlowKey& key) const;
  FlowList& ListFor(const Flow& flow);

  FlowTableOptions options_;
  const LocalNetworks& local_networks_;
  classify::NdpiModule& ndpi_;
  EventSink& sink_;
  std::unordered_map<FlowKey, std::unique_ptr<Flow>, FlowKeyHash> flows_;
  // Least recently seen first, one list per idle timeout, so expiry looks only at fronts.
  FlowList short_idle_;
  FlowList long_idle_;
  v1::FlowTableStats stats_;
};

}  // namespace flowgate::agent
