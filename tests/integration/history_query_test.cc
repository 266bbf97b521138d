// QueryFlows, Top, GetFlow and ListAgents against a real gateway over gRPC, compared with a
// brute-force pass over the events the test sent; bad arguments and the bearer token.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <set>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "flowgate/common/filter.h"
#include "history_support.h"

namespace flowgate::testing {
namespace {

constexpr int kFlowsPerAgent = 250;

// Filters over every field family: strings, globs, addresses, ports, numbers, booleans.
struct TestFilter {
  const char* text;
  // The groups rollups can answer under this filter (agent, site and the group's own field
  // only): a = application, p = protocol, h = host, g = agent.
  const char* rollup_groups;
};
constexpr TestFilter kFilters[] = {
    {"", "aphg"},
    {"app == \"YouTube\"", "a"},
    {"app in (\"Netflix\", \"Zoom\") and bytes > 100000", ""},
    {"proto == \"QUIC\" or proto == \"DNS\"", "p"},
    {"agent == \"site-b\"", "aphg"},
    {"not agent == \"site-a\" and packets < 300", ""},
    {"ip in 10.0.0.0/24", ""},
    {"other_ip == 203.0.113.9 and port == 80", ""},
    {"host ~ \"*.example.com\"", "h"},
    {"host !~ \"*.example.com\" and app != \"Unknown\"", ""},
    {"bytes >= 200k", ""},
    {"site == \"site-c\" or app == \"WhatsApp\"", "a"},
    {"local_port < 1100", ""},
    {"not (agent in (\"site-a\", \"site-c\") or app not in (\"Zoom\", \"Unknown\"))", "a"},
    {"site != \"site-b\" and not host == \"\"", "h"},
};

const TestFilter& RandomTestFilter(DataSet& data) {
  return kFilters[data.Uniform(std::size(kFilters))];
}

std::string RandomFilter(DataSet& data) { return RandomTestFilter(data).text; }

bool RollupsCanAnswer(const TestFilter& filter, v1::GroupBy by) {
  const char* code = by == v1::GROUP_BY_APPLICATION ? "a"
                     : by == v1::GROUP_BY_PROTOCOL  ? "p"
                     : by == v1::GROUP_BY_HOST      ? "h"
                     : by == v1::GROUP_BY_AGENT     ? "g"
                                                    : nullptr;
  return code != nullptr &&
         std::string_view(filter.rollup_groups).find(code[0]) != std::string::npos;
}

// A range inside (and around) the data set's six hours plus their long tails.
v1::TimeRange RandomRange(DataSet& data) {
  v1::TimeRange range;
  const uint64_t from = kBaseMs - kHourMs + data.Uniform(9 * kHourMs);
  range.set_from_ms(data.Uniform(8) == 0 ? 0 : from);
  range.set_to_ms(data.Uniform(5) == 0 ? 0 : from + 1 + data.Uniform(3 * kHourMs));
  return range;
}

std::vector<FlowKey> ExpectedFlows(const DataSet& data, const v1::TimeRange& range,
                                   const Filter& filter, v1::FlowOrder order) {
  std::vector<std::pair<uint64_t, FlowKey>> matching;
  for (const auto& [key, flow] : data.flows()) {
    if (!flow.ActiveIn(range.from_ms(), range.to_ms())) continue;
    v1::FlowRecord record = flow.Record();
    if (!filter.Matches(FilterSubject::FromFlow(record))) continue;
    matching.push_back({flow.first_ms, key});
  }
  std::sort(matching.begin(), matching.end(), [order](const auto& a, const auto& b) {
    if (a.first != b.first) {
      return order == v1::FLOW_ORDER_FIRST_SEEN_ASC ? a.first < b.first : a.first > b.first;
    }
    return a.second < b.second;
  });
  std::vector<FlowKey> keys;
  for (const auto& m : matching) keys.push_back(m.second);
  return keys;
}

std::string TopKey(const ModelFlow& flow, v1::GroupBy by) {
  switch (by) {
    case v1::GROUP_BY_PROTOCOL:
      return flow.metadata.detected_protocol_name();
    case v1::GROUP_BY_HOST:
      return flow.metadata.host_server_name();
    case v1::GROUP_BY_LOCAL_ADDRESS:
      return flow.metadata.local_ip();
    case v1::GROUP_BY_OTHER_ADDRESS:
      return flow.metadata.other_ip();
    case v1::GROUP_BY_AGENT:
      return flow.agent.name();
    default:
      return flow.metadata.detected_application_name();
  }
}

using TopRows = std::vector<std::tuple<std::string, uint64_t, uint64_t, uint64_t>>;

// Sorted by the request's metric, largest first, then by key; the first `limit`.
TopRows Ranked(const std::map<std::string, std::tuple<uint64_t, uint64_t, uint64_t>>& groups,
               const v1::TopRequest& request) {
  TopRows entries;
  for (const auto& [key, v] : groups) {
    entries.emplace_back(key, std::get<0>(v), std::get<1>(v), std::get<2>(v));
  }
  auto metric = [&](const auto& e) {
    return request.metric() == v1::METRIC_PACKETS ? std::get<2>(e)
           : request.metric() == v1::METRIC_FLOWS ? std::get<3>(e)
                                                  : std::get<1>(e);
  };
  std::sort(entries.begin(), entries.end(), [&](const auto& a, const auto& b) {
    return metric(a) != metric(b) ? metric(a) > metric(b) : std::get<0>(a) < std::get<0>(b);
  });
  if (entries.size() > request.limit()) entries.resize(request.limit());
  return entries;
}

// Top from flows: the flows active in the range, each once with its totals.
TopRows ExpectedTopFromFlows(const DataSet& data, const v1::TopRequest& request,
                             const Filter& filter) {
  std::map<std::string, std::tuple<uint64_t, uint64_t, uint64_t>> groups;
  for (const auto& [key, flow] : data.flows()) {
    if (!flow.ActiveIn(request.range().from_ms(), request.range().to_ms())) continue;
    v1::FlowRecord record = flow.Record();
    if (!filter.Matches(FilterSubject::FromFlow(record))) continue;
    auto& [bytes, packets, flows] = groups[TopKey(flow, request.group_by())];
    bytes += flow.total_bytes;
    packets += flow.total_packets;
    flows += 1;
  }
  return Ranked(groups, request);
}

// Top from rollups, replaying the events as sent: byte and packet deltas at the minute of
// their report, attributed to the flow's detection at that time; new flows at the minute
// of their first sighting; the minutes that overlap the range.
TopRows ExpectedTopFromRollups(
    const std::vector<std::pair<v1::AgentIdentity, std::vector<v1::Event>>>& sent,
    const v1::TopRequest& request, const Filter& filter) {
  constexpr uint64_t kMinuteMs = 60'000;
  const uint64_t from = request.range().from_ms() / kMinuteMs * kMinuteMs;
  const uint64_t to = request.range().to_ms();
  std::map<std::string, std::tuple<uint64_t, uint64_t, uint64_t>> groups;
  for (const auto& [agent, events] : sent) {
    std::map<std::string, v1::FlowMetadata> detection;  // digest -> latest flow event
    auto add = [&](const v1::FlowMetadata& m, uint64_t at, uint64_t bytes, uint64_t packets,
                   uint64_t flows) {
      const uint64_t minute = at / kMinuteMs * kMinuteMs;
      if (minute < from || (to != 0 && minute >= to)) return;
      ModelFlow flow;
      flow.agent = agent;
      flow.metadata = m;
      if (!filter.Matches(FilterSubject::FromFlow(flow.Record()))) return;
      auto& [b, p, f] = groups[TopKey(flow, request.group_by())];
      b += bytes;
      p += packets;
      f += flows;
    };
    for (const v1::Event& event : events) {
      if (event.has_flow()) {
        const v1::FlowMetadata& m = event.flow().flow();
        detection[m.digest()] = m;
        if (!m.detection_updated()) add(m, m.first_seen_at(), 0, 0, 1);
      } else if (event.has_flow_stats() || event.has_flow_purge()) {
        const v1::FlowCounters& c =
            event.has_flow_stats() ? event.flow_stats().flow() : event.flow_purge().flow();
        add(detection[c.digest()], c.last_seen_at(), c.local_bytes() + c.other_bytes(),
            c.local_packets() + c.other_packets(), 0);
      }
    }
  }
  // Groups that only saw zero deltas outside the range are not rows.
  for (auto it = groups.begin(); it != groups.end();) {
    it = it->second == std::make_tuple(0, 0, 0) ? groups.erase(it) : std::next(it);
  }
  return Ranked(groups, request);
}

class HistoryQueryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    gateway_ = std::make_unique<HistoryGateway>(dir_.Sub("data"), dir_.Sub("sock"));
    ASSERT_TRUE(gateway_->ready()) << gateway_->log();
    for (const char* site : {"site-a", "site-b", "site-c"}) {
      agents_.push_back(std::make_unique<TestAgent>(gateway_->process().endpoint(), site, site));
      sent_.emplace_back(agents_.back()->identity(),
                         data_.MakeFlows(agents_.back()->identity(), next_n_, kFlowsPerAgent));
      ASSERT_TRUE(SendAll(*agents_.back(), sent_.back().second)) << gateway_->log();
      next_n_ += kFlowsPerAgent;
    }
  }

