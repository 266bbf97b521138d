// The agent's flow table: bidirectional flows keyed as netifyd keys them, classified by
// nDPI, and turned into `flow`, `flow_stats` and `flow_purge` events.
//
// Owned and used by one thread (a capture worker), together with its NdpiModule. Every
// flow lands on exactly one worker (packets are hashed symmetrically by FlowKey), so the
// tables of different workers never share a flow.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "capture/packet_decoder.h"
#include "classify/ndpi_classifier.h"
#include "core/flow_key.h"
#include "core/local_networks.h"
#include "export/event_sink.h"

struct SHAstate_st;  // OpenSSL's SHA_CTX

namespace flowgate::agent {

// A capture interface (or file) as flows report it.
struct FlowInterface {
  std::string name;      // the `interface` of flow messages
  bool internal = true;  // faces the LAN (netifyd's `internal`, -I); false for -E
};

struct FlowTableOptions {
  // Salts every flow digest, so that equal flows seen by two agents stay distinct. REQUIRED.
  std::string agent_id;
  // The captures this table's packets come from, indexed by OnPacket's `interface_index`.
  // REQUIRED: at least one, at most 256.
  std::vector<FlowInterface> interfaces;
  // Idle time after which a non-TCP flow, or a TCP flow after FIN/RST, is purged.
  // Default: 30 s.
  uint64_t idle_timeout_ms = 30'000;
  // Idle time after which an open TCP flow is purged. Default: 300 s.
  uint64_t tcp_idle_timeout_ms = 300'000;
  // Flows tracked at most; a new flow beyond it evicts the least recently seen one.
  // Default: 262144.
  size_t max_flows = 262'144;
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
  void OnPacket(const capture::DecodedPacket& packet, uint64_t time_us, uint32_t wire_length,
                uint8_t interface_index = 0);
  // The same for a packet whose flow the caller already worked out:
  // `flow` == PacketFlow::Of(packet, interface_index).
  void OnPacket(const capture::DecodedPacket& packet, const PacketFlow& flow, uint64_t time_us,
                uint32_t wire_length);
  // Starts fetching the index slot OnPacket(…, flow, …) reads first, for a caller that
  // knows its next packet while handling this one. Changes nothing.
  void Prefetch(const PacketFlow& flow) const;
  // Purges flows idle past their timeout at time `now_ms` (packet time for files).
  void ExpireIdle(uint64_t now_ms);
  // Emits `flow_stats` for every flow that saw packets since the previous call.
  void EmitStats();
  // Purges every flow with `reason` (end of capture, shutdown).
  void PurgeAll(v1::PurgeReason reason);

  const v1::FlowTableStats& stats() const { return stats_; }
  size_t size() const { return size_; }

 private:
  struct Flow;
  // One slot of the open-addressing index: a flow's id + 1 (0: empty) and its key's hash,
  // so that probing compares keys only for likely matches.
  struct Slot {
    uint32_t flow = 0;
    uint32_t hash = 0;
  };
  // Flows in least-recently-seen order, linked through the flows themselves: a separate
  // list node per flow would cost more than half of what the flow itself keeps.
  struct IdleList {
    Flow* head = nullptr;
    Flow* tail = nullptr;
    void PushBack(Flow* flow);
    void Remove(Flow* flow);
  };

  Flow* FindOrCreate(const FlowKey& key, uint32_t hash, const capture::DecodedPacket& packet,
                     bool sender_is_lower, uint64_t time_ms);
  Flow& FlowAt(uint32_t id);
  // A cleared flow (reusing a purged one's place), its classifier ready for nDPI.
  Flow* NewFlow(uint8_t ip_protocol);
  void IndexInsert(uint32_t id, uint32_t hash);
  void IndexErase(uint32_t id, uint32_t hash);
  void GrowIndex();
  void Purge(Flow* flow, v1::PurgeReason reason);
  // The `flow` event's detection fields are already in flow_event_ (filled by the classifier).
  void EmitFlow(Flow& flow, bool updated);
  void EmitDetection(Flow& flow, classify::ClassifyStep step);
  void FillCounters(Flow& flow, v1::FlowCounters* counters, bool consume_deltas);
  void SetContext(const Flow& flow, v1::FlowContext* context) const;
  void SetDigest(Flow& flow, std::string* digest_hex);
  IdleList& ListFor(const Flow& flow);

  FlowTableOptions options_;
  const LocalNetworks& local_networks_;
  classify::NdpiModule& ndpi_;
  EventSink& sink_;
  // Flows live in chunks that never move, so a flow's address is stable while it lives
  // (the idle lists point at it) and a new flow reuses a purged one's place without
  // allocating. Flow id = chunk * chunk size + position.
  std::vector<std::unique_ptr<Flow[]>> chunks_;
  uint32_t chunk_shift_ = 0;        // log2 of the chunk size
  std::vector<uint32_t> free_ids_;  // purged flows' places, reused first
  uint32_t next_id_ = 0;            // places below it have been handed out
  std::vector<Slot> index_;         // linear probing; size a power of two, at most half full
  size_t size_ = 0;
  // One list per idle timeout, so expiry looks only at the fronts.
  IdleList short_idle_;
  IdleList long_idle_;
  v1::FlowTableStats stats_;
  // Reused for every event of their kind: clearing keeps their strings' buffers, so that
  // building an event does not allocate each of its fields again.
  v1::Event flow_event_;
  v1::Event stats_event_;
  v1::Event purge_event_;
  // Per interface, SHA-1 already fed with the digest's salt (agent id and interface name):
  // a flow's digest starts from a copy and hashes only its key.
  std::vector<SHAstate_st> digest_prefixes_;
};

}  // namespace flowgate::agent
