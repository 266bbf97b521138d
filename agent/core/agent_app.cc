#include "core/agent_app.h"

#include <netinet/in.h>
#include <pcap/dlt.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "capture/packet_decoder.h"
#include "capture/packet_source.h"
#include "core/flow_table.h"
#include "core/local_networks.h"
#include "export/gateway_client.h"
#include "export/json_stream_sink.h"
#include "flowgate/common/identity.h"
#include "flowgate/common/log.h"
#include "flowgate/common/netifyd_json.h"

namespace flowgate::agent {
namespace {

// Reads the agent id kept in `state_dir`, making and saving one on first use.
Result<std::string> LoadOrCreateAgentId(const std::string& state_dir) {
  if (state_dir.empty()) return MakeUuid();
  std::error_code error;
  std::filesystem::create_directories(state_dir, error);
  if (error)
    return Status::IoError("cannot create state dir '" + state_dir + "': " + error.message());
  const std::string path = state_dir + "/agent-id";
  std::ifstream in(path);
  std::string id;
  if (in && std::getline(in, id) && id.size() == 36) return id;
  id = MakeUuid();
  std::ofstream out(path, std::ios::trunc);
  out << id << "\n";
  if (!out) return Status::IoError("cannot write '" + path + "'");
  return id;
}

// Per-interval capture counters, as netifyd's `stats` reports them.
class CaptureCounters {
 public:
  explicit CaptureCounters(int link_type) : ethernet_(link_type == DLT_EN10MB) {}

  void Count(const capture::DecodedPacket& p, uint32_t wire_length) {
    s_.set_raw(s_.raw() + 1);
    s_.set_wire_bytes(s_.wire_bytes() + wire_length);
    if (ethernet_) s_.set_ethernet(s_.ethernet() + 1);
    if (p.vlan_id != 0) s_.set_vlan(s_.vlan() + 1);
    s_.set_ip(s_.ip() + 1);
    (p.ip_version == 4 ? s_.set_ip4(s_.ip4() + 1) : s_.set_ip6(s_.ip6() + 1));
    s_.set_ip_bytes(s_.ip_bytes() + p.l3_length);
    if (p.is_fragment) s_.set_fragmented(s_.fragmented() + 1);
    if (p.tunnel_depth > 0) s_.set_tunneled(s_.tunneled() + 1);
    switch (p.ip_protocol) {
      case IPPROTO_TCP:
        s_.set_tcp(s_.tcp() + 1);
        break;
      case IPPROTO_UDP:
        s_.set_udp(s_.udp() + 1);
        break;
      case IPPROTO_ICMP:
      case IPPROTO_ICMPV6:
        s_.set_icmp(s_.icmp() + 1);
        break;
      default:
        s_.set_other(s_.other() + 1);
    }
  }

  void Discard(uint32_t wire_length) {
    s_.set_raw(s_.raw() + 1);
    s_.set_wire_bytes(s_.wire_bytes() + wire_length);
    s_.set_discarded(s_.discarded() + 1);
    s_.set_discarded_bytes(s_.discarded_bytes() + wire_length);
  }

  // Returns the interval's counters and starts a new interval.
  v1::InterfaceStats TakeInterval(const std::string& name) {
    v1::InterfaceStats out = std::move(s_);
    out.set_name(name);
    s_ = v1::InterfaceStats();
    return out;
  }

 private:
  bool ethernet_;
  v1::InterfaceStats s_;
};

class Agent {
 public:
  Agent(const AgentOptions& options, std::string agent_id) : options_(options) {
    identity_.set_id(std::move(agent_id));
    identity_.set_name(options.name.empty() ? HostName() : options.name);
    identity_.set_site(options.site);
    identity_.set_version(FlowgateVersion());
    identity_.set_boot_id(MakeUuid());
    identity_.set_hostname(HostName());
  }

  Status Run() {
    for (const std::string& text : options_.local_networks) {
      Result<IpNetwork> network = ParseIpNetwork(text);
      if (!network.ok())
        return Status::InvalidArgument("--local-net: " + network.status().message());
      local_networks_.Add(*network);
    }
    if (options_.json_out.empty() && options_.gateway.empty()) {
      return Status::InvalidArgument(
          "nothing to send to: give --json-out PATH|- or --gateway tcp://HOST:PORT");
    }
    Result<std::unique_ptr<capture::PacketSource>> source =
        capture::OpenCaptureFile(options_.capture_file);
    if (!source.ok()) return source.status();
    Result<std::unique_ptr<classify::NdpiModule>> ndpi =
        classify::NdpiModule::Create(options_.classifier);
    if (!ndpi.ok()) return ndpi.status();
    FLOWGATE_RETURN_IF_ERROR(OpenSinks());

    v1::Event hello;
    hello.mutable_agent_hello()->set_agent_version(FlowgateVersion());
    hello.mutable_agent_hello()->set_build_version(std::string("flowgate ") + FlowgateVersion());
    hello.mutable_agent_hello()->set_json_version(kNetifydJsonVersion);
    sink_->Emit(hello);

    FlowTableOptions table_options;
    table_options.agent_id = identity_.id();
    table_options.interface_name = (*source)->name();
    table_options.idle_timeout_ms = options_.idle_timeout_ms;
    table_options.tcp_idle_timeout_ms = options_.tcp_idle_timeout_ms;
    table_options.max_flows = options_.max_flows;
    FlowTable table(table_options, local_networks_, **ndpi, *sink_);
    Status capture_status = Capture(**source, table);

    table.PurgeAll(v1::PURGE_REASON_TERMINATED);
    EmitStatus(table, (*source)->name(), last_packet_ms_, /*final=*/true);
    Log(LogLevel::kInfo, "agent",
        "read " + std::to_string((*source)->counters().packets) + " packets from " +
            (*source)->name() + ", " + std::to_string(table.stats().created()) + " flows, " +
            std::to_string(discarded_) + " packets not decoded");
    Status delivered = sink_->Flush(options_.delivery_timeout_ms);
    return capture_status.ok() ? delivered : capture_status;
  }

