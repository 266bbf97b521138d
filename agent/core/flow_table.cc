#include "core/flow_table.h"

#include "flowgate/common/hash_mix.h"
#include "flowgate/common/identity.h"

#include <netinet/in.h>
#include <openssl/sha.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <memory>

namespace flowgate::agent {
namespace {

constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpAck = 0x10;
constexpr uint8_t kLower = 0, kUpper = 1;
constexpr size_t kMaxChunkFlows = 4096;
constexpr size_t kMinIndexSlots = 64;
constexpr size_t kDigestBytes = 20;  // SHA-1
constexpr size_t kSha1BlockBytes = 64;
// A flow's digest input: version, protocol, VLAN, two ports, two addresses (IPv6 at most).
constexpr size_t kMaxFlowDigestInput = 8 + 2 * 16;
// SHA-1 ends the message with 0x80 and its 8-byte length: with the salt in whole blocks
// before it, a flow's input and that end take exactly one block.
static_assert(kMaxFlowDigestInput + 1 + 8 <= kSha1BlockBytes);

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

// Spreads FlowKeyHash's value over the index (its low bits alone also pick the worker, so
// every key of one worker would share them).
size_t HomeSlot(uint32_t hash, size_t mask) {
  return static_cast<size_t>((uint64_t{hash} * kHashMultiplier) >> 32) & mask;
}

}  // namespace

// What the table keeps per flow between packets: kept small (256 bytes, and its index
// slots), since a probe may track a million flows. Everything a `flow` event says beyond
// this is built from nDPI's state when the event is due.
//
// Laid out by use: a packet of a flow whose classification is final reads and writes only
// the first two cache lines (key and links; times, counters, MACs, flags and whether nDPI
// still has the flow). Spread over four lines, those misses showed in the worker's profile.
struct alignas(64) FlowTable::Flow {
  Flow() = default;  // a free place
  Flow(classify::NdpiModule& ndpi, uint8_t ip_protocol) : classifier(ndpi, ip_protocol) {}

  // Cache line 0: finding the flow, keeping its place in the idle list.
  FlowKey key;
  uint32_t hash = 0;     // FlowKeyHash of key, truncated
  Flow* prev = nullptr;  // idle list links
  Flow* next = nullptr;
  // Cache line 1: what every packet updates.
  uint64_t last_seen_ms = 0;
  uint64_t bytes[2] = {}, packets[2] = {};
  uint8_t mac[2][6] = {};
  uint8_t origin_side = kLower;
  bool closing = false;  // TCP FIN or RST seen
  bool active_since_stats = false;
  bool in_long_list = false;
  classify::FlowClassifier classifier;  // starts with its nDPI state pointer
  // The rest: flow creation, events.
  uint64_t first_seen_ms = 0;
  uint64_t reported_bytes[2] = {}, reported_packets[2] = {};
  uint32_t id = 0;
  uint8_t local_side = kLower;
  bool has_digest = false;
  v1::OtherType other_type = v1::OTHER_TYPE_UNKNOWN;
  // Lower-case hex, valid once has_digest: every event of the flow carries it, so it is
  // written out once (20 bytes more than the raw digest, one hex encoding less per event).
  char digest_hex[2 * kDigestBytes] = {};
};

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
  static_assert(sizeof(Flow) == 256, "a flow is four cache lines; see its layout");
  if (options_.interfaces.empty()) options_.interfaces.push_back(FlowInterface{});
  for (const FlowInterface& interface : options_.interfaces) {
    // The salt is padded with zeros to whole SHA-1 blocks, all hashed into the prefix: a
    // flow's own bytes and SHA-1's end padding then fit one more block, so a flow costs one
    // block, not the two it took when a UUID agent id and an interface name spilled into
    // the flow's block. The zeros follow the second NUL, so distinct salts stay distinct.
    std::string salt = options_.agent_id + '\0' + interface.name + '\0';
    salt.resize((salt.size() + kSha1BlockBytes - 1) / kSha1BlockBytes * kSha1BlockBytes, '\0');
    SHA_CTX& prefix = digest_prefixes_.emplace_back();
    SHA1_Init(&prefix);
    SHA1_Update(&prefix, salt.data(), salt.size());
  }
  // Small tables (tests, fuzzing) get small chunks; ids stay below 2^32 either way.
  const size_t chunk = std::bit_ceil(std::clamp<size_t>(options_.max_flows, 1, kMaxChunkFlows));
  chunk_shift_ = static_cast<uint32_t>(std::countr_zero(chunk));
  index_.resize(kMinIndexSlots);
  flow_event_.mutable_flow();
  stats_event_.mutable_flow_stats();
  purge_event_.mutable_flow_purge();
}

