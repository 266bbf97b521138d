#include "flowgate/common/netifyd_json.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <vector>

#include "json_writer.h"

namespace flowgate {
namespace {

// Every object below writes its keys in ascending order: netifyd's come out sorted, and
// the JsonWriter (debug builds) checks it.

// netifyd sends an all-zero MAC when none is known (raw-IP captures, tunnels).
std::string_view MacOrZeros(const std::string& mac) {
  return mac.empty() ? std::string_view("00:00:00:00:00:00") : std::string_view(mac);
}

void WriteAgent(JsonWriter& w, const v1::AgentIdentity& agent) {
  w.Key("agent");
  w.BeginObject();
  w.FieldIfNotEmpty("id", agent.id());
  w.FieldIfNotEmpty("name", agent.name());
  w.FieldIfNotEmpty("site", agent.site());
  w.EndObject();
}

// The array value of a key the caller has written.
void WriteStrings(JsonWriter& w, const google::protobuf::RepeatedPtrField<std::string>& values) {
  w.BeginArray();
  for (const std::string& v : values) w.String(v);
  w.EndArray();
}

// Map-like data (interfaces, devices) arrives in any order; objects need sorted keys.
template <typename T, typename KeyOf>
std::vector<const T*> SortedBy(const google::protobuf::RepeatedPtrField<T>& items, KeyOf key_of) {
  std::vector<const T*> sorted;
  sorted.reserve(static_cast<size_t>(items.size()));
  for (const T& item : items) sorted.push_back(&item);
  std::sort(sorted.begin(), sorted.end(),
            [&](const T* a, const T* b) { return key_of(*a) < key_of(*b); });
  return sorted;
}

void WriteInterfaceStats(JsonWriter& w, const v1::InterfaceStats& s) {
  w.BeginObject();
  w.Field("capture_dropped", s.capture_dropped());
  w.Field("discarded", s.discarded());
  w.Field("discarded_bytes", s.discarded_bytes());
  w.Field("ethernet", s.ethernet());
  w.Field("fragmented", s.fragmented());
  w.Field("icmp", s.icmp());
  w.Field("ip", s.ip());
  w.Field("ip4", s.ip4());
  w.Field("ip6", s.ip6());
  w.Field("ip_bytes", s.ip_bytes());
  w.Field("other", s.other());
  w.Field("queue_dropped", s.queue_dropped());
  w.Field("raw", s.raw());
  w.Field("tcp", s.tcp());
  w.Field("tunneled", s.tunneled());
  w.Field("udp", s.udp());
  w.Field("vlan", s.vlan());
  w.Field("wire_bytes", s.wire_bytes());
  w.EndObject();
}

void WriteGatewayStats(JsonWriter& w, const v1::GatewayStats& g) {
  w.Key("gateway");
  w.BeginObject();
  w.Field("active_flows", g.active_flows());
  w.Field("batches_duplicate", g.batches_duplicate());
  w.Field("batches_rejected", g.batches_rejected());
  w.Field("batches_stored", g.batches_stored());
  w.Field("events_stored", g.events_stored());
  w.Key("json_client");
  w.BeginArray();
  for (const v1::JsonClientStats& c : g.json_client()) {
    w.BeginObject();
    w.Field("frames_dropped", c.frames_dropped());
    w.Field("frames_sent", c.frames_sent());
    w.Field("id", c.id());
    w.Field("peer", c.peer());
    w.Field("queued_bytes", c.queued_bytes());
    w.EndObject();
  }
  w.EndArray();
  w.Field("json_clients", g.json_clients());
  w.Field("json_clients_kicked", g.json_clients_kicked());
  w.Field("json_frames_dropped", g.json_frames_dropped());
  w.Field("json_frames_published", g.json_frames_published());
  w.Field("store_failures", g.store_failures());
  w.EndObject();
}

// The keys of agent_status after "agent" (which the caller may have written).
void WriteStatus(JsonWriter& w, const v1::AgentStatus& s) {
  w.Field("cpu_cores", s.cpu_cores());
  w.Field("cpu_system", s.cpu_system());
  w.Field("cpu_system_prev", s.cpu_system_prev());
  w.Field("cpu_user", s.cpu_user());
  w.Field("cpu_user_prev", s.cpu_user_prev());
  if (!s.devices().empty()) {
    std::vector<const std::string*> macs;
    for (const auto& [mac, addrs] : s.devices()) macs.push_back(&mac);
    std::sort(macs.begin(), macs.end(), [](auto* a, auto* b) { return *a < *b; });
    w.Key("devices");
    w.BeginObject();
    for (const std::string* mac : macs) {
      w.DynamicKey(*mac);
      WriteStrings(w, s.devices().at(*mac).addr());
    }
    w.EndObject();
  }
  if (s.final()) w.Field("final", true);  // not a netifyd key; only sent when true
  w.Field("flow_count", s.flow_count());
  w.Field("flow_count_prev", s.flow_count_prev());
  if (s.has_flows()) {
    const v1::FlowTableStats& f = s.flows();
    w.Key("flow_table");
    w.BeginObject();
    w.Field("active", f.active());
    w.Field("created", f.created());
    w.Field("detected", f.detected());
    w.Field("evicted", f.evicted());
    w.Field("guessed", f.guessed());
    w.Field("ndpi_state_bytes", f.ndpi_state_bytes());
    w.Field("purged", f.purged());
    w.EndObject();
  }
  if (s.has_gateway()) WriteGatewayStats(w, s.gateway());
  if (!s.interfaces().empty()) {
    w.Key("interfaces");
    w.BeginObject();
    for (const v1::InterfaceInfo* i :
         SortedBy(s.interfaces(), [](const v1::InterfaceInfo& x) { return x.name(); })) {
      w.DynamicKey(i->name());
      w.BeginObject();
      w.Key("addr");
      WriteStrings(w, i->addr());
      w.FieldIfNotEmpty("last_error", i->last_error());
      w.FieldIfNotEmpty("mac", i->mac());
      if (i->reopens() != 0) w.Field("reopens", i->reopens());
      w.FieldIfNotEmpty("role", i->role());
      w.FieldIfNotEmpty("state", i->state());
      w.EndObject();
    }
    w.EndObject();
  }
  w.Field("maxrss_kb", s.maxrss_kb());
  w.Field("maxrss_kb_prev", s.maxrss_kb_prev());
  if (!s.stats().empty()) {
    w.Key("stats");
    w.BeginObject();
    for (const v1::InterfaceStats* i :
         SortedBy(s.stats(), [](const v1::InterfaceStats& x) { return x.name(); })) {
      w.DynamicKey(i->name());
      WriteInterfaceStats(w, *i);
    }
    w.EndObject();
  }
  w.Field("timestamp", s.timestamp());
  if (s.has_transport()) {
    const v1::TransportStats& t = s.transport();
    w.Key("transport");
    w.BeginObject();
    w.Field("batches_acked", t.batches_acked());
    w.Field("batches_resent", t.batches_resent());
    w.Field("batches_sent", t.batches_sent());
    w.Field("events_dropped", t.events_dropped());
    w.Field("events_sent", t.events_sent());
    w.Field("queue_dropped", t.queue_dropped());
    w.Field("spool_batches", t.spool_batches());
    w.Field("spool_bytes", t.spool_bytes());
    w.EndObject();
  }
}

// After "type": the keys that sort after it.
void WriteStatusTail(JsonWriter& w, const v1::AgentStatus& s) {
  w.Field("update_interval", s.update_interval());
  w.Field("uptime", s.uptime());
  w.Field("version", s.version());
}

void WriteTags(JsonWriter& w, JsonKey key,
               const google::protobuf::RepeatedPtrField<v1::ProtocolTag>& tags) {
  w.Key(key);
  w.BeginArray();
  for (const v1::ProtocolTag& t : tags) {
    w.BeginObject();
    w.Field("id", t.id());
    w.Field("tag", t.tag());
    w.EndObject();
  }
  w.EndArray();
}

// Writes `key: {...}` with the given members, or nothing when every member is empty.
template <typename WriteMembers>
void WriteObjectIfAny(JsonWriter& w, JsonKey key, bool any, WriteMembers members) {
  if (!any) return;
  w.Key(key);
  w.BeginObject();
  members();
  w.EndObject();
}

void WriteFlowMetadata(JsonWriter& w, const v1::FlowMetadata& f) {
  w.BeginObject();
  WriteObjectIfAny(w, "bt", !f.bt().info_hash().empty(),
                   [&] { w.Field("info_hash", f.bt().info_hash()); });
  w.Key("category");
  w.BeginObject();
  w.Field("application", f.category().application());
  w.Field("protocol", f.category().protocol());
  w.EndObject();
  w.Field("detected_application", f.detected_application());
  w.Field("detected_application_name", f.detected_application_name());
  w.Field("detected_protocol", f.detected_protocol());
  w.Field("detected_protocol_name", f.detected_protocol_name());
  w.FieldIfNotEmpty("detection_confidence", f.detection_confidence());
  w.Field("detection_guessed", f.detection_guessed());
  w.Field("detection_updated", f.detection_updated());
  const v1::DhcpInfo& dhcp = f.dhcp();
  WriteObjectIfAny(w, "dhcp", !dhcp.class_ident().empty() || !dhcp.fingerprint().empty(), [&] {
    w.FieldIfNotEmpty("class_ident", dhcp.class_ident());
    w.FieldIfNotEmpty("fingerprint", dhcp.fingerprint());
  });
  w.Field("digest", f.digest());
  const v1::DnsInfo& dns = f.dns();
  WriteObjectIfAny(w, "dns", !dns.query().empty() || dns.query_type() != 0 || dns.reply_code() != 0,
                   [&] {
                     w.FieldIfNotEmpty("query", dns.query());
                     if (dns.query_type() != 0) w.Field("query_type", dns.query_type());
                     if (dns.reply_code() != 0) w.Field("reply_code", dns.reply_code());
                   });
  w.Field("first_seen_at", f.first_seen_at());
  w.FieldIfNotEmpty("host_server_name", f.host_server_name());
  const v1::HttpInfo& http = f.http();
  WriteObjectIfAny(w, "http", !http.url().empty() || !http.user_agent().empty(), [&] {
    w.FieldIfNotEmpty("url", http.url());
    w.FieldIfNotEmpty("user_agent", http.user_agent());
  });
  w.Field("ip_protocol", f.ip_protocol());
  w.Field("ip_version", f.ip_version());
  w.Field("last_seen_at", f.last_seen_at());
  w.FieldIfNotEmpty("local_ip", f.local_ip());
  w.Field("local_mac", MacOrZeros(f.local_mac()));
  w.Field("local_origin", f.local_origin());
  w.Field("local_port", f.local_port());
  w.FieldIfNotEmpty("other_ip", f.other_ip());
  w.Field("other_mac", MacOrZeros(f.other_mac()));
  w.Field("other_port", f.other_port());
  w.Field("other_type", OtherTypeName(f.other_type()));
  if (f.has_risks()) {
    const v1::Risks& r = f.risks();
    w.Key("risks");
    w.BeginObject();
    w.Field("ndpi_risk_score", r.ndpi_risk_score());
    w.Field("ndpi_risk_score_client", r.ndpi_risk_score_client());
    w.Field("ndpi_risk_score_server", r.ndpi_risk_score_server());
    w.Key("risks");
    w.BeginArray();
    for (uint32_t id : r.risks()) w.Uint(id);
    w.EndArray();
    w.EndObject();
  }
  const v1::SshInfo& ssh = f.ssh();
  WriteObjectIfAny(w, "ssh", !ssh.client().empty() || !ssh.server().empty(), [&] {
    w.FieldIfNotEmpty("client", ssh.client());
    w.FieldIfNotEmpty("server", ssh.server());
  });
  const v1::SslInfo& ssl = f.ssl();
  const bool any_ssl = !ssl.alpn().empty() || !ssl.cipher_suite().empty() ||
                       !ssl.client_ja3().empty() || !ssl.client_sni().empty() ||
                       !ssl.fingerprint().empty() || !ssl.issuer_dn().empty() ||
                       !ssl.server_cn().empty() || !ssl.server_ja3().empty() ||
                       !ssl.subject_dn().empty() || !ssl.version().empty();
  WriteObjectIfAny(w, "ssl", any_ssl, [&] {
    w.FieldIfNotEmpty("alpn", ssl.alpn());
    w.FieldIfNotEmpty("cipher_suite", ssl.cipher_suite());
    w.FieldIfNotEmpty("client_ja3", ssl.client_ja3());
    w.FieldIfNotEmpty("client_sni", ssl.client_sni());
    w.FieldIfNotEmpty("fingerprint", ssl.fingerprint());
    w.FieldIfNotEmpty("issuer_dn", ssl.issuer_dn());
    w.FieldIfNotEmpty("server_cn", ssl.server_cn());
    w.FieldIfNotEmpty("server_ja3", ssl.server_ja3());
    w.FieldIfNotEmpty("subject_dn", ssl.subject_dn());
    w.FieldIfNotEmpty("version", ssl.version());
  });
  w.Field("vlan_id", f.vlan_id());
  w.EndObject();
}

void WriteFlowCounters(JsonWriter& w, const v1::FlowCounters& c) {
  w.BeginObject();
  w.Field("detection_packets", c.detection_packets());
  w.Field("digest", c.digest());
  w.Field("last_seen_at", c.last_seen_at());
  w.Field("local_bytes", c.local_bytes());
  w.Field("local_packets", c.local_packets());
  w.Field("other_bytes", c.other_bytes());
  w.Field("other_packets", c.other_packets());
  w.Field("total_bytes", c.total_bytes());
  w.Field("total_packets", c.total_packets());
  w.EndObject();
}

// The three flow messages share their envelope: established, flow, interface, internal,
// (reason), type.
template <typename WriteFlow>
void WriteFlowMessage(JsonWriter& w, const v1::FlowContext& context, WriteFlow write_flow,
                      std::string_view reason, std::string_view type) {
  w.Field("established", context.established());
  w.Key("flow");
  write_flow();
  w.FieldIfNotEmpty("interface", context.interface());
  w.Field("internal", context.internal());
  w.FieldIfNotEmpty("reason", reason);
  w.Field("type", type);
}

}  // namespace

std::string_view NetifydTypeName(const v1::Event& event) {
  switch (event.body_case()) {
    case v1::Event::kAgentHello:
      return "agent_hello";
    case v1::Event::kAgentStatus:
      return "agent_status";
    case v1::Event::kDefinitions:
      return "definitions";
    case v1::Event::kFlow:
      return "flow";
    case v1::Event::kFlowStats:
      return "flow_stats";
    case v1::Event::kFlowPurge:
      return "flow_purge";
    case v1::Event::BODY_NOT_SET:
      break;
  }
  return {};
}

std::string_view PurgeReasonName(v1::PurgeReason reason) {
  switch (reason) {
    case v1::PURGE_REASON_CLOSED:
      return "closed";
    case v1::PURGE_REASON_TERMINATED:
      return "terminated";
    default:
      // netifyd knows no "evicted": a flow pushed out of a full table is, to a reader,
      // a flow that stopped being tracked.
      return "expired";
  }
}

std::string_view OtherTypeName(v1::OtherType type) {
  switch (type) {
    case v1::OTHER_TYPE_LOCAL:
      return "local";
    case v1::OTHER_TYPE_REMOTE:
      return "remote";
    case v1::OTHER_TYPE_MULTICAST:
      return "multicast";
    case v1::OTHER_TYPE_BROADCAST:
      return "broadcast";
    default:
      return "unknown";
  }
}

namespace {

// Writes the payload of `event` (newline included) into *buffer from `offset` on; returns
// where it ends. See JsonWriter for how the buffer is used.
size_t WritePayload(const v1::Event& event, const v1::AgentIdentity* source, std::string* buffer,
                    size_t offset) {
  JsonWriter w(buffer, offset);
  w.BeginObject();
  if (source != nullptr) WriteAgent(w, *source);
  switch (event.body_case()) {
    case v1::Event::kAgentHello: {
      const v1::AgentHello& hello = event.agent_hello();
      w.FieldIfNotEmpty("agent_version", hello.agent_version());
      w.FieldIfNotEmpty("build_version", hello.build_version());
      w.Field("json_version", hello.json_version());
      w.Field("type", "agent_hello");
      break;
    }
    case v1::Event::kAgentStatus:
      WriteStatus(w, event.agent_status());
      w.Field("type", "agent_status");
      WriteStatusTail(w, event.agent_status());
      break;
    case v1::Event::kDefinitions:
      WriteTags(w, "applications", event.definitions().applications());
      WriteTags(w, "protocols", event.definitions().protocols());
      w.Field("type", "definitions");
      break;
    case v1::Event::kFlow:
      WriteFlowMessage(
          w, event.flow().context(), [&] { WriteFlowMetadata(w, event.flow().flow()); }, "",
          "flow");
      break;
    case v1::Event::kFlowStats:
      WriteFlowMessage(
          w, event.flow_stats().context(), [&] { WriteFlowCounters(w, event.flow_stats().flow()); },
          "", "flow_stats");
      break;
    case v1::Event::kFlowPurge:
      WriteFlowMessage(
          w, event.flow_purge().context(), [&] { WriteFlowCounters(w, event.flow_purge().flow()); },
          PurgeReasonName(event.flow_purge().reason()), "flow_purge");
      break;
    case v1::Event::BODY_NOT_SET:
      w.Field("type", "unknown");
      break;
  }
  w.EndObject();
  w.Raw('\n');
  return w.end_offset();
}

// Messages are encoded into a per-thread buffer and copied out once, so that encoding
// allocates only the string it returns. A buffer grown by a huge message is given back.
constexpr size_t kMaxKeptScratchBytes = 1u << 20;

class ScratchBuffer {
 public:
  ScratchBuffer() : buffer_(Get()) {}
  ~ScratchBuffer() {
    if (buffer_.size() > kMaxKeptScratchBytes) std::string().swap(buffer_);
  }
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  std::string* get() { return &buffer_; }

