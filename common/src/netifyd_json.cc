#include "flowgate/common/netifyd_json.h"

#include <nlohmann/json.hpp>

namespace flowgate {
namespace {

using nlohmann::json;

// netifyd omits empty strings rather than sending "" (netifyd-socket.md, Messages).
void PutString(json& object, const char* key, const std::string& value) {
  if (!value.empty()) object[key] = value;
}

void PutObject(json& object, const char* key, json&& value) {
  if (!value.empty()) object[key] = std::move(value);
}

// netifyd sends an all-zero MAC when none is known (raw-IP captures, tunnels).
std::string MacOrZeros(const std::string& mac) { return mac.empty() ? "00:00:00:00:00:00" : mac; }

json AgentJson(const v1::AgentIdentity& agent) {
  json j = json::object();
  PutString(j, "id", agent.id());
  PutString(j, "name", agent.name());
  PutString(j, "site", agent.site());
  return j;
}

json HelloJson(const v1::AgentHello& hello) {
  json j = json::object();
  PutString(j, "agent_version", hello.agent_version());
  PutString(j, "build_version", hello.build_version());
  j["json_version"] = hello.json_version();
  return j;
}

json InterfaceStatsJson(const v1::InterfaceStats& s) {
  return json{{"raw", s.raw()},
              {"ethernet", s.ethernet()},
              {"vlan", s.vlan()},
              {"ip", s.ip()},
              {"ip4", s.ip4()},
              {"ip6", s.ip6()},
              {"tcp", s.tcp()},
              {"udp", s.udp()},
              {"icmp", s.icmp()},
              {"other", s.other()},
              {"ip_bytes", s.ip_bytes()},
              {"wire_bytes", s.wire_bytes()},
              {"discarded", s.discarded()},
              {"discarded_bytes", s.discarded_bytes()},
              {"fragmented", s.fragmented()},
              {"capture_dropped", s.capture_dropped()},
              {"queue_dropped", s.queue_dropped()},
              {"tunneled", s.tunneled()}};
}

json StatusJson(const v1::AgentStatus& s) {
  json j{{"version", s.version()},
         {"timestamp", s.timestamp()},
         {"update_interval", s.update_interval()},
         {"uptime", s.uptime()},
         {"cpu_cores", s.cpu_cores()},
         {"cpu_user", s.cpu_user()},
         {"cpu_user_prev", s.cpu_user_prev()},
         {"cpu_system", s.cpu_system()},
         {"cpu_system_prev", s.cpu_system_prev()},
         {"flow_count", s.flow_count()},
         {"flow_count_prev", s.flow_count_prev()},
         {"maxrss_kb", s.maxrss_kb()},
         {"maxrss_kb_prev", s.maxrss_kb_prev()}};
  json interfaces = json::object();
  for (const auto& i : s.interfaces()) {
    json entry = json::object();
    PutString(entry, "role", i.role());
    PutString(entry, "mac", i.mac());
    entry["addr"] = json(std::vector<std::string>(i.addr().begin(), i.addr().end()));
    PutString(entry, "state", i.state());
    if (i.reopens() != 0) entry["reopens"] = i.reopens();
    PutString(entry, "last_error", i.last_error());
    interfaces[i.name()] = std::move(entry);
  }
  PutObject(j, "interfaces", std::move(interfaces));
  json stats = json::object();
  for (const auto& i : s.stats()) stats[i.name()] = InterfaceStatsJson(i);
  PutObject(j, "stats", std::move(stats));
  json devices = json::object();
  for (const auto& [mac, addrs] : s.devices()) {
    devices[mac] = json(std::vector<std::string>(addrs.addr().begin(), addrs.addr().end()));
  }
  PutObject(j, "devices", std::move(devices));
  if (s.has_flows()) {
    const auto& f = s.flows();
    j["flow_table"] = json{{"active", f.active()},
                           {"created", f.created()},
                           {"purged", f.purged()},
                           {"evicted", f.evicted()},
                           {"detected", f.detected()},
                           {"guessed", f.guessed()},
                           {"ndpi_state_bytes", f.ndpi_state_bytes()}};
  }
  if (s.final()) j["final"] = true;  // not a netifyd key; only sent when true
  if (s.has_gateway()) {
    const v1::GatewayStats& g = s.gateway();
    json clients = json::array();
    for (const v1::JsonClientStats& c : g.json_client()) {
      clients.push_back(json{{"id", c.id()},
                             {"peer", c.peer()},
                             {"frames_sent", c.frames_sent()},
                             {"frames_dropped", c.frames_dropped()},
                             {"queued_bytes", c.queued_bytes()}});
    }
    j["gateway"] = json{{"events_stored", g.events_stored()},
                        {"batches_stored", g.batches_stored()},
                        {"batches_duplicate", g.batches_duplicate()},
                        {"batches_rejected", g.batches_rejected()},
                        {"store_failures", g.store_failures()},
                        {"active_flows", g.active_flows()},
                        {"json_clients", g.json_clients()},
                        {"json_frames_published", g.json_frames_published()},
                        {"json_frames_dropped", g.json_frames_dropped()},
                        {"json_clients_kicked", g.json_clients_kicked()},
                        {"json_client", std::move(clients)}};
  }
  if (s.has_transport()) {
    const auto& t = s.transport();
    j["transport"] =
        json{{"batches_sent", t.batches_sent()},     {"batches_acked", t.batches_acked()},
             {"batches_resent", t.batches_resent()}, {"events_sent", t.events_sent()},
             {"events_dropped", t.events_dropped()}, {"spool_bytes", t.spool_bytes()},
             {"spool_batches", t.spool_batches()},   {"queue_dropped", t.queue_dropped()}};
  }
  return j;
}

json TagsJson(const google::protobuf::RepeatedPtrField<v1::ProtocolTag>& tags) {
  json list = json::array();
  for (const auto& t : tags) list.push_back(json{{"id", t.id()}, {"tag", t.tag()}});
  return list;
}

json SslJson(const v1::SslInfo& s) {
  json j = json::object();
  PutString(j, "version", s.version());
  PutString(j, "cipher_suite", s.cipher_suite());
  PutString(j, "client_sni", s.client_sni());
  PutString(j, "server_cn", s.server_cn());
  PutString(j, "issuer_dn", s.issuer_dn());
  PutString(j, "subject_dn", s.subject_dn());
  PutString(j, "client_ja3", s.client_ja3());
  PutString(j, "server_ja3", s.server_ja3());
  PutString(j, "fingerprint", s.fingerprint());
  PutString(j, "alpn", s.alpn());
  return j;
}

json FlowMetadataJson(const v1::FlowMetadata& f) {
  json j{{"digest", f.digest()},
         {"ip_version", f.ip_version()},
         {"ip_protocol", f.ip_protocol()},
         {"vlan_id", f.vlan_id()},
         {"local_port", f.local_port()},
         {"other_port", f.other_port()},
         {"local_mac", MacOrZeros(f.local_mac())},
         {"other_mac", MacOrZeros(f.other_mac())},
         {"other_type", OtherTypeName(f.other_type())},
         {"local_origin", f.local_origin()},
         {"detected_protocol", f.detected_protocol()},
         {"detected_protocol_name", f.detected_protocol_name()},
         {"detected_application", f.detected_application()},
         {"detected_application_name", f.detected_application_name()},
         {"detection_guessed", f.detection_guessed()},
         {"detection_updated", f.detection_updated()},
         {"category",
          json{{"application", f.category().application()}, {"protocol", f.category().protocol()}}},
         {"first_seen_at", f.first_seen_at()},
         {"last_seen_at", f.last_seen_at()}};
  PutString(j, "local_ip", f.local_ip());
  PutString(j, "other_ip", f.other_ip());
  PutString(j, "host_server_name", f.host_server_name());
  PutString(j, "detection_confidence", f.detection_confidence());
  PutObject(j, "ssl", SslJson(f.ssl()));
  json http = json::object();
  PutString(http, "user_agent", f.http().user_agent());
  PutString(http, "url", f.http().url());
  PutObject(j, "http", std::move(http));
  json dhcp = json::object();
  PutString(dhcp, "fingerprint", f.dhcp().fingerprint());
  PutString(dhcp, "class_ident", f.dhcp().class_ident());
  PutObject(j, "dhcp", std::move(dhcp));
  json ssh = json::object();
  PutString(ssh, "client", f.ssh().client());
  PutString(ssh, "server", f.ssh().server());
  PutObject(j, "ssh", std::move(ssh));
  if (f.has_dns()) {
    json dns = json::object();
    PutString(dns, "query", f.dns().query());
    if (f.dns().query_type() != 0) dns["query_type"] = f.dns().query_type();
    if (f.dns().reply_code() != 0) dns["reply_code"] = f.dns().reply_code();
    PutObject(j, "dns", std::move(dns));
  }
  json bt = json::object();
  PutString(bt, "info_hash", f.bt().info_hash());
  PutObject(j, "bt", std::move(bt));
  if (f.has_risks()) {
    const auto& r = f.risks();
    j["risks"] = json{{"ndpi_risk_score", r.ndpi_risk_score()},
                      {"ndpi_risk_score_client", r.ndpi_risk_score_client()},
                      {"ndpi_risk_score_server", r.ndpi_risk_score_server()},
                      {"risks", std::vector<uint32_t>(r.risks().begin(), r.risks().end())}};
  }
  return j;
}

json FlowCountersJson(const v1::FlowCounters& c) {
  return json{{"digest", c.digest()},
              {"last_seen_at", c.last_seen_at()},
              {"local_bytes", c.local_bytes()},
              {"other_bytes", c.other_bytes()},
              {"local_packets", c.local_packets()},
              {"other_packets", c.other_packets()},
              {"total_bytes", c.total_bytes()},
              {"total_packets", c.total_packets()},
              {"detection_packets", c.detection_packets()}};
}

// The keys every flow message shares (netifyd-socket.md: interface, internal, established).
json FlowEnvelopeJson(const v1::FlowContext& context, json&& flow) {
  json j{{"established", context.established()},
         {"internal", context.internal()},
         {"flow", std::move(flow)}};
  PutString(j, "interface", context.interface());
  return j;
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

std::string EncodeNetifydPayload(const v1::Event& event, const v1::AgentIdentity* source) {
  json j;
  switch (event.body_case()) {
    case v1::Event::kAgentHello:
      j = HelloJson(event.agent_hello());
      break;
    case v1::Event::kAgentStatus:
      j = StatusJson(event.agent_status());
      break;
    case v1::Event::kDefinitions:
      j = json{{"protocols", TagsJson(event.definitions().protocols())},
               {"applications", TagsJson(event.definitions().applications())}};
      break;
    case v1::Event::kFlow:
      j = FlowEnvelopeJson(event.flow().context(), FlowMetadataJson(event.flow().flow()));
      break;
    case v1::Event::kFlowStats:
      j = FlowEnvelopeJson(event.flow_stats().context(),
                           FlowCountersJson(event.flow_stats().flow()));
      break;
    case v1::Event::kFlowPurge:
      j = FlowEnvelopeJson(event.flow_purge().context(),
                           FlowCountersJson(event.flow_purge().flow()));
      j["reason"] = PurgeReasonName(event.flow_purge().reason());
      break;
    case v1::Event::BODY_NOT_SET:
      j = json::object();
      break;
  }
  std::string_view type = NetifydTypeName(event);
  j["type"] = type.empty() ? "unknown" : std::string(type);
  if (source != nullptr) PutObject(j, "agent", AgentJson(*source));
  std::string payload = j.dump(-1, ' ', false, json::error_handler_t::replace);
  payload += '\n';
  return payload;
}

std::string FrameNetifydPayload(std::string_view payload) {
  std::string frame = "{\"length\": " + std::to_string(payload.size()) + "}\n";
  frame.append(payload);
  return frame;
}

std::string EncodeNetifydFrame(const v1::Event& event, const v1::AgentIdentity* source) {
  return FrameNetifydPayload(EncodeNetifydPayload(event, source));
}

Status NetifydFrameReader::Feed(std::string_view bytes) {
  if (!failure_.ok()) return failure_;
  buffer_.append(bytes);
  failure_ = Parse();
  return failure_;
}

bool NetifydFrameReader::Next(std::string* payload) {
  if (ready_.empty()) return false;
  *payload = std::move(ready_.front());
  ready_.pop_front();
  return true;
}

Status NetifydFrameReader::Parse() {
  static constexpr std::string_view kPrefix = "{\"length\": ";
  size_t consumed = 0;
  while (true) {
    std::string_view rest = std::string_view(buffer_).substr(consumed);
    size_t newline = rest.find('\n');
    if (newline == std::string_view::npos) {
      // A header is at most kPrefix + 20 digits + "}\n"; more without a newline is garbage.
      if (rest.size() > kPrefix.size() + 22) {
        return Status::Corruption("netifyd stream: header line too long");
      }
      break;
    }
    std::string_view header = rest.substr(0, newline);
    if (header.substr(0, kPrefix.size()) != kPrefix || header.size() < kPrefix.size() + 2 ||
        header.back() != '}') {
      return Status::Corruption("netifyd stream: bad header '" + std::string(header.substr(0, 64)) +
                                "'");
    }
    std::string_view digits = header.substr(kPrefix.size(), header.size() - kPrefix.size() - 1);
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
    ready_.emplace_back(payload);
    consumed += newline + 1 + n;
  }
  buffer_.erase(0, consumed);
  return Status::Ok();
}

}  // namespace flowgate