 private:
  Status OpenSinks() {
    std::vector<std::unique_ptr<EventSink>> sinks;
    if (!options_.json_out.empty()) {
      auto json = JsonStreamSink::Open(options_.json_out);
      if (!json.ok()) return json.status();
      sinks.push_back(std::move(json).value());
    }
    if (!options_.gateway.empty()) {
      GatewayClientOptions client_options;
      client_options.endpoint = options_.gateway;
      client_options.identity = identity_;
      client_options.block_when_full = true;  // a file loses nothing by waiting
      auto client = GatewayClient::Create(std::move(client_options));
      if (!client.ok()) return client.status();
      sinks.push_back(std::move(client).value());
    }
    sink_ = std::make_unique<FanOutSink>(std::move(sinks));
    return Status::Ok();
  }

  Status Capture(capture::PacketSource& source, FlowTable& table) {
    CaptureCounters& counters = counters_.emplace(source.link_type());
    capture::FragmentTracker fragments;
    capture::RawPacket raw;
    capture::DecodedPacket packet;
    uint64_t next_expiry_ms = 0, next_update_ms = 0;
    while (true) {
      Result<bool> more = source.Next(&raw);
      if (!more.ok()) return more.status();
      if (!*more) return Status::Ok();
      const uint64_t now_ms = raw.timestamp_us / 1000;
      if (next_update_ms == 0) {
        next_update_ms = now_ms + options_.update_interval_ms;
        next_expiry_ms = now_ms + 1000;
      }
      last_packet_ms_ = std::max(last_packet_ms_, now_ms);
      capture::DecodeError error = capture::DecodePacket(source.link_type(), raw.data,
                                                         raw.captured_length, &fragments, &packet);
      if (error != capture::DecodeError::kNone) {
        counters.Discard(raw.wire_length);
        ++discarded_;
      } else {
        counters.Count(packet, raw.wire_length);
        table.OnPacket(packet, raw.timestamp_us, raw.wire_length);
      }
      // Timers run on packet time, so a capture file replays the same events every time.
      if (now_ms >= next_expiry_ms) {
        table.ExpireIdle(now_ms);
        next_expiry_ms = now_ms + 1000;
      }
      if (now_ms >= next_update_ms) {
        table.EmitStats();
        EmitStatus(table, source.name(), now_ms, /*final=*/false);
        next_update_ms = now_ms + options_.update_interval_ms;
      }
    }
  }

  void EmitStatus(const FlowTable& table, const std::string& interface_name, uint64_t now_ms,
                  bool final) {
    const ProcessUsage usage = CurrentProcessUsage();
    v1::Event event;
    v1::AgentStatus* s = event.mutable_agent_status();
    FillProcessStatus(usage, previous_usage_, static_cast<int64_t>(now_ms / 1000),
                      static_cast<uint32_t>(options_.update_interval_ms / 1000),
                      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                                std::chrono::steady_clock::now() - started_)
                                                .count()),
                      s);
    s->set_final(final);
    s->set_flow_count(table.size());
    s->set_flow_count_prev(previous_flow_count_);
    *s->mutable_flows() = table.stats();
    if (counters_) *s->add_stats() = counters_->TakeInterval(interface_name);
    previous_usage_ = usage;
    previous_flow_count_ = table.size();
    sink_->Emit(event);
  }

  const AgentOptions& options_;
  v1::AgentIdentity identity_;
  LocalNetworks local_networks_;
  std::unique_ptr<EventSink> sink_;
  std::optional<CaptureCounters> counters_;  // made when capture starts
  uint64_t last_packet_ms_ = 0;
  uint64_t discarded_ = 0;
  ProcessUsage previous_usage_;
  uint64_t previous_flow_count_ = 0;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace

Status RunAgent(const AgentOptions& options) {
  Result<std::string> id = LoadOrCreateAgentId(options.state_dir);
  if (!id.ok()) return id.status();
  Agent agent(options, *id);
  return agent.Run();
}

}  // namespace flowgate::agent