  // Every page of a query, with the page size given.
  std::vector<FlowKey> QueryAll(v1::QueryFlowsRequest request, std::set<FlowKey>* duplicates) {
    std::vector<FlowKey> keys;
    std::set<FlowKey> seen;
    for (int page = 0; page < 100'000; ++page) {
      v1::QueryFlowsResponse response;
      grpc::Status status = gateway_->stub().QueryFlows(CallContext().get(), request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) break;
      for (const v1::FlowRecord& flow : response.flows()) {
        FlowKey key{flow.agent().id(), flow.counters().digest()};
        if (!seen.insert(key).second && duplicates != nullptr) duplicates->insert(key);
        keys.push_back(key);
      }
      if (response.next_page_token().empty()) break;
      request.set_page_token(response.next_page_token());
    }
    return keys;
  }

  TempDir dir_;
  DataSet data_{20261129};
  std::unique_ptr<HistoryGateway> gateway_;
  std::vector<std::unique_ptr<TestAgent>> agents_;
  std::vector<std::pair<v1::AgentIdentity, std::vector<v1::Event>>> sent_;  // in send order
  int next_n_ = 1;
};

TEST_F(HistoryQueryTest, QueryFlowsMatchesBruteForceForRandomFiltersAndRanges) {
  for (int round = 0; round < 40; ++round) {
    v1::QueryFlowsRequest request;
    *request.mutable_range() = RandomRange(data_);
    request.set_filter(RandomFilter(data_));
    request.set_order(data_.Uniform(2) == 0 ? v1::FLOW_ORDER_FIRST_SEEN_ASC
                                            : v1::FLOW_ORDER_FIRST_SEEN_DESC);
    request.set_limit(static_cast<uint32_t>(1 + data_.Uniform(120)));
    Result<Filter> filter = Filter::Parse(request.filter());
    ASSERT_TRUE(filter.ok()) << filter.status().message();
    const std::vector<FlowKey> expected =
        ExpectedFlows(data_, request.range(), *filter, request.order());
    const std::vector<FlowKey> got = QueryAll(request, nullptr);
    EXPECT_EQ(got, expected) << "round " << round << ": filter '" << request.filter() << "' from "
                             << request.range().from_ms() << " to " << request.range().to_ms()
                             << " limit " << request.limit();
  }
}

