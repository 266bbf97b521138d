#include "core/flow_table.h"

#include "flowgate/common/identity.h"

#include <netinet/in.h>
#include <openssl/evp.h>

#include <cstdio>
#include <cstring>

namespace flowgate::agent {
namespace {

constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpAck = 0x10;
constexpr uint8_t kLower = 0, kUpper = 1;

int Rank(AddressClass c) {
  switch (c) {
    case AddressClass::kLocal:
      return 3;
    case AddressClass::kPrivate:
      return 2;
    case AddressClass::kPublic:
      return 1;
    default:
      return 0;  // multicast and broadcast are never "our" side
  }
}

std::string MacText(const uint8_t* mac) {
  char text[18];
  std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
                mac[4], mac[5]);
  return text;
}

// OpenSSL 3 looks EVP_sha1() up again on every use, which costs more than the hash itself:
// fetched once, kept for the process's life.
const EVP_MD* Sha1() {
  static EVP_MD* const kSha1 = EVP_MD_fetch(nullptr, "SHA1", nullptr);
  return kSha1;
}

}  // namespace

// What the table keeps per flow between packets: kept small (about 150 bytes with its
// map node), since a probe may track a million flows. Everything a `flow` event says beyond
// this is built from nDPI's state when the event is due.
struct FlowTable::Flow {
  const FlowKey* key = nullptr;  // the map's copy
  Flow* prev = nullptr;          // idle list links
  Flow* next = nullptr;
  uint64_t first_seen_ms = 0, last_seen_ms = 0;
  uint64_t bytes[2] = {}, packets[2] = {};
  uint64_t reported_bytes[2] = {}, reported_packets[2] = {};
  classify::FlowClassifier classifier;
  uint8_t mac[2][6] = {};
  uint8_t local_side = kLower;
  uint8_t origin_side = kLower;
  v1::OtherType other_type = v1::OTHER_TYPE_UNKNOWN;
  bool closing = false;  // TCP FIN or RST seen
  bool active_since_stats = false;
  bool in_long_list = false;

  explicit Flow(uint8_t ip_protocol) : classifier(ip_protocol) {}
};

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
  // FNV-1a over the ordered key: both directions of a flow hash alike because the key is
  // ordered before hashing.
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&h](const uint8_t* data, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ data[i]) * 1099511628211ULL;
  };
  const uint8_t head[5] = {key.ip_version, key.ip_protocol, key.interface_index,
                           static_cast<uint8_t>(key.vlan_id),
                           static_cast<uint8_t>(key.vlan_id >> 8)};
  mix(head, sizeof head);
  const size_t address_bytes = key.ip_version == 6 ? 16 : 4;
  mix(key.lower.bytes, address_bytes);
  mix(key.upper.bytes, address_bytes);
  const uint8_t ports[4] = {
      static_cast<uint8_t>(key.lower_port), static_cast<uint8_t>(key.lower_port >> 8),
      static_cast<uint8_t>(key.upper_port), static_cast<uint8_t>(key.upper_port >> 8)};
  mix(ports, sizeof ports);
  // FNV's low bits mix poorly; fold the high half in, since the map and the worker choice
  // both use the low bits.
  return static_cast<size_t>(h ^ (h >> 29));
}

void FlowTable::IdleList::PushBack(Flow* flow) {
  flow->prev = tail;
  flow->next = nullptr;
  (tail != nullptr ? tail->next : head) = flow;
  tail = flow;
}

void FlowTable::IdleList::Remove(Flow* flow) {
  (flow->prev != nullptr ? flow->prev->next : head) = flow->next;
  (flow->next != nullptr ? flow->next->prev : tail) = flow->prev;
  flow->prev = flow->next = nullptr;
}

FlowTable::FlowTable(FlowTableOptions options, const LocalNetworks& local_networks,
                     classify::NdpiModule& ndpi, EventSink& sink)
    : options_(std::move(options)), local_networks_(local_networks), ndpi_(ndpi), sink_(sink) {
  if (options_.interfaces.empty()) options_.interfaces.push_back(FlowInterface{});
}

FlowTable::~FlowTable() = default;