FlowTable::~FlowTable() = default;

FlowTable::Flow& FlowTable::FlowAt(uint32_t id) {
  return chunks_[id >> chunk_shift_][id & ((uint32_t{1} << chunk_shift_) - 1)];
}

FlowTable::Flow* FlowTable::NewFlow(uint8_t ip_protocol) {
  uint32_t id;
  if (!free_ids_.empty()) {
    id = free_ids_.back();
    free_ids_.pop_back();
  } else {
    if ((next_id_ >> chunk_shift_) >= chunks_.size()) {
      chunks_.push_back(std::make_unique<Flow[]>(size_t{1} << chunk_shift_));
    }
    id = next_id_++;
  }
  Flow* flow = &FlowAt(id);
  // Made again in place, classifier and all: assigning a fresh Flow{} built a temporary
  // and moved it member by member, and so did moving a classifier made apart into it.
  std::destroy_at(flow);
  std::construct_at(flow, ndpi_, ip_protocol);
  flow->id = id;
  return flow;
}

void FlowTable::GrowIndex() {
  std::vector<Slot> old(index_.size() * 2);
  old.swap(index_);
  const size_t mask = index_.size() - 1;
  for (const Slot& slot : old) {
    if (slot.flow == 0) continue;
    size_t at = HomeSlot(slot.hash, mask);
    while (index_[at].flow != 0) at = (at + 1) & mask;
    index_[at] = slot;
  }
}

void FlowTable::IndexInsert(uint32_t id, uint32_t hash) {
  if ((size_ + 1) * 2 > index_.size()) GrowIndex();
  const size_t mask = index_.size() - 1;
  size_t at = HomeSlot(hash, mask);
  while (index_[at].flow != 0) at = (at + 1) & mask;
  index_[at] = Slot{id + 1, hash};
  ++size_;
}

void FlowTable::IndexErase(uint32_t id, uint32_t hash) {
  const size_t mask = index_.size() - 1;
  size_t hole = HomeSlot(hash, mask);
  while (index_[hole].flow != id + 1) hole = (hole + 1) & mask;
  // Backward-shift deletion: move up every later entry of the run whose home is not
  // between the hole and itself, so that lookups never need tombstones.
  for (size_t at = (hole + 1) & mask; index_[at].flow != 0; at = (at + 1) & mask) {
    const size_t home = HomeSlot(index_[at].hash, mask);
    if (((at - home) & mask) >= ((at - hole) & mask)) {
      index_[hole] = index_[at];
      hole = at;
    }
  }
  index_[hole] = Slot{};
  --size_;
}

void FlowTable::SetDigest(Flow& flow, std::string* digest_hex) {
  if (!flow.has_digest) {
    // Once per flow, kept: every event of the flow carries it, and SHA-1 with its input
    // costs more than the 20 bytes. OpenSSL's SHA1_* calls, deprecated in 3.0 for the EVP
    // interface, are used on purpose: EVP's dispatch and context handling cost the worker
    // more than the hash itself, and EVP cannot start cheaply from a salted state.
    const FlowKey& key = flow.key;
    const size_t address_bytes = key.ip_version == 6 ? 16 : 4;
    uint8_t input[kMaxFlowDigestInput] = {key.ip_version,
                                          key.ip_protocol,
                                          static_cast<uint8_t>(key.vlan_id >> 8),
                                          static_cast<uint8_t>(key.vlan_id),
                                          static_cast<uint8_t>(key.lower_port >> 8),
                                          static_cast<uint8_t>(key.lower_port),
                                          static_cast<uint8_t>(key.upper_port >> 8),
                                          static_cast<uint8_t>(key.upper_port)};
    std::memcpy(input + 8, key.lower.bytes, address_bytes);
    std::memcpy(input + 8 + address_bytes, key.upper.bytes, address_bytes);
    SHA_CTX context = digest_prefixes_[key.interface_index];
    SHA1_Update(&context, input, 8 + 2 * address_bytes);  // one update: each has its cost
    uint8_t digest[kDigestBytes];
    SHA1_Final(digest, &context);
    WriteHexLower(digest, kDigestBytes, flow.digest_hex);
    flow.has_digest = true;
  }
  digest_hex->assign(flow.digest_hex, sizeof flow.digest_hex);
}

