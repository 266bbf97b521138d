#include "core/flow_table.h"

#include "flowgate/common/identity.h"

#include <netinet/in.h>
#include <openssl/evp.h>

#include <cstdio>
#include <cstring>

namespace flowgate::agent {
namespace {

constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpAck = 0x10;
constexpr int kLower = 0, kUpper = 1;

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

}  // namespace

struct FlowTable::Flow {
  FlowKey key;
  std::string digest;
  int local_side = kLower;
  int origin_side = kLower;
  v1::OtherType other_type = v1::OTHER_TYPE_UNKNOWN;
  uint8_t mac[2][6] = {};
  uint64_t first_seen_ms = 0, last_seen_ms = 0;
  uint64_t bytes[2] = {}, packets[2] = {};
  uint64_t reported_bytes[2] = {}, reported_packets[2] = {};
  bool closing = false;  // TCP FIN or RST seen
  bool active_since_stats = false;
  classify::FlowClassifier classifier;
  FlowList::iterator position;

  explicit Flow(uint8_t ip_protocol) : classifier(ip_protocol) {}
};

size_t FlowKeyHash::operator()(const FlowKey& key) const {
  // FNV-1a over the ordered key: both directions of a flow hash alike because the key is
  // ordered before hashing.
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&h](const uint8_t* data, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ data[i]) * 1099511628211ULL;
  };
  const uint8_t head[4] = {key.ip_version, key.ip_protocol, static_cast<uint8_t>(key.vlan_id),
                           static_cast<uint8_t>(key.vlan_id >> 8)};
  mix(head, sizeof head);
  const size_t address_bytes = key.ip_version == 6 ? 16 : 4;
  mix(key.lower.bytes, address_bytes);
  mix(key.upper.bytes, address_bytes);
  const uint8_t ports[4] = {
      static_cast<uint8_t>(key.lower_port), static_cast<uint8_t>(key.lower_port >> 8),
      static_cast<uint8_t>(key.upper_port), static_cast<uint8_t>(key.upper_port >> 8)};
  mix(ports, sizeof ports);
  return static_cast<size_t>(h);
}

FlowTable::FlowTable(FlowTableOptions options, const LocalNetworks& local_networks,
                     classify::NdpiModule& ndpi, EventSink& sink)
    : options_(std::move(options)), local_networks_(local_networks), ndpi_(ndpi), sink_(sink) {}

FlowTable::~FlowTable() = default;

std::string FlowTable::Digest(const FlowKey& key) const {
  std::string input = options_.agent_id;
  input += '\0';
  input += options_.interface_name;
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
  EVP_Digest(input.data(), input.size(), sha1, &length, EVP_sha1(), nullptr);
  return HexLower(sha1, length);
}

FlowTable::FlowList& FlowTable::ListFor(const Flow& flow) {
  const bool long_lived = flow.key.ip_protocol == IPPROTO_TCP && !flow.closing;
  return long_lived ? long_idle_ : short_idle_;
}

FlowTable::Flow* FlowTable::FindOrCreate(const capture::DecodedPacket& packet, bool sender_is_lower,
                                         uint64_t time_ms) {
  FlowKey key;
  key.ip_version = packet.ip_version;
  key.ip_protocol = packet.ip_protocol;
  key.vlan_id = packet.vlan_id;
  key.lower = sender_is_lower ? packet.src : packet.dst;
  key.upper = sender_is_lower ? packet.dst : packet.src;
  key.lower_port = sender_is_lower ? packet.src_port : packet.dst_port;
  key.upper_port = sender_is_lower ? packet.dst_port : packet.src_port;
  if (auto it = flows_.find(key); it != flows_.end()) return it->second.get();

  if (flows_.size() >= options_.max_flows) {
    FlowList& victims = !short_idle_.empty() ? short_idle_ : long_idle_;
    Flow* oldest = victims.front();
    stats_.set_evicted(stats_.evicted() + 1);
    Purge(oldest, v1::PURGE_REASON_EVICTED);
  }
  auto flow = std::make_unique<Flow>(packet.ip_protocol);
  flow->key = key;
  flow->digest = Digest(key);
  flow->first_seen_ms = time_ms;
  // The first packet's sender opened the flow, unless it is a SYN+ACK: then the receiver did.
  const int sender = sender_is_lower ? kLower : kUpper;
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

  Flow* raw = flow.get();
  FlowList& list = ListFor(*raw);
  raw->position = list.insert(list.end(), raw);
  flows_.emplace(key, std::move(flow));
  stats_.set_created(stats_.created() + 1);
  stats_.set_active(flows_.size());
  return raw;
}

