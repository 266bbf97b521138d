// Failover between the gateways of one cluster: an agent given several --gateway talks to
// one at a time and, when that one acknowledges nothing for --failover-after while batches
// wait, moves to the next and resends every batch it holds, with their original boot id
// and sequence. The gateways here each have a RocksDB store of their own, so an agent's
// events end up split between them: the first holds a prefix of what the agent sent, the
// second the rest. The one overlap possible is a batch the killed gateway made durable but
// whose acknowledgement died with it: the agent cannot tell it from a lost one and resends
// it, and the second gateway (not knowing the first one's mark) stores it again. A store
// shared by the gateways would see the mark and acknowledge it as a duplicate instead.
#include <signal.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <optional>
#include <regex>

#include "../support/prometheus.h"
#include "transport_support.h"

namespace flowgate::testing::transport {
namespace {

using std::chrono::seconds;

constexpr char kFailoverAfter[] = "2s";
constexpr uint64_t kBatchMaxEvents = 512;  // GatewayClientOptions::batch_max_events

// What the agent's last log line says about delivery.
struct DeliverySummary {
  uint64_t acked = 0;
  uint64_t failovers = 0;
  std::string last_gateway;
};

std::optional<DeliverySummary> ParseDeliverySummary(const std::string& log) {
  std::smatch m;
  if (!std::regex_search(log, m,
                         std::regex(R"(events for the gateway: (\d+) acknowledged, .*, (\d+) )"
                                    R"(failovers, last to (\S+))"))) {
    return std::nullopt;
  }
  return DeliverySummary{std::stoull(m[1]), std::stoull(m[2]), m[3]};
}

const v1::AgentRecord* FindAgent(const std::vector<v1::AgentRecord>& registry,
                                 const std::string& name) {
  for (const v1::AgentRecord& record : registry) {
    if (record.identity().name() == name) return &record;
  }
  return nullptr;
}

class TransportFailoverTest : public ::testing::Test {
 protected:
  std::vector<std::string> GatewayArgs(const std::string& name) const {
    return {"--data-dir", DataDir(name), "--json-socket", SocketPath(name), "--agents-plaintext"};
  }
  std::string DataDir(const std::string& gateway) const { return dir_.Sub(gateway + "-data"); }
  std::string SocketPath(const std::string& gateway) const { return dir_.Sub(gateway + ".sock"); }
  std::string JsonOut(const std::string& agent) const { return dir_.Sub(agent + ".json"); }

  // An agent named `name` given `endpoints` in this order, failing over after kFailoverAfter
  // (unless `extra` says otherwise: the last of a flag wins).
  std::vector<std::string> AgentToGateways(const std::string& capture,
                                           const std::vector<std::string>& endpoints,
                                           const std::string& name,
                                           const std::vector<std::string>& extra = {}) const {
    std::vector<std::string> flags;
    for (size_t i = 1; i < endpoints.size(); ++i) {
      flags.insert(flags.end(), {"--gateway", endpoints[i]});
    }
    flags.insert(flags.end(), {"--failover-after", kFailoverAfter});
    flags.insert(flags.end(), extra.begin(), extra.end());
    return AgentArgv(capture, endpoints.front(), name, dir_.Sub(name), JsonOut(name), flags);
  }

  // An endpoint where nothing listens: that of a gateway started with `args`, after it
  // stopped.
  static std::string DeadEndpoint(const std::vector<std::string>& args) {
    GatewayProcess gone(args);
    EXPECT_TRUE(gone.ready()) << gone.log();
    EXPECT_EQ(gone.Stop(), 0);
    return gone.endpoint();
  }

