// Helpers for the history (gRPC) integration tests: a real gateway with its gRPC API on a
// port of its choosing, a stub for it, and a deterministic data set with a brute-force
// model of what the store must answer.
#pragma once

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "../support/gateway_process.h"
#include "../support/temp_dir.h"
#include "../support/test_agent.h"
#include "flowgate/v1/flowgate.grpc.pb.h"

namespace flowgate::testing {

// A gateway with gRPC on 127.0.0.1:0 over `data_dir`; `extra` are more gateway flags.
class HistoryGateway {
 public:
  HistoryGateway(const std::string& data_dir, const std::string& socket_path,
                 std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--data-dir", data_dir, "--json-socket", socket_path};
    args.insert(args.end(), extra.begin(), extra.end());
    Start(std::move(args));
  }
  // A gateway started with exactly `args` (its store, sockets...) and gRPC on a free port.
  explicit HistoryGateway(std::vector<std::string> args) { Start(std::move(args)); }

  bool ready() const { return stub_ != nullptr; }
  GatewayProcess& process() { return *process_; }
  const std::string& address() const { return address_; }
  v1::FlowService::Stub& stub() { return *stub_; }
  std::string log() const { return process_->log(); }

 private:
  void Start(std::vector<std::string> args) {
    args.insert(args.end(), {"--grpc-listen", "127.0.0.1:0"});
    process_ = std::make_unique<GatewayProcess>(args);
    if (!process_->ready()) return;
    const std::string log = process_->log();
    const std::string needle = "gRPC listening on ";
    size_t at = log.find(needle);
    if (at == std::string::npos) return;
    at += needle.size();
    address_ = log.substr(at, log.find_first_of(" \n", at) - at);
    channel_ = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
    stub_ = v1::FlowService::NewStub(channel_);
  }

  std::unique_ptr<GatewayProcess> process_;
  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::FlowService::Stub> stub_;
};

// A client context that gives up after `seconds` and carries `token` if not empty.
inline std::unique_ptr<grpc::ClientContext> CallContext(const std::string& token = "",
                                                        int seconds = 60) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
  return context;
}

constexpr uint64_t kBaseMs = 1'700'000'000'000ULL;
constexpr uint64_t kHourMs = 3'600'000ULL;

// What the store should hold for one flow, computed from the events alone.
struct ModelFlow {
  v1::AgentIdentity agent;
  v1::FlowMetadata metadata;
  uint64_t first_ms = 0, last_ms = 0, total_bytes = 0, total_packets = 0;

  // The record as a filter sees it (the fields the filter and Top read).
  v1::FlowRecord Record() const {
    v1::FlowRecord record;
    record.mutable_agent()->set_id(agent.id());
    record.mutable_agent()->set_name(agent.name());
    record.mutable_agent()->set_site(agent.site());
    *record.mutable_metadata() = metadata;
    record.mutable_counters()->set_digest(metadata.digest());
    record.mutable_counters()->set_total_bytes(total_bytes);
    record.mutable_counters()->set_total_packets(total_packets);
    return record;
  }
  bool ActiveIn(uint64_t from_ms, uint64_t to_ms) const {
    return last_ms >= from_ms && (to_ms == 0 || first_ms < to_ms);
  }
};

using FlowKey = std::pair<std::string, std::string>;  // agent id, digest

// Generates flows for an agent and keeps the model. Flows start within `span_ms` of
// kBaseMs and some run for hours (stats far after the start), to exercise long flows.
class DataSet {
 public:
  explicit DataSet(uint32_t seed) : rng_(seed) {}

