#include "query_commands.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <thread>

#include "flowgate/common/filter.h"
#include "flowgate/common/flags.h"
#include "flowgate/common/netifyd_json.h"
#include "flowgate/common/text_file.h"
#include "flowgate/v1/flowgate.grpc.pb.h"

namespace flowgate::cli {
namespace {

constexpr uint32_t kPageSize = 1000;
constexpr std::chrono::milliseconds kFirstBackoff(250);
constexpr std::chrono::milliseconds kMaxBackoff(5000);

// The one place a grpc::Status becomes the CLI's message and exit code.
int Fail(const grpc::Status& status, const ClientOptions& client) {
  std::string what = status.error_message();
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    what = "cannot reach the gateway at " + client.gateway + " (" + what + ")";
  } else if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
    what = "the gateway wants a bearer token (--token-file): " + what;
  }
  std::fprintf(stderr, "flowgate: %s\n", what.c_str());
  return 1;
}

// A stub and the token every call carries.
class Client {
 public:
  static Result<Client> Connect(const ClientOptions& options) {
    Client client;
    std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
    if (!options.tls_ca_file.empty()) {
      Result<std::string> ca = ReadTextFile(options.tls_ca_file, "CA certificate");
      if (!ca.ok()) return ca.status();
      grpc::SslCredentialsOptions ssl;
      ssl.pem_root_certs = *ca;
      credentials = grpc::SslCredentials(ssl);
    }
    if (!options.token_file.empty()) {
      Result<std::string> token = ReadTokenFile(options.token_file);
      if (!token.ok()) return token.status();
      client.token_ = std::move(token).value();
    }
    client.stub_ = v1::FlowService::NewStub(grpc::CreateChannel(options.gateway, credentials));
    return client;
  }

  std::unique_ptr<grpc::ClientContext> Context(bool deadline = true) const {
    auto context = std::make_unique<grpc::ClientContext>();
    if (deadline) context->set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(1));
    if (!token_.empty()) context->AddMetadata("authorization", "Bearer " + token_);
    return context;
  }
  v1::FlowService::Stub& stub() const { return *stub_; }

 private:
  std::shared_ptr<v1::FlowService::Stub> stub_;
  std::string token_;
};