  TempDir dir_;
};

// Gateway A is killed (SIGKILL) while agent "moving" streams to it; the agent fails over to
// B. A second agent, given B first, never fails over. Every event "moving" sent is in A's
// store or B's, in order, and only a batch A stored without acknowledging it is in both.
TEST_F(TransportFailoverTest, GatewayKilledMidStreamAgentFailsOverAndLosesNothing) {
  GatewayProcess a(GatewayArgs("a"));
  ASSERT_TRUE(a.ready()) << a.log();
  GatewayProcess b(GatewayArgs("b"));
  ASSERT_TRUE(b.ready()) << b.log();
  const std::string a_endpoint = a.endpoint();
  // About 17,000 events over 30 s of packet time, replayed at 4x: about 8 s of streaming.
  const std::string capture = MakeCapture(dir_, "stream.pcap", 5'000, 31, "30s");

  BackgroundProcess moving(AgentToGateways(capture, {a_endpoint, b.endpoint()}, "moving",
                                           {"--replay-speed", "4", "--metrics", "127.0.0.1:0"}));
  BackgroundProcess steady(
      AgentToGateways(capture, {b.endpoint(), a_endpoint}, "steady", {"--replay-speed", "4"}));
  std::optional<std::string> metrics_line = moving.WaitForStderrLine("metrics at", seconds(30));
  ASSERT_TRUE(metrics_line.has_value()) << moving.stderr_text();
  const std::string metrics = MetricsAddressFromLog(*metrics_line);

  // Killed once A has stored and published part of the stream.
  ASSERT_TRUE(SeenFlows(SocketPath("a"), 500)) << a.log();
  EXPECT_EQ(a.Kill(), 128 + SIGKILL);
  const std::string failover_line =
      "failing over from gateway " + a_endpoint + " to " + b.endpoint();
  ASSERT_TRUE(moving.WaitForStderrLine(failover_line, seconds(30)).has_value())
      << "no failover logged:\n"
      << moving.stderr_text();
  {
    // Still streaming (the capture lasts seconds more): the metrics say where it went.
    std::string error;
    std::optional<Scrape> scrape = ScrapeMetrics(metrics, &error);
    ASSERT_TRUE(scrape.has_value()) << error;
    EXPECT_GE(scrape->Get("flowgate_agent_gateway_failovers_total").value_or(0), 1.0);
    EXPECT_EQ(scrape->Get("flowgate_agent_gateway{endpoint=\"" + b.endpoint() + "\"}"), 1.0);
  }

  EXPECT_EQ(WaitExit(moving, seconds(120)), 0) << moving.stderr_text();
  EXPECT_EQ(WaitExit(steady, seconds(120)), 0) << steady.stderr_text();
  EXPECT_EQ(b.Stop(), 0) << b.log();
  EXPECT_EQ(SpoolFiles(dir_.Sub("moving")), 0u) << "everything acknowledged leaves the spool";

  std::optional<DeliverySummary> summary = ParseDeliverySummary(moving.stderr_text());
  ASSERT_TRUE(summary.has_value()) << moving.stderr_text();
  EXPECT_GE(summary->failovers, 1u);
  EXPECT_EQ(summary->last_gateway, b.endpoint());
  std::optional<DeliverySummary> steady_summary = ParseDeliverySummary(steady.stderr_text());
  ASSERT_TRUE(steady_summary.has_value()) << steady.stderr_text();
  EXPECT_EQ(steady_summary->failovers, 0u) << steady.stderr_text();
  EXPECT_EQ(steady_summary->last_gateway, b.endpoint());

  // "moving": A holds a prefix of what it sent, B the rest (a suffix), and together all.
  const std::vector<std::string> sent = JsonOutEventLog(JsonOut("moving"));
  const std::vector<std::string> in_a = StoredEventLogByAgent(DataDir("a"))["moving"];
  std::map<std::string, std::vector<std::string>> b_logs = StoredEventLogByAgent(DataDir("b"));
  const std::vector<std::string>& in_b = b_logs["moving"];
  ASSERT_GT(sent.size(), 10'000u);
  ASSERT_FALSE(in_a.empty()) << "A stored nothing before it was killed";
  ASSERT_FALSE(in_b.empty()) << "nothing reached B";
  ASSERT_LE(in_a.size(), sent.size());
  ASSERT_LE(in_b.size(), sent.size());
  EXPECT_TRUE(std::equal(in_a.begin(), in_a.end(), sent.begin()))
      << "A's store is not what the agent sent first, in order";
  EXPECT_TRUE(std::equal(in_b.rbegin(), in_b.rend(), sent.rbegin()))
      << "B's store is not what the agent sent last, in order";
  ASSERT_GE(in_a.size() + in_b.size(), sent.size())
      << (sent.size() - in_a.size() - in_b.size()) << " of " << sent.size()
      << " events are in neither store";
  // Stored twice: only batches A applied (up to its high-water mark) that B applied again
  // after the gap it was told to skip (B's first batch is sequence_gaps + 1).
  const uint64_t twice = in_a.size() + in_b.size() - sent.size();
  const std::vector<v1::AgentRecord> a_registry = StoredAgents(DataDir("a"));
  const std::vector<v1::AgentRecord> b_registry = StoredAgents(DataDir("b"));
  const v1::AgentRecord* in_a_record = FindAgent(a_registry, "moving");
  const v1::AgentRecord* in_b_record = FindAgent(b_registry, "moving");
  ASSERT_NE(in_a_record, nullptr);
  ASSERT_NE(in_b_record, nullptr);
  const uint64_t a_mark = in_a_record->high_water_sequence();
  const uint64_t b_first = in_b_record->sequence_gaps() + 1;
  const uint64_t batches_twice = a_mark >= b_first ? a_mark - b_first + 1 : 0;
  EXPECT_EQ(twice > 0, batches_twice > 0) << twice << " events stored twice; A applied up to batch "
                                          << a_mark << ", B from batch " << b_first;
  EXPECT_LE(twice, batches_twice * kBatchMaxEvents);
  EXPECT_LE(b_first, a_mark + 1) << "B skipped batches A never applied";
  EXPECT_EQ(in_b_record->events_applied(), in_b.size());
  std::printf(
      "%zu events sent: %zu stored by A (batches 1..%llu), %zu by B (from batch %llu), "
      "%llu by both\n",
      sent.size(), in_a.size(), static_cast<unsigned long long>(a_mark), in_b.size(),
      static_cast<unsigned long long>(b_first), static_cast<unsigned long long>(twice));

  // "steady" talked to B only: exactly once, no gap, nothing at A.
  std::map<std::string, EventBag> b_stored = StoredEventsByAgent(DataDir("b"));
  EXPECT_TRUE(SameEvents(JsonOutEvents(JsonOut("steady")), b_stored["steady"]));
  EXPECT_EQ(FindAgent(a_registry, "steady"), nullptr);
  const v1::AgentRecord* steady_record = FindAgent(b_registry, "steady");
  ASSERT_NE(steady_record, nullptr);
  EXPECT_EQ(steady_record->sequence_gaps(), 0u);
}

// The first gateway listed is not there at all: after --failover-after the agent moves to
// the second, which receives everything, from the boot's first batch on. Over CURVE: the
// gateways of a cluster share one key, of which the agent is given the public half once.
TEST_F(TransportFailoverTest, FirstGatewayUnreachableEverythingGoesToTheSecond) {
  for (const std::string name : {"cluster", "probe"}) {
    CommandResult made =
        RunCommand({BinaryPath("flowgate"), "keygen", "--name", name, "--out", dir_.Sub("keys")});
    ASSERT_EQ(made.exit_code, 0) << made.err;
  }
  const std::string allow_file = dir_.Sub("agents.allow");
  {
    std::ifstream agent_key(dir_.Sub("keys/probe.pub"));
    std::ofstream(allow_file) << agent_key.rdbuf();
  }
  const auto curve_gateway_args = [&](const std::string& name) {
    std::vector<std::string> args = GatewayArgs(name);
    std::erase(args, "--agents-plaintext");
    args.insert(args.end(),
                {"--agents-key", dir_.Sub("keys/cluster.key"), "--agents-allow", allow_file});
    return args;
  };
  const std::string dead = DeadEndpoint(curve_gateway_args("gone"));
  GatewayProcess b(curve_gateway_args("b"));
  ASSERT_TRUE(b.ready()) << b.log();
  const std::string capture = MakeCapture(dir_, "short.pcap", 2'000, 32, "10s");

  std::vector<std::string> argv = AgentToGateways(
      capture, {dead, b.endpoint()}, "probe",
      {"--key", dir_.Sub("keys/probe.key"), "--gateway-key", dir_.Sub("keys/cluster.pub")});
  std::erase(argv, "--plaintext");  // AgentArgv's default
  CommandResult agent = RunCommand(argv, seconds(120));
  EXPECT_EQ(agent.exit_code, 0) << agent.err;
  EXPECT_NE(agent.err.find("failing over from gateway " + dead + " to " + b.endpoint()),
            std::string::npos)
      << agent.err;
  std::optional<DeliverySummary> summary = ParseDeliverySummary(agent.err);
  ASSERT_TRUE(summary.has_value()) << agent.err;
  EXPECT_EQ(summary->failovers, 1u);
  EXPECT_EQ(summary->last_gateway, b.endpoint());
  EXPECT_EQ(b.Stop(), 0) << b.log();

  const EventBag sent = JsonOutEvents(JsonOut("probe"));
  EXPECT_GT(Count(sent), 4'000u);
  EXPECT_EQ(summary->acked, Count(sent));
  EXPECT_TRUE(SameEvents(sent, StoredEventsByAgent(DataDir("b"))["probe"]));
  const std::vector<v1::AgentRecord> registry = StoredAgents(DataDir("b"));
  ASSERT_EQ(registry.size(), 1u);
  EXPECT_EQ(registry[0].sequence_gaps(), 0u) << "B received the boot from its first batch";
}

// No gateway answers: the agent goes round the list and, at its delivery timeout, fails
// naming every gateway it was given.
TEST_F(TransportFailoverTest, NoGatewayAnswersTheAgentFailsNamingThemAll) {
  const std::string first = DeadEndpoint(GatewayArgs("gone-1"));
  const std::string second = DeadEndpoint(GatewayArgs("gone-2"));
  const std::string capture = MakeCapture(dir_, "tiny.pcap", 100, 33, "5s");
  // The later flags win: a failover each second, and giving up after 5 s.
  CommandResult agent =
      RunCommand(AgentToGateways(capture, {first, second}, "lonely",
                                 {"--failover-after", "1s", "--delivery-timeout", "5s"}),
                 seconds(60));
  EXPECT_EQ(agent.exit_code, 1) << agent.err;
  EXPECT_NE(agent.err.find("gateways " + first + ", " + second + " did not acknowledge"),
            std::string::npos)
      << agent.err;
  std::optional<DeliverySummary> summary = ParseDeliverySummary(agent.err);
  ASSERT_TRUE(summary.has_value()) << agent.err;
  EXPECT_GE(summary->failovers, 2u) << "the agent did not go round the list";
  EXPECT_EQ(summary->acked, 0u);
}

}  // namespace
}  // namespace flowgate::testing::transport