TEST_F(HistoryQueryTest, TopMatchesBruteForceForRandomFiltersAndRanges) {
  int from_rollups = 0, from_flows = 0;
  for (int round = 0; round < 150; ++round) {
    v1::TopRequest request;
    *request.mutable_range() = RandomRange(data_);
    const TestFilter& test_filter = RandomTestFilter(data_);
    request.set_filter(test_filter.text);
    request.set_group_by(static_cast<v1::GroupBy>(data_.Uniform(6)));
    request.set_metric(static_cast<v1::Metric>(data_.Uniform(3)));
    request.set_limit(static_cast<uint32_t>(1 + data_.Uniform(20)));
    request.set_source(static_cast<v1::TopSource>(data_.Uniform(3)));
    const bool rollups_can = RollupsCanAnswer(test_filter, request.group_by());
    Result<Filter> filter = Filter::Parse(request.filter());
    ASSERT_TRUE(filter.ok());
    const std::string what = "round " + std::to_string(round) + ": filter '" + request.filter() +
                             "' group " + std::to_string(request.group_by()) + " metric " +
                             std::to_string(request.metric()) + " source " +
                             std::to_string(request.source()) + " from " +
                             std::to_string(request.range().from_ms()) + " to " +
                             std::to_string(request.range().to_ms());
    v1::TopResponse response;
    grpc::Status status = gateway_->stub().Top(CallContext().get(), request, &response);
    if (request.source() == v1::TOP_SOURCE_ROLLUPS && !rollups_can) {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << what;
      EXPECT_NE(status.error_message().find("rollups cannot"), std::string::npos)
          << status.error_message();
      continue;
    }
    ASSERT_TRUE(status.ok()) << status.error_message() << " " << what;
    const bool expect_rollups = request.source() == v1::TOP_SOURCE_ROLLUPS ||
                                (request.source() == v1::TOP_SOURCE_AUTO && rollups_can);
    ASSERT_EQ(response.source(), expect_rollups ? v1::TOP_SOURCE_ROLLUPS : v1::TOP_SOURCE_FLOWS)
        << what;
    TopRows got;
    for (const v1::TopEntry& e : response.entries()) {
      got.emplace_back(e.key(), e.bytes(), e.packets(), e.flows());
    }
    if (expect_rollups) {
      ++from_rollups;
      EXPECT_EQ(response.rollup_range().from_ms(), request.range().from_ms() / 60'000 * 60'000);
      EXPECT_EQ(response.rollup_range().to_ms() % 60'000, 0u);
      EXPECT_EQ(got, ExpectedTopFromRollups(sent_, request, *filter)) << what;
    } else {
      ++from_flows;
      if (request.source() == v1::TOP_SOURCE_AUTO) {
        EXPECT_FALSE(response.flows_reason().empty()) << what;
      }
      EXPECT_EQ(got, ExpectedTopFromFlows(data_, request, *filter)) << what;
    }
  }
  EXPECT_GT(from_rollups, 10);
  EXPECT_GT(from_flows, 10);
}

// Over a range that holds every event, both sources agree on bytes and new flows, since
// every flow was first seen inside it and reported all its traffic inside it.
TEST_F(HistoryQueryTest, TopFromRollupsAndFromFlowsAgreeOverAllTime) {
  for (v1::GroupBy by : {v1::GROUP_BY_APPLICATION, v1::GROUP_BY_AGENT}) {
    std::map<v1::TopSource, TopRows> answers;
    for (v1::TopSource source : {v1::TOP_SOURCE_ROLLUPS, v1::TOP_SOURCE_FLOWS}) {
      v1::TopRequest request;
      request.set_group_by(by);
      request.set_limit(100);
      request.set_source(source);
      v1::TopResponse response;
      grpc::Status status = gateway_->stub().Top(CallContext().get(), request, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
      for (const v1::TopEntry& e : response.entries()) {
        answers[source].emplace_back(e.key(), e.bytes(), e.packets(), e.flows());
      }
    }
    if (by == v1::GROUP_BY_AGENT) {
      EXPECT_EQ(answers[v1::TOP_SOURCE_ROLLUPS], answers[v1::TOP_SOURCE_FLOWS]);
    } else {
      // By application a refined flow's earlier traffic stays with its first application
      // (and the flow with the application of its first detection): only sums agree.
      auto sums = [](const TopRows& rows) {
        std::tuple<uint64_t, uint64_t, uint64_t> sum;
        for (const auto& [key, bytes, packets, flows] : rows) {
          sum = {std::get<0>(sum) + bytes, std::get<1>(sum) + packets, std::get<2>(sum) + flows};
        }
        return sum;
      };
      EXPECT_EQ(sums(answers[v1::TOP_SOURCE_ROLLUPS]), sums(answers[v1::TOP_SOURCE_FLOWS]));
    }
  }
}

TEST_F(HistoryQueryTest, PagingUnderConcurrentIngestReturnsEachFlowOnce) {
  // Before any new ingest: the flows the query must return, each exactly once.
  v1::QueryFlowsRequest request;
  request.set_filter("agent == \"site-a\" or agent == \"site-late\"");
  request.set_order(v1::FLOW_ORDER_FIRST_SEEN_ASC);
  request.set_limit(7);
  Result<Filter> filter = Filter::Parse(request.filter());
  ASSERT_TRUE(filter.ok());
  const std::vector<FlowKey> before =
      ExpectedFlows(data_, request.range(), *filter, request.order());

  // Meanwhile: new flows of a new agent and of site-a (sorting before and after the pages
  // already read), and updates (more bytes, later activity) to site-a's stored flows.
  TestAgent late(gateway_->process().endpoint(), "site-late", "site-late");
  DataSet more(7);
  const std::vector<v1::Event> late_events = more.MakeFlows(late.identity(), 100'000, 400);
  std::vector<v1::Event> site_a_events = more.MakeFlows(agents_[0]->identity(), 200'000, 100);
  for (const FlowKey& key : before) {
    if (key.first != agents_[0]->identity().id()) continue;
    v1::Event stat;
    stat.mutable_flow_stats()->mutable_flow()->set_digest(key.second);
    stat.mutable_flow_stats()->mutable_flow()->set_last_seen_at(kBaseMs + 12 * kHourMs);
    stat.mutable_flow_stats()->mutable_flow()->set_local_bytes(5);
    site_a_events.push_back(stat);
  }
  std::atomic<bool> ingest_ok{true};
  std::thread ingest([&] {
    for (size_t i = 0; i < std::max(late_events.size(), site_a_events.size()); i += 10) {
      auto slice = [i](const std::vector<v1::Event>& all) {
        return std::vector<v1::Event>(
            all.begin() + static_cast<std::ptrdiff_t>(std::min(i, all.size())),
            all.begin() + static_cast<std::ptrdiff_t>(std::min(i + 10, all.size())));
      };
      if (!SendAll(late, slice(late_events)) || !SendAll(*agents_[0], slice(site_a_events))) {
        ingest_ok = false;
        return;
      }
    }
  });
  std::set<FlowKey> duplicates;
  const std::vector<FlowKey> got = QueryAll(request, &duplicates);
  ingest.join();
  ASSERT_TRUE(ingest_ok);

  EXPECT_TRUE(duplicates.empty()) << duplicates.size() << " flows came twice";
  const std::set<FlowKey> got_set(got.begin(), got.end());
  for (const FlowKey& key : before) {
    EXPECT_EQ(got_set.count(key), 1u) << "flow " << key.second << " of agent " << key.first
                                      << " stored before the query is missing";
  }
}

TEST_F(HistoryQueryTest, GetFlowAndListAgents) {
  const auto& [key, model] = *data_.flows().begin();
  v1::GetFlowRequest get;
  get.set_digest(key.second);
  get.set_agent_id(key.first);
  v1::FlowRecord flow;
  grpc::Status status = gateway_->stub().GetFlow(CallContext().get(), get, &flow);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(flow.agent().name(), model.agent.name());
  EXPECT_EQ(flow.metadata().detected_application_name(),
            model.metadata.detected_application_name());
  EXPECT_EQ(flow.counters().total_bytes(), model.total_bytes);

  get.set_digest("0000000000000000000000000000000000000000");
  status = gateway_->stub().GetFlow(CallContext().get(), get, &flow);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);

  v1::ListAgentsResponse agents;
  status = gateway_->stub().ListAgents(CallContext().get(), {}, &agents);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(agents.agents_size(), 3);
  EXPECT_EQ(agents.agents(0).identity().name(), "site-a");
  EXPECT_GT(agents.agents(2).events_applied(), 0u);
}

TEST_F(HistoryQueryTest, BadArgumentsAreInvalidArgumentWithAReason) {
  auto query = [&](const std::function<void(v1::QueryFlowsRequest&)>& edit) {
    v1::QueryFlowsRequest request;
    edit(request);
    v1::QueryFlowsResponse response;
    return gateway_->stub().QueryFlows(CallContext().get(), request, &response);
  };
  grpc::Status s = query([](auto& r) {
    r.mutable_range()->set_from_ms(kBaseMs + 10);
    r.mutable_range()->set_to_ms(kBaseMs);
  });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("inverted"), std::string::npos) << s.error_message();

  s = query([](auto& r) { r.set_filter("app == "); });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("filter: column 8"), std::string::npos) << s.error_message();

  s = query([](auto& r) { r.set_limit(1'000'000); });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("maximum"), std::string::npos) << s.error_message();

  s = query([](auto& r) { r.set_page_token("not-a-token"); });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("page_token"), std::string::npos) << s.error_message();

  v1::TopRequest top;
  top.set_filter("bytes ~ \"x\"");
  v1::TopResponse top_response;
  s = gateway_->stub().Top(CallContext().get(), top, &top_response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("column"), std::string::npos) << s.error_message();

  v1::SubscribeRequest subscribe;
  subscribe.set_filter("((");
  auto context = CallContext();
  auto reader = gateway_->stub().Subscribe(context.get(), subscribe);
  v1::SubscribeResponse message;
  EXPECT_FALSE(reader->Read(&message));
  s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST(HistoryAuthTest, CallsWithoutTheTokenAreUnauthenticated) {
  TempDir dir;
  { std::ofstream(dir.Sub("token")) << "s3cret-token\n"; }
  HistoryGateway gateway(dir.Sub("data"), dir.Sub("sock"), {"--grpc-token-file", dir.Sub("token")});
  ASSERT_TRUE(gateway.ready()) << gateway.log();
  v1::ListAgentsResponse agents;
  grpc::Status s = gateway.stub().ListAgents(CallContext().get(), {}, &agents);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  s = gateway.stub().ListAgents(CallContext("wrong").get(), {}, &agents);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  v1::QueryFlowsResponse flows;
  s = gateway.stub().QueryFlows(CallContext().get(), {}, &flows);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  s = gateway.stub().ListAgents(CallContext("s3cret-token").get(), {}, &agents);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

}  // namespace
}  // namespace flowgate::testing