 private:
  static std::string& Get() {
    thread_local std::string buffer;
    return buffer;
  }
  std::string& buffer_;
};

constexpr std::string_view kLengthPrefix = "{\"length\": ";
// `{"length": ` + up to 20 digits + `}\n`.
constexpr size_t kMaxHeaderBytes = kLengthPrefix.size() + 20 + 2;

// Writes `{"length": N}\n` at `out` (which has kMaxHeaderBytes of room); returns its size.
size_t WriteLengthHeader(char* out, size_t payload_size) {
  char* p = out;
  std::memcpy(p, kLengthPrefix.data(), kLengthPrefix.size());
  p += kLengthPrefix.size();
  p = std::to_chars(p, p + 20, payload_size).ptr;
  *p++ = '}';
  *p++ = '\n';
  return static_cast<size_t>(p - out);
}

}  // namespace

std::string EncodeNetifydPayload(const v1::Event& event, const v1::AgentIdentity* source) {
  ScratchBuffer scratch;
  const size_t end = WritePayload(event, source, scratch.get(), 0);
  return std::string(scratch.get()->data(), end);
}

std::string FrameNetifydPayload(std::string_view payload) {
  char header[kMaxHeaderBytes];
  const size_t header_size = WriteLengthHeader(header, payload.size());
  std::string frame;
  frame.reserve(header_size + payload.size());
  frame.append(header, header_size);
  frame.append(payload);
  return frame;
}

std::string EncodeNetifydFrame(const v1::Event& event, const v1::AgentIdentity* source) {
  // The payload goes after room for the longest header; the header is then written just
  // before it, so the frame is one contiguous run copied out once.
  ScratchBuffer scratch;
  const size_t end = WritePayload(event, source, scratch.get(), kMaxHeaderBytes);
  const size_t payload_size = end - kMaxHeaderBytes;
  char header[kMaxHeaderBytes];
  const size_t header_size = WriteLengthHeader(header, payload_size);
  char* const frame_start = scratch.get()->data() + kMaxHeaderBytes - header_size;
  std::memcpy(frame_start, header, header_size);
  return std::string(frame_start, header_size + payload_size);
}

Status NetifydFrameReader::Feed(std::string_view bytes) {
  if (!failure_.ok()) return failure_;
  // Drop what has been taken; untaken payloads move with the rest.
  const size_t taken = ready_.empty() ? parsed_ : ready_.front().offset;
  if (taken > 0) {
    buffer_.erase(0, taken);
    parsed_ -= taken;
    for (Span& span : ready_) span.offset -= taken;
  }
  buffer_.append(bytes);
  failure_ = Parse();
  return failure_;
}

bool NetifydFrameReader::Next(std::string_view* payload) {
  if (ready_.empty()) return false;
  *payload = std::string_view(buffer_).substr(ready_.front().offset, ready_.front().size);
  ready_.pop_front();
  return true;
}

bool NetifydFrameReader::Next(std::string* payload) {
  std::string_view view;
  if (!Next(&view)) return false;
  payload->assign(view);
  return true;
}

Status NetifydFrameReader::Parse() {
  while (true) {
    std::string_view rest = std::string_view(buffer_).substr(parsed_);
    size_t newline = rest.find('\n');
    if (newline == std::string_view::npos) {
      // A header is at most kLengthPrefix + 20 digits + "}\n"; more without a newline is
      // garbage.
      if (rest.size() > kLengthPrefix.size() + 22) {
        return Status::Corruption("netifyd stream: header line too long");
      }
      break;
    }
    std::string_view header = rest.substr(0, newline);
    if (header.substr(0, kLengthPrefix.size()) != kLengthPrefix ||
        header.size() < kLengthPrefix.size() + 2 || header.back() != '}') {
      return Status::Corruption("netifyd stream: bad header '" + std::string(header.substr(0, 64)) +
                                "'");
    }
    std::string_view digits =
        header.substr(kLengthPrefix.size(), header.size() - kLengthPrefix.size() - 1);
    uint64_t n = 0;
    for (char c : digits) {
      if (c < '0' || c > '9' || n > max_payload_bytes_) {
        return Status::Corruption("netifyd stream: bad length in header '" + std::string(header) +
                                  "'");
      }
      n = n * 10 + static_cast<uint64_t>(c - '0');
    }
    if (digits.empty() || n == 0 || n > max_payload_bytes_) {
      return Status::Corruption("netifyd stream: length out of range in '" + std::string(header) +
                                "'");
    }
    if (rest.size() < newline + 1 + n) break;
    std::string_view payload = rest.substr(newline + 1, n);
    if (payload.back() != '\n') {
      return Status::Corruption("netifyd stream: payload does not end in a newline");
    }
    if (payload.find('\n') != payload.size() - 1) {
      return Status::Corruption("netifyd stream: payload is more than one line");
    }
    ready_.push_back(Span{parsed_ + newline + 1, n});
    parsed_ += newline + 1 + n;
  }
  return Status::Ok();
}

}  // namespace flowgate