std::string FlowTable::Digest(const FlowKey& key) const {
  // Computed when an event needs it rather than kept: 40 bytes per flow saved for a hash
  // that costs about a microsecond.
  std::string input = options_.agent_id;
  input += '\0';
  input += options_.interfaces[key.interface_index].name;
  input += '\0';
  const size_t address_bytes = key.ip_version == 6 ? 16 : 4;
  const uint8_t head[8] = {key.ip_version,
                           key.ip_protocol,
                           static_cast<uint8_t>(key.vlan_id >> 8),
                           static_cast<uint8_t>(key.vlan_id),
                           static_cast<uint8_t>(key.lower_port >> 8),
                           static_cast<uint8_t>(key.lower_port),
                           static_cast<uint8_t>(key.upper_port >> 8),
                           static_cast<uint8_t>(key.upper_port)};
  input.append(reinterpret_cast<const char*>(head), sizeof head);
  input.append(reinterpret_cast<const char*>(key.lower.bytes), address_bytes);
  input.append(reinterpret_cast<const char*>(key.upper.bytes), address_bytes);
  unsigned char sha1[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(input.data(), input.size(), sha1, &length, Sha1(), nullptr);
  return HexLower(sha1, length);
}

FlowTable::IdleList& FlowTable::ListFor(const Flow& flow) {
  return flow.in_long_list ? long_idle_ : short_idle_;
}

FlowTable::Flow* FlowTable::FindOrCreate(const FlowKey& key, const capture::DecodedPacket& packet,
                                         bool sender_is_lower, uint64_t time_ms) {
  if (auto it = flows_.find(key); it != flows_.end()) return &it->second;

  if (flows_.size() >= options_.max_flows && !flows_.empty()) {
    Flow* oldest = short_idle_.head != nullptr ? short_idle_.head : long_idle_.head;
    stats_.set_evicted(stats_.evicted() + 1);
    Purge(oldest, v1::PURGE_REASON_EVICTED);
  }
  auto [it, inserted] = flows_.try_emplace(key, packet.ip_protocol);
  Flow* flow = &it->second;
  flow->key = &it->first;
  flow->first_seen_ms = time_ms;
  // The first packet's sender opened the flow, unless it is a SYN+ACK: then the receiver did.
  const uint8_t sender = sender_is_lower ? kLower : kUpper;
  const bool syn_ack = (packet.tcp_flags & (kTcpSyn | kTcpAck)) == (kTcpSyn | kTcpAck);
  flow->origin_side = syn_ack ? 1 - sender : sender;

  const AddressClass lower_class = local_networks_.Classify(key.lower);
  const AddressClass upper_class = local_networks_.Classify(key.upper);
  if (Rank(lower_class) != Rank(upper_class)) {
    flow->local_side = Rank(lower_class) > Rank(upper_class) ? kLower : kUpper;
  } else {
    flow->local_side = flow->origin_side;
  }
  const AddressClass local_class = flow->local_side == kLower ? lower_class : upper_class;
  const AddressClass other_class = flow->local_side == kLower ? upper_class : lower_class;
  if (other_class == AddressClass::kMulticast) {
    flow->other_type = v1::OTHER_TYPE_MULTICAST;
  } else if (other_class == AddressClass::kBroadcast) {
    flow->other_type = v1::OTHER_TYPE_BROADCAST;
  } else if (Rank(local_class) >= 2 && Rank(other_class) >= 2) {
    flow->other_type = v1::OTHER_TYPE_LOCAL;
  } else if (Rank(local_class) >= 2) {
    flow->other_type = v1::OTHER_TYPE_REMOTE;
  }

  flow->in_long_list = key.ip_protocol == IPPROTO_TCP;
  ListFor(*flow).PushBack(flow);
  stats_.set_created(stats_.created() + 1);
  stats_.set_active(flows_.size());
  return flow;
}

void FlowTable::OnPacket(const capture::DecodedPacket& packet, uint64_t time_us,
                         uint32_t wire_length, uint8_t interface_index) {
  if (interface_index >= options_.interfaces.size()) interface_index = 0;
  bool sender_is_lower = true;
  const FlowKey key = FlowKey::Of(packet, interface_index, &sender_is_lower);
  const uint64_t time_ms = time_us / 1000;
  Flow* flow = FindOrCreate(key, packet, sender_is_lower, time_ms);
  const uint8_t sender = sender_is_lower ? kLower : kUpper;

  // Re-file the flow at the back of its idle list (it moves to the short list after a FIN).
  ListFor(*flow).Remove(flow);
  if ((packet.tcp_flags & (kTcpFin | kTcpRst)) != 0) {
    flow->closing = true;
    flow->in_long_list = false;
  }
  if ((packet.tcp_flags & (kTcpSyn | kTcpAck)) == kTcpSyn) flow->origin_side = sender;
  ListFor(*flow).PushBack(flow);

  flow->last_seen_ms = std::max(flow->last_seen_ms, time_ms);
  flow->bytes[sender] += wire_length;
  flow->packets[sender] += 1;
  flow->active_since_stats = true;
  if (packet.has_mac) std::memcpy(flow->mac[sender], packet.src_mac, 6);

  if (flow->classifier.final() || packet.l3 == nullptr) return;
  v1::FlowMetadata detection;
  const classify::ClassifyStep step =
      flow->classifier.Process(ndpi_, packet.l3, packet.l3_length, time_ms, &detection);
  EmitDetection(*flow, step, std::move(detection));
}

void FlowTable::EmitDetection(const Flow& flow, classify::ClassifyStep step,
                              v1::FlowMetadata&& detection) {
  if (step == classify::ClassifyStep::kDetected) {
    stats_.set_detected(stats_.detected() + 1);
    if (detection.detection_guessed()) stats_.set_guessed(stats_.guessed() + 1);
    EmitFlow(flow, std::move(detection), false);
  } else if (step == classify::ClassifyStep::kRefined) {
    EmitFlow(flow, std::move(detection), true);
  }
}

v1::FlowContext FlowTable::Context(const Flow& flow) const {
  v1::FlowContext context;
  const FlowInterface& interface = options_.interfaces[flow.key->interface_index];
  context.set_interface(interface.name);
  context.set_internal(interface.internal);
  return context;
}

void FlowTable::EmitFlow(const Flow& flow, v1::FlowMetadata&& detection, bool updated) {
  v1::Event event;
  v1::FlowEvent* body = event.mutable_flow();
  *body->mutable_context() = Context(flow);
  v1::FlowMetadata* m = body->mutable_flow();
  *m = std::move(detection);
  const FlowKey& key = *flow.key;
  const int local = flow.local_side, other = 1 - flow.local_side;
  const capture::IpAddress& local_ip = local == kLower ? key.lower : key.upper;
  const capture::IpAddress& other_ip = local == kLower ? key.upper : key.lower;
  m->set_digest(Digest(key));
  m->set_ip_version(key.ip_version);
  m->set_ip_protocol(key.ip_protocol);
  m->set_vlan_id(key.vlan_id);
  m->set_local_ip(local_ip.ToString());
  m->set_other_ip(other_ip.ToString());
  m->set_local_port(local == kLower ? key.lower_port : key.upper_port);
  m->set_other_port(local == kLower ? key.upper_port : key.lower_port);
  m->set_local_mac(MacText(flow.mac[local]));
  m->set_other_mac(MacText(flow.mac[other]));
  m->set_other_type(flow.other_type);
  m->set_local_origin(flow.origin_side == local);
  m->set_detection_updated(updated);
  m->set_first_seen_at(flow.first_seen_ms);
  m->set_last_seen_at(flow.last_seen_ms);
  sink_.Emit(event);
}

void FlowTable::FillCounters(Flow& flow, v1::FlowCounters* c, bool consume_deltas) {
  const int local = flow.local_side, other = 1 - flow.local_side;
  c->set_digest(Digest(*flow.key));
  c->set_last_seen_at(flow.last_seen_ms);
  c->set_local_bytes(flow.bytes[local] - flow.reported_bytes[local]);
  c->set_other_bytes(flow.bytes[other] - flow.reported_bytes[other]);
  c->set_local_packets(flow.packets[local] - flow.reported_packets[local]);
  c->set_other_packets(flow.packets[other] - flow.reported_packets[other]);
  c->set_total_bytes(flow.bytes[0] + flow.bytes[1]);
  c->set_total_packets(flow.packets[0] + flow.packets[1]);
  c->set_detection_packets(flow.classifier.packets_inspected());
  if (consume_deltas) {
    std::memcpy(flow.reported_bytes, flow.bytes, sizeof flow.bytes);
    std::memcpy(flow.reported_packets, flow.packets, sizeof flow.packets);
  }
}

void FlowTable::EmitStats() {
  for (auto& [key, flow] : flows_) {
    if (!flow.active_since_stats) continue;
    flow.active_since_stats = false;
    v1::Event event;
    *event.mutable_flow_stats()->mutable_context() = Context(flow);
    FillCounters(flow, event.mutable_flow_stats()->mutable_flow(), true);
    sink_.Emit(event);
  }
}

void FlowTable::Purge(Flow* flow, v1::PurgeReason reason) {
  // Every flow gets its `flow` message before its purge, guessed if nDPI had no answer.
  v1::FlowMetadata detection;
  const classify::ClassifyStep step = flow->classifier.Finish(ndpi_, &detection);
  EmitDetection(*flow, step, std::move(detection));
  v1::Event event;
  v1::FlowPurgeEvent* purge = event.mutable_flow_purge();
  *purge->mutable_context() = Context(*flow);
  purge->set_reason(reason);
  FillCounters(*flow, purge->mutable_flow(), true);
  sink_.Emit(event);

  ListFor(*flow).Remove(flow);
  const FlowKey key = *flow->key;  // a copy: erase must not read the node it destroys
  flows_.erase(key);
  stats_.set_purged(stats_.purged() + 1);
  stats_.set_active(flows_.size());
}

void FlowTable::ExpireIdle(uint64_t now_ms) {
  auto expire = [&](IdleList& list, uint64_t timeout_ms) {
    while (list.head != nullptr && list.head->last_seen_ms + timeout_ms <= now_ms) {
      Flow* flow = list.head;
      Purge(flow, flow->closing ? v1::PURGE_REASON_CLOSED : v1::PURGE_REASON_EXPIRED);
    }
  };
  expire(short_idle_, options_.idle_timeout_ms);
  expire(long_idle_, options_.tcp_idle_timeout_ms);
}

void FlowTable::PurgeAll(v1::PurgeReason reason) {
  while (!flows_.empty()) Purge(&flows_.begin()->second, reason);
}

}  // namespace flowgate::agent