  // The events of `count` new flows numbered from `first_n`, for `agent`, in send order.
  std::vector<v1::Event> MakeFlows(const v1::AgentIdentity& agent, int first_n, int count,
                                   uint64_t span_ms = 6 * kHourMs) {
    static const char* kApps[] = {"YouTube", "Netflix", "Unknown", "Zoom", "WhatsApp"};
    static const char* kProtos[] = {"TLS", "QUIC", "HTTP", "DNS"};
    static const char* kHosts[] = {"www.youtube.com", "api.example.com", "cdn.example.com", "",
                                   "zoom.us"};
    static const char* kOthers[] = {"198.51.100.7", "203.0.113.9", "192.0.2.44", "8.8.8.8"};
    std::vector<v1::Event> events;
    for (int n = first_n; n < first_n + count; ++n) {
      v1::Event flow = MakeFlowEvent(n, Pick(kProtos), Pick(kApps), Pick(kHosts));
      v1::FlowMetadata* m = flow.mutable_flow()->mutable_flow();
      m->set_other_ip(Pick(kOthers));
      m->set_other_port(std::uniform_int_distribution<int>(0, 3)(rng_) == 0 ? 80 : 443);
      const uint64_t first = kBaseMs + Uniform(span_ms);
      m->set_first_seen_at(first);
      m->set_last_seen_at(first + Uniform(1000));
      ModelFlow& model = flows_[{agent.id(), m->digest()}];
      model.agent = agent;
      model.metadata = *m;
      model.first_ms = first;
      model.last_ms = m->last_seen_at();
      events.push_back(flow);
      // Stats over up to ~3 hours; some flows are long.
      const int stats = std::uniform_int_distribution<int>(0, 4)(rng_);
      uint64_t at = model.last_ms;
      for (int i = 0; i < stats; ++i) {
        if (i == 1 && Uniform(4) == 0) {
          // A refined detection: later traffic belongs to the new application.
          v1::Event refined = flow;
          v1::FlowMetadata* r = refined.mutable_flow()->mutable_flow();
          r->set_detected_application_name(Pick(kApps));
          r->set_detection_updated(true);
          r->set_last_seen_at(at);
          model.metadata = *r;
          events.push_back(refined);
        }
        at += Uniform(Uniform(2) == 0 ? 60'000 : kHourMs);
        const uint64_t bytes = 100 + Uniform(200'000), packets = 1 + Uniform(300);
        model.total_bytes += bytes;
        model.total_packets += packets;
        model.last_ms = std::max(model.last_ms, at);
        v1::Event stat;
        v1::FlowStatsEvent* s = stat.mutable_flow_stats();
        s->mutable_context()->set_interface("eth0");
        v1::FlowCounters* c = s->mutable_flow();
        c->set_digest(m->digest());
        c->set_last_seen_at(at);
        c->set_local_bytes(bytes / 2);
        c->set_other_bytes(bytes - bytes / 2);
        c->set_local_packets(packets / 3);
        c->set_other_packets(packets - packets / 3);
        c->set_total_bytes(model.total_bytes);
        c->set_total_packets(model.total_packets);
        events.push_back(stat);
      }
      if (Uniform(2) == 0) {
        // The purge reports the last deltas too.
        const uint64_t bytes = Uniform(5000), packets = Uniform(5);
        at += Uniform(120'000);
        model.total_bytes += bytes;
        model.total_packets += packets;
        model.last_ms = std::max(model.last_ms, at);
        v1::Event purge = MakePurgeEvent(n);
        v1::FlowCounters* c = purge.mutable_flow_purge()->mutable_flow();
        c->set_last_seen_at(at);
        c->set_other_bytes(bytes);
        c->set_local_packets(packets);
        c->set_total_bytes(model.total_bytes);
        c->set_total_packets(model.total_packets);
        events.push_back(purge);
      }
    }
    return events;
  }

  const std::map<FlowKey, ModelFlow>& flows() const { return flows_; }
  std::mt19937& rng() { return rng_; }
  uint64_t Uniform(uint64_t bound) {
    return std::uniform_int_distribution<uint64_t>(0, bound - 1)(rng_);
  }

 private:
  template <size_t N>
  const char* Pick(const char* (&options)[N]) {
    return options[Uniform(N)];
  }

  std::mt19937 rng_;
  std::map<FlowKey, ModelFlow> flows_;
};

// Sends `events` as batches of at most `batch` events; false if any is not acknowledged.
inline bool SendAll(TestAgent& agent, const std::vector<v1::Event>& events, size_t batch = 200) {
  for (size_t i = 0; i < events.size(); i += batch) {
    std::vector<v1::Event> part(
        events.begin() + static_cast<std::ptrdiff_t>(i),
        events.begin() + static_cast<std::ptrdiff_t>(std::min(events.size(), i + batch)));
    std::optional<v1::Ack> ack = agent.SendBatch(part);
    if (!ack || ack->status() != v1::ACK_STATUS_STORED) return false;
  }
  return true;
}

}  // namespace flowgate::testing