FlowTable::IdleList& FlowTable::ListFor(const Flow& flow) {
  return flow.in_long_list ? long_idle_ : short_idle_;
}

FlowTable::Flow* FlowTable::FindOrCreate(const FlowKey& key, uint32_t hash,
                                         const capture::DecodedPacket& packet, bool sender_is_lower,
                                         uint64_t time_ms) {
  const size_t mask = index_.size() - 1;
  for (size_t at = HomeSlot(hash, mask); index_[at].flow != 0; at = (at + 1) & mask) {
    if (index_[at].hash != hash) continue;
    Flow& candidate = FlowAt(index_[at].flow - 1);
    if (candidate.key == key) return &candidate;
  }

  if (size_ >= options_.max_flows && size_ > 0) {
    Flow* oldest = short_idle_.head != nullptr ? short_idle_.head : long_idle_.head;
    stats_.set_evicted(stats_.evicted() + 1);
    Purge(oldest, v1::PURGE_REASON_EVICTED);
  }
  Flow* flow = NewFlow(packet.ip_protocol);
  flow->key = key;
  flow->hash = hash;
  IndexInsert(flow->id, hash);
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
  stats_.set_active(size_);
  return flow;
}

void FlowTable::Prefetch(const PacketFlow& flow) const {
  __builtin_prefetch(&index_[HomeSlot(static_cast<uint32_t>(flow.hash), index_.size() - 1)]);
}

void FlowTable::OnPacket(const capture::DecodedPacket& packet, uint64_t time_us,
                         uint32_t wire_length, uint8_t interface_index) {
  if (interface_index >= options_.interfaces.size()) interface_index = 0;
  OnPacket(packet, PacketFlow::Of(packet, interface_index), time_us, wire_length);
}

void FlowTable::OnPacket(const capture::DecodedPacket& packet, const PacketFlow& packet_flow,
                         uint64_t time_us, uint32_t wire_length) {
  if (packet_flow.key.interface_index >= options_.interfaces.size()) {
    OnPacket(packet, time_us, wire_length, 0);  // a caller's slip; keyed as interface 0
    return;
  }
  const uint64_t time_ms = time_us / 1000;
  Flow* flow = FindOrCreate(packet_flow.key, static_cast<uint32_t>(packet_flow.hash), packet,
                            packet_flow.sender_is_lower, time_ms);
  const uint8_t sender = packet_flow.sender_is_lower ? kLower : kUpper;

  // Re-file the flow at the back of its idle list (it moves to the short list after a FIN),
  // unless it is there already: a flow's packets often come in runs, and re-filing touches
  // its neighbours' cache lines.
  const bool closes = (packet.tcp_flags & (kTcpFin | kTcpRst)) != 0;
  const bool changes_list = closes && flow->in_long_list;
  if (changes_list || ListFor(*flow).tail != flow) {
    ListFor(*flow).Remove(flow);
    if (changes_list) flow->in_long_list = false;
    ListFor(*flow).PushBack(flow);
  }
  if (closes) flow->closing = true;
  if ((packet.tcp_flags & (kTcpSyn | kTcpAck)) == kTcpSyn) flow->origin_side = sender;

  flow->last_seen_ms = std::max(flow->last_seen_ms, time_ms);
  flow->bytes[sender] += wire_length;
  flow->packets[sender] += 1;
  flow->active_since_stats = true;
  if (packet.has_mac) std::memcpy(flow->mac[sender], packet.src_mac, 6);

  if (flow->classifier.final() || packet.l3 == nullptr) return;
  const classify::ClassifyStep step = flow->classifier.Process(
      ndpi_, packet.l3, packet.l3_length, time_ms, flow_event_.mutable_flow()->mutable_flow());
  EmitDetection(*flow, step);
}