// Parses RFC 3339: 2026-11-29T20:00:00Z, 2026-11-29T21:00:00.250+01:00.
Result<uint64_t> ParseRfc3339(std::string_view text) {
  const Status bad = Status::InvalidArgument("'" + std::string(text) +
                                             "' is not an RFC 3339 time such as "
                                             "2026-11-29T20:00:00Z");
  std::tm tm{};
  int consumed = 0;
  const std::string s(text);
  if (std::sscanf(s.c_str(), "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon,
                  &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6) {
    return bad;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  int64_t ms = static_cast<int64_t>(timegm(&tm)) * 1000;
  size_t at = static_cast<size_t>(consumed);
  if (at < s.size() && s[at] == '.') {
    int64_t scale = 100;
    for (++at; at < s.size() && s[at] >= '0' && s[at] <= '9'; ++at, scale /= 10) {
      ms += (s[at] - '0') * scale;
    }
  }
  if (at < s.size() && (s[at] == 'Z' || s[at] == 'z') && at + 1 == s.size()) {
    return static_cast<uint64_t>(ms);
  }
  int hours = 0, minutes = 0;
  if (at < s.size() && (s[at] == '+' || s[at] == '-') && s.size() == at + 6 &&
      std::sscanf(s.c_str() + at + 1, "%2d:%2d", &hours, &minutes) == 2) {
    const int64_t offset = (hours * 60 + minutes) * 60'000;
    return static_cast<uint64_t>(s[at] == '+' ? ms - offset : ms + offset);
  }
  return bad;
}

std::string FormatTime(uint64_t ms) {
  if (ms == 0) return "-";
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

uint64_t NowMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// The flags every history command shares: the time range, the filter and the output form.
struct RangeFlags {
  uint64_t since_ms = 0;
  std::string from, to, filter;
  bool json = false;

  void Add(FlagParser& flags, bool with_range) {
    if (with_range) {
      flags.AddDuration("since", "Only flows active in the last DURATION (e.g. 1h, 7d)", &since_ms);
      flags.AddString("from", "", "TIME",
                      "Start of the range, RFC 3339 (e.g. 2026-11-29T20:00:00Z)", &from);
      flags.AddString("to", "", "TIME", "End of the range (exclusive), RFC 3339; default: now",
                      &to);
    }
    flags.AddString("filter", "", "EXPR", "Filter expression, e.g. 'app == \"YouTube\"'", &filter);
    flags.AddBool("json", "One JSON object per line instead of a table", &json);
  }

  Status Fill(v1::TimeRange* range) const {
    if (since_ms != 0 && !from.empty()) {
      return Status::InvalidArgument("give --since or --from, not both");
    }
    if (since_ms != 0) range->set_from_ms(NowMs() - std::min(since_ms, NowMs()));
    if (!from.empty()) {
      Result<uint64_t> ms = ParseRfc3339(from);
      if (!ms.ok()) return Status::InvalidArgument("--from: " + ms.status().message());
      range->set_from_ms(*ms);
    }
    if (!to.empty()) {
      Result<uint64_t> ms = ParseRfc3339(to);
      if (!ms.ok()) return Status::InvalidArgument("--to: " + ms.status().message());
      range->set_to_ms(*ms);
    }
    if (Result<Filter> parsed = Filter::Parse(filter); !parsed.ok()) {
      return Status::InvalidArgument("--filter: " + parsed.status().message());
    }
    return Status::Ok();
  }
};

std::string AgentName(const v1::AgentIdentity& agent) {
  return agent.name().empty() ? agent.id() : agent.name();
}

std::string Endpoint(const std::string& ip, uint32_t port) {
  return (ip.find(':') != std::string::npos ? "[" + ip + "]" : ip) + ":" + std::to_string(port);
}

int Query(const Client& client, const ClientOptions& options, int argc, const char* const* argv) {
  RangeFlags range_flags;
  uint64_t limit = 100;
  std::string order = "first-seen-desc";
  FlagParser flags("flowgate query", "flowgate query [--since 1h | --from T --to T] [options]",
                   "Flows active at any time in the range, newest first.");
  range_flags.Add(flags, true);
  flags.AddUint("limit", "N", "Print at most N flows (default: 100)", &limit, 1, 100'000'000);
  flags.AddString("order", "", "ORDER", "first-seen-desc, first-seen-asc or bytes-desc", &order);
  v1::QueryFlowsRequest request;
  std::optional<int> exit = ParseMainFlags(flags, argc, argv, [&]() -> Status {
    if (order == "first-seen-desc") {
      request.set_order(v1::FLOW_ORDER_FIRST_SEEN_DESC);
    } else if (order == "first-seen-asc") {
      request.set_order(v1::FLOW_ORDER_FIRST_SEEN_ASC);
    } else if (order == "bytes-desc") {
      request.set_order(v1::FLOW_ORDER_BYTES_DESC);
    } else {
      return Status::InvalidArgument("--order takes first-seen-desc, first-seen-asc or bytes-desc");
    }
    return range_flags.Fill(request.mutable_range());
  });
  if (exit) return *exit;
  request.set_filter(range_flags.filter);
  if (!range_flags.json) {
    std::printf("%-20s %-12s %-16s %-12s %-22s %-22s %-28s %12s %9s\n", "FIRST SEEN", "AGENT",
                "APPLICATION", "PROTOCOL", "LOCAL", "OTHER", "HOST", "BYTES", "PACKETS");
  }
  uint64_t printed = 0;
  while (printed < limit) {
    request.set_limit(static_cast<uint32_t>(std::min<uint64_t>(kPageSize, limit - printed)));
    v1::QueryFlowsResponse response;
    grpc::Status status = client.stub().QueryFlows(client.Context().get(), request, &response);
    if (!status.ok()) return Fail(status, options);
    for (const v1::FlowRecord& flow : response.flows()) {
      const v1::FlowMetadata& m = flow.metadata();
      if (range_flags.json) {
        std::printf("%s\n", ToJson(flow).c_str());
      } else {
        std::printf("%-20s %-12s %-16s %-12s %-22s %-22s %-28s %12llu %9llu\n",
                    FormatTime(m.first_seen_at()).c_str(), AgentName(flow.agent()).c_str(),
                    m.detected_application_name().c_str(), m.detected_protocol_name().c_str(),
                    Endpoint(m.local_ip(), m.local_port()).c_str(),
                    Endpoint(m.other_ip(), m.other_port()).c_str(), m.host_server_name().c_str(),
                    static_cast<unsigned long long>(flow.counters().total_bytes()),
                    static_cast<unsigned long long>(flow.counters().total_packets()));
      }
      ++printed;
    }
    if (response.next_page_token().empty()) break;
    request.set_page_token(response.next_page_token());
  }
  return 0;
}

int Top(const Client& client, const ClientOptions& options, int argc, const char* const* argv) {
  RangeFlags range_flags;
  uint64_t limit = 10;
  std::string by = "application", metric = "bytes", source = "auto";
  FlagParser flags(
      "flowgate top", "flowgate top [--by WHAT] [--metric M] [--source S] [options]",
      "The biggest groups in the range. Two sources answer two questions:\n"
      "  rollups  the traffic inside the range, by whole minutes: bytes and packets reported\n"
      "           in the minutes that overlap it; FLOWS counts flows first seen in them.\n"
      "           Fast over days. For --by application, protocol, host and agent, with a\n"
      "           filter on agent, site and the group's own field only.\n"
      "  flows    the flows active at any time in the range, each with its whole-life\n"
      "           totals; FLOWS counts those flows. Reads every such flow.\n"
      "  auto     (default) rollups where they can answer, else flows.");
  range_flags.Add(flags, true);
  flags.AddString("by", "", "WHAT", "application, protocol, host, local-ip, other-ip or agent",
                  &by);
  flags.AddString("metric", "", "M", "bytes, packets or flows", &metric);
  flags.AddUint("limit", "N", "Entries (default: 10)", &limit, 1, 10'000);
  flags.AddString("source", "", "S", "auto, rollups or flows (see above)", &source);
  v1::TopRequest request;
  std::optional<int> exit = ParseMainFlags(flags, argc, argv, [&]() -> Status {
    static const std::pair<const char*, v1::GroupBy> kBy[] = {
        {"application", v1::GROUP_BY_APPLICATION},
        {"protocol", v1::GROUP_BY_PROTOCOL},
        {"host", v1::GROUP_BY_HOST},
        {"local-ip", v1::GROUP_BY_LOCAL_ADDRESS},
        {"other-ip", v1::GROUP_BY_OTHER_ADDRESS},
        {"agent", v1::GROUP_BY_AGENT}};
    static const std::pair<const char*, v1::Metric> kMetric[] = {
        {"bytes", v1::METRIC_BYTES}, {"packets", v1::METRIC_PACKETS}, {"flows", v1::METRIC_FLOWS}};
    auto by_it =
        std::find_if(std::begin(kBy), std::end(kBy), [&](auto& p) { return by == p.first; });
    if (by_it == std::end(kBy)) {
      return Status::InvalidArgument(
          "--by takes application, protocol, host, local-ip, other-ip or agent");
    }
    auto m_it = std::find_if(std::begin(kMetric), std::end(kMetric),
                             [&](auto& p) { return metric == p.first; });
    if (m_it == std::end(kMetric)) {
      return Status::InvalidArgument("--metric takes bytes, packets or flows");
    }
    static const std::pair<const char*, v1::TopSource> kSource[] = {
        {"auto", v1::TOP_SOURCE_AUTO},
        {"flows", v1::TOP_SOURCE_FLOWS},
        {"rollups", v1::TOP_SOURCE_ROLLUPS}};
    auto s_it = std::find_if(std::begin(kSource), std::end(kSource),
                             [&](auto& p) { return source == p.first; });
    if (s_it == std::end(kSource)) {
      return Status::InvalidArgument("--source takes auto, rollups or flows");
    }
    request.set_source(s_it->second);
    request.set_group_by(by_it->second);
    request.set_metric(m_it->second);
    return range_flags.Fill(request.mutable_range());
  });
  if (exit) return *exit;
  request.set_filter(range_flags.filter);
  request.set_limit(static_cast<uint32_t>(limit));
  v1::TopResponse response;
  grpc::Status status = client.stub().Top(client.Context().get(), request, &response);
  if (!status.ok()) return Fail(status, options);
  if (!range_flags.json) {
    // Which question was answered, since the two sources count differently.
    if (response.source() == v1::TOP_SOURCE_ROLLUPS) {
      std::printf("# from rollups: traffic in the minutes from %s to %s; FLOWS = new flows\n",
                  response.rollup_range().from_ms() == 0
                      ? "the start"
                      : FormatTime(response.rollup_range().from_ms()).c_str(),
                  response.rollup_range().to_ms() == 0
                      ? "now"
                      : FormatTime(response.rollup_range().to_ms()).c_str());
    } else {
      std::printf("# from flows active in the range: whole-life totals; FLOWS = active flows%s%s\n",
                  response.flows_reason().empty() ? "" : "; rollups not used: ",
                  response.flows_reason().c_str());
    }
    std::printf("%-40s %16s %12s %10s\n", by.c_str(), "BYTES", "PACKETS", "FLOWS");
  }
  for (const v1::TopEntry& e : response.entries()) {
    if (range_flags.json) {
      std::printf("%s\n", ToJson(e).c_str());
    } else {
      std::printf("%-40s %16llu %12llu %10llu\n", e.key().empty() ? "(none)" : e.key().c_str(),
                  static_cast<unsigned long long>(e.bytes()),
                  static_cast<unsigned long long>(e.packets()),
                  static_cast<unsigned long long>(e.flows()));
    }
  }
  return 0;
}

void PrintEvent(const v1::StoredEvent& stored, bool json) {
  if (json) {
    std::printf("%s\n", ToJson(stored).c_str());
    return;
  }
  const v1::Event& e = stored.event();
  std::string detail;
  if (e.has_flow()) {
    const v1::FlowMetadata& m = e.flow().flow();
    detail = m.detected_protocol_name() + "." + m.detected_application_name() + " " +
             Endpoint(m.local_ip(), m.local_port()) + " -> " +
             Endpoint(m.other_ip(), m.other_port()) + " " + m.host_server_name();
  } else if (e.has_flow_stats()) {
    detail = e.flow_stats().flow().digest() + " bytes " +
             std::to_string(e.flow_stats().flow().total_bytes());
  } else if (e.has_flow_purge()) {
    detail = e.flow_purge().flow().digest() + " " +
             std::string(PurgeReasonName(e.flow_purge().reason()));
  }
  std::printf("%10llu %s %-12s %-12s %s\n",
              static_cast<unsigned long long>(stored.gateway_sequence()),
              FormatTime(stored.received_at()).c_str(), AgentName(stored.agent()).c_str(),
              std::string(NetifydTypeName(e)).c_str(), detail.c_str());
  std::fflush(stdout);
}

// Follows Subscribe; when the stream breaks (a gateway restart), reconnects with backoff
// and resumes after the last sequence printed, so nothing is printed twice or skipped.
int Tail(const Client& client, const ClientOptions& options, int argc, const char* const* argv) {
  RangeFlags range_flags;
  uint64_t after = 0, count = 0;
  bool from_start = false;
  FlagParser flags("flowgate tail", "flowgate tail [--filter EXPR] [--after SEQ] [options]",
                   "Follows the gateway's merged event stream; resumes after a gateway restart.");
  range_flags.Add(flags, false);
  flags.AddUint("after", "SEQ", "Start after gateway sequence SEQ (default: from now)", &after, 0,
                UINT64_MAX);
  flags.AddBool("from-start", "Start with the oldest event stored", &from_start);
  flags.AddUint("count", "N", "Exit after N events (default: never)", &count, 0, UINT64_MAX);
  std::optional<int> exit = ParseMainFlags(flags, argc, argv, [&]() -> Status {
    v1::TimeRange unused;
    return range_flags.Fill(&unused);
  });
  if (exit) return *exit;
  uint64_t printed = 0;
  std::chrono::milliseconds backoff = kFirstBackoff;
  // Once the gateway named a position, every reconnect resumes from it: a cursor of 0 (the
  // log was empty) means from the start, never "from now", which would skip what arrived
  // while the stream was down.
  bool have_cursor = after != 0;
  while (true) {
    v1::SubscribeRequest request;
    request.set_filter(range_flags.filter);
    request.set_after_sequence(after);
    request.set_from_start(after == 0 && (from_start || have_cursor));
    std::unique_ptr<grpc::ClientContext> context = client.Context(false);
    std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader =
        client.stub().Subscribe(context.get(), request);
    v1::SubscribeResponse response;
    while (reader->Read(&response)) {
      backoff = kFirstBackoff;
      if (response.dropped() != 0) {
        std::fprintf(stderr, "flowgate: %llu events dropped by the gateway\n",
                     static_cast<unsigned long long>(response.dropped()));
      }
      for (const v1::StoredEvent& event : response.events()) {
        PrintEvent(event, range_flags.json);
        after = event.gateway_sequence();
        if (count != 0 && ++printed == count) {
          context->TryCancel();
          (void)reader->Finish();
          return 0;
        }
      }
      after = std::max(after, response.cursor());
      have_cursor = true;
    }
    grpc::Status status = reader->Finish();
    const grpc::StatusCode code = status.error_code();
    if (code == grpc::StatusCode::INVALID_ARGUMENT || code == grpc::StatusCode::UNAUTHENTICATED ||
        code == grpc::StatusCode::PERMISSION_DENIED) {
      return Fail(status, options);
    }
    std::fprintf(stderr, "flowgate: stream ended (%s); reconnecting after sequence %llu\n",
                 status.ok() ? "closed by the gateway" : status.error_message().c_str(),
                 static_cast<unsigned long long>(after));
    std::this_thread::sleep_for(backoff);  // backoff between reconnects, not synchronisation
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

int Agents(const Client& client, const ClientOptions& options, int argc, const char* const* argv) {
  bool json = false;
  FlagParser flags("flowgate agents", "flowgate agents [--json]",
                   "The agents that ever delivered to the gateway.");
  flags.AddBool("json", "One JSON object per line instead of a table", &json);
  if (std::optional<int> exit = ParseMainFlags(flags, argc, argv, nullptr)) return *exit;
  v1::ListAgentsResponse response;
  grpc::Status status = client.stub().ListAgents(client.Context().get(), {}, &response);
  if (!status.ok()) return Fail(status, options);
  if (!json) {
    std::printf("%-16s %-36s %-12s %-20s %12s %8s\n", "NAME", "ID", "SITE", "LAST SEEN", "EVENTS",
                "GAPS");
  }
  for (const v1::AgentRecord& agent : response.agents()) {
    if (json) {
      std::printf("%s\n", ToJson(agent).c_str());
      continue;
    }
    std::printf("%-16s %-36s %-12s %-20s %12llu %8llu\n", agent.identity().name().c_str(),
                agent.identity().id().c_str(), agent.identity().site().c_str(),
                FormatTime(agent.last_seen_ms()).c_str(),
                static_cast<unsigned long long>(agent.events_applied()),
                static_cast<unsigned long long>(agent.sequence_gaps()));
  }
  return 0;
}

int Flow(const Client& client, const ClientOptions& options, int argc, const char* const* argv) {
  std::string agent;
  FlagParser flags("flowgate flow", "flowgate flow DIGEST [--agent ID]",
                   "One stored flow by digest, as JSON.");
  flags.AddString("agent", "", "ID", "The agent's id, when several agents may hold the digest",
                  &agent);
  std::optional<int> exit = ParseMainFlags(
      flags, argc, argv,
      [&]() -> Status {
        if (flags.positional().size() != 1) {
          return Status::InvalidArgument("flow takes one DIGEST; see flowgate flow --help");
        }
        return Status::Ok();
      },
      true);
  if (exit) return *exit;
  v1::GetFlowRequest request;
  request.set_digest(flags.positional().front());
  request.set_agent_id(agent);
  v1::FlowRecord flow;
  grpc::Status status = client.stub().GetFlow(client.Context().get(), request, &flow);
  if (!status.ok()) return Fail(status, options);
  std::printf("%s\n", ToJson(flow).c_str());
  return 0;
}

}  // namespace

bool IsQueryCommand(const std::string& command) {
  for (const char* known : {"query", "top", "tail", "agents", "flow"}) {
    if (command == known) return true;
  }
  return false;
}

int RunQueryCommand(const ClientOptions& options, int argc, const char* const* argv) {
  Result<Client> client = Client::Connect(options);
  if (!client.ok()) {
    std::fprintf(stderr, "flowgate: %s\n", client.status().message().c_str());
    return 2;
  }
  const std::string command = argv[0];
  if (command == "query") return Query(*client, options, argc, argv);
  if (command == "top") return Top(*client, options, argc, argv);
  if (command == "tail") return Tail(*client, options, argc, argv);
  if (command == "agents") return Agents(*client, options, argc, argv);
  return Flow(*client, options, argc, argv);
}

}  // namespace flowgate::cli