void FlowTable::OnPacket(const capture::DecodedPacket& packet, uint64_t time_us,
                         uint32_t wire_length) {
  const bool sender_is_lower =
      packet.src != packet.dst ? packet.src < packet.dst : packet.src_port <= packet.dst_port;
  const uint64_t time_ms = time_us / 1000;
  Flow* flow = FindOrCreate(packet, sender_is_lower, time_ms);
  const int sender = sender_is_lower ? kLower : kUpper;

  // Re-file the flow at the back of its idle list (it may move lists after a FIN).
  ListFor(*flow).erase(flow->position);
  if ((packet.tcp_flags & (kTcpFin | kTcpRst)) != 0) flow->closing = true;
  if ((packet.tcp_flags & (kTcpSyn | kTcpAck)) == kTcpSyn) flow->origin_side = sender;
  FlowList& list = ListFor(*flow);
  flow->position = list.insert(list.end(), flow);

  flow->last_seen_ms = std::max(flow->last_seen_ms, time_ms);
  flow->bytes[sender] += wire_length;
  flow->packets[sender] += 1;
  flow->active_since_stats = true;
  if (packet.has_mac) std::memcpy(flow->mac[sender], packet.src_mac, 6);

  if (flow->classifier.final() || packet.l3 == nullptr) return;
  const classify::ClassifyStep step =
      flow->classifier.Process(ndpi_, packet.l3, packet.l3_length, time_ms);
  if (step == classify::ClassifyStep::kDetected) {
    stats_.set_detected(stats_.detected() + 1);
    EmitFlow(*flow, false);
  } else if (step == classify::ClassifyStep::kRefined) {
    EmitFlow(*flow, true);
  }
}

v1::FlowContext FlowTable::Context() const {
  v1::FlowContext context;
  context.set_interface(options_.interface_name);
  context.set_internal(options_.internal);
  return context;
}

void FlowTable::EmitFlow(Flow& flow, bool updated) {
  v1::Event event;
  v1::FlowEvent* body = event.mutable_flow();
  *body->mutable_context() = Context();
  v1::FlowMetadata* m = body->mutable_flow();
  *m = flow.classifier.detection();
  if (m->detection_guessed()) stats_.set_guessed(stats_.guessed() + 1);
  const int local = flow.local_side, other = 1 - flow.local_side;
  const capture::IpAddress& local_ip = local == kLower ? flow.key.lower : flow.key.upper;
  const capture::IpAddress& other_ip = local == kLower ? flow.key.upper : flow.key.lower;
  m->set_digest(flow.digest);
  m->set_ip_version(flow.key.ip_version);
  m->set_ip_protocol(flow.key.ip_protocol);
  m->set_vlan_id(flow.key.vlan_id);
  m->set_local_ip(local_ip.ToString());
  m->set_other_ip(other_ip.ToString());
  m->set_local_port(local == kLower ? flow.key.lower_port : flow.key.upper_port);
  m->set_other_port(local == kLower ? flow.key.upper_port : flow.key.lower_port);
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
  c->set_digest(flow.digest);
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
    if (!flow->active_since_stats) continue;
    flow->active_since_stats = false;
    v1::Event event;
    *event.mutable_flow_stats()->mutable_context() = Context();
    FillCounters(*flow, event.mutable_flow_stats()->mutable_flow(), true);
    sink_.Emit(event);
  }
}

void FlowTable::Purge(Flow* flow, v1::PurgeReason reason) {
  // Every flow gets its `flow` message before its purge, guessed if nDPI had no answer.
  const classify::ClassifyStep step = flow->classifier.Finish(ndpi_);
  if (step == classify::ClassifyStep::kDetected) {
    stats_.set_detected(stats_.detected() + 1);
    EmitFlow(*flow, false);
  } else if (step == classify::ClassifyStep::kRefined) {
    EmitFlow(*flow, true);
  }
  v1::Event event;
  v1::FlowPurgeEvent* purge = event.mutable_flow_purge();
  *purge->mutable_context() = Context();
  purge->set_reason(reason);
  FillCounters(*flow, purge->mutable_flow(), true);
  sink_.Emit(event);

  ListFor(*flow).erase(flow->position);
  flows_.erase(flow->key);  // destroys *flow
  stats_.set_purged(stats_.purged() + 1);
  stats_.set_active(flows_.size());
}

void FlowTable::ExpireIdle(uint64_t now_ms) {
  auto expire = [&](FlowList& list, uint64_t timeout_ms) {
    while (!list.empty() && list.front()->last_seen_ms + timeout_ms <= now_ms) {
      Flow* flow = list.front();
      Purge(flow, flow->closing ? v1::PURGE_REASON_CLOSED : v1::PURGE_REASON_EXPIRED);
    }
  };
  expire(short_idle_, options_.idle_timeout_ms);
  expire(long_idle_, options_.tcp_idle_timeout_ms);
}

void FlowTable::PurgeAll(v1::PurgeReason reason) {
  while (!flows_.empty()) Purge(flows_.begin()->second.get(), reason);
}

}  // namespace flowgate::agent