void FlowTable::EmitDetection(Flow& flow, classify::ClassifyStep step) {
  if (step == classify::ClassifyStep::kDetected) {
    stats_.set_detected(stats_.detected() + 1);
    if (flow_event_.flow().flow().detection_guessed()) stats_.set_guessed(stats_.guessed() + 1);
    EmitFlow(flow, false);
  } else if (step == classify::ClassifyStep::kRefined) {
    EmitFlow(flow, true);
  }
}

void FlowTable::SetContext(const Flow& flow, v1::FlowContext* context) const {
  const FlowInterface& interface = options_.interfaces[flow.key.interface_index];
  context->set_interface(interface.name);
  context->set_internal(interface.internal);
}

void FlowTable::EmitFlow(Flow& flow, bool updated) {
  v1::FlowEvent* body = flow_event_.mutable_flow();
  SetContext(flow, body->mutable_context());
  v1::FlowMetadata* m = body->mutable_flow();  // holds the classifier's detection fields
  const FlowKey& key = flow.key;
  const int local = flow.local_side, other = 1 - flow.local_side;
  const capture::IpAddress& local_ip = local == kLower ? key.lower : key.upper;
  const capture::IpAddress& other_ip = local == kLower ? key.upper : key.lower;
  SetDigest(flow, m->mutable_digest());
  m->set_ip_version(key.ip_version);
  m->set_ip_protocol(key.ip_protocol);
  m->set_vlan_id(key.vlan_id);
  local_ip.AssignText(m->mutable_local_ip());
  other_ip.AssignText(m->mutable_other_ip());
  m->set_local_port(local == kLower ? key.lower_port : key.upper_port);
  m->set_other_port(local == kLower ? key.upper_port : key.lower_port);
  AssignHexLower(flow.mac[local], 6, ':', m->mutable_local_mac());
  AssignHexLower(flow.mac[other], 6, ':', m->mutable_other_mac());
  m->set_other_type(flow.other_type);
  m->set_local_origin(flow.origin_side == local);
  m->set_detection_updated(updated);
  m->set_first_seen_at(flow.first_seen_ms);
  m->set_last_seen_at(flow.last_seen_ms);
  sink_.Emit(flow_event_);
}

void FlowTable::FillCounters(Flow& flow, v1::FlowCounters* c, bool consume_deltas) {
  const int local = flow.local_side, other = 1 - flow.local_side;
  SetDigest(flow, c->mutable_digest());
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
  // Every live flow is on exactly one idle list.
  for (IdleList* list : {&short_idle_, &long_idle_}) {
    for (Flow* flow = list->head; flow != nullptr; flow = flow->next) {
      if (!flow->active_since_stats) continue;
      flow->active_since_stats = false;
      v1::FlowStatsEvent* body = stats_event_.mutable_flow_stats();
      SetContext(*flow, body->mutable_context());
      FillCounters(*flow, body->mutable_flow(), true);
      sink_.Emit(stats_event_);
    }
  }
}

void FlowTable::Purge(Flow* flow, v1::PurgeReason reason) {
  // Every flow gets its `flow` message before its purge, guessed if nDPI had no answer.
  const classify::ClassifyStep step =
      flow->classifier.Finish(ndpi_, flow_event_.mutable_flow()->mutable_flow());
  EmitDetection(*flow, step);
  v1::FlowPurgeEvent* purge = purge_event_.mutable_flow_purge();
  SetContext(*flow, purge->mutable_context());
  purge->set_reason(reason);
  FillCounters(*flow, purge->mutable_flow(), true);
  sink_.Emit(purge_event_);

  ListFor(*flow).Remove(flow);
  IndexErase(flow->id, flow->hash);
  flow->classifier = classify::FlowClassifier();  // nothing of nDPI's is kept for a free place
  free_ids_.push_back(flow->id);
  stats_.set_purged(stats_.purged() + 1);
  stats_.set_active(size_);
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
  while (short_idle_.head != nullptr) Purge(short_idle_.head, reason);
  while (long_idle_.head != nullptr) Purge(long_idle_.head, reason);
}

}  // namespace flowgate::agent
