// Loss-free, exactly-once delivery from many agents (issue 4), with the real binaries on
// loopback. Agents read generated captures (flowgate-trafficgen) with --json-out beside
// --gateway: both sinks receive the same events, so the --json-out file is the exact
// record of what each agent sent, and the store must hold exactly that, none twice.
#include <signal.h>

#include <gtest/gtest.h>

#include <filesystem>

#include "transport_support.h"

namespace flowgate::testing::transport {
namespace {

using std::chrono::seconds;

// 15,000 sessions make a little over 50,000 events (flow, flow_stats, flow_purge, status).
constexpr int kSessions = 15'000;
constexpr uint64_t kEventsPerAgent = 50'000;
constexpr int kAgents = 4;

class TransportDeliveryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    capture_ = MakeCapture(*dir_, "fleet.pcap", kSessions, 4);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  std::vector<std::string> GatewayArgs(const std::string& endpoint = "") const {
    std::vector<std::string> args = {"--data-dir", data_dir_, "--json-socket", socket_path_,
                                     "--agents-plaintext"};
    if (!endpoint.empty()) args.insert(args.end(), {"--agents-listen", endpoint});
    return args;
  }

  // Starts kAgents agents on the shared capture; `extra` flags go to each.
  void StartAgents(const std::string& endpoint, const std::vector<std::string>& extra = {}) {
    for (int i = 0; i < kAgents; ++i) {
      const std::string name = "agent-" + std::to_string(i);
      agents_.push_back(std::make_unique<BackgroundProcess>(AgentArgv(
          capture_, endpoint, name, test_dir_.Sub(name), test_dir_.Sub(name + ".json"), extra)));
    }
  }

  void ExpectAgentsFinish() {
    for (size_t i = 0; i < agents_.size(); ++i) {
      EXPECT_EQ(WaitExit(*agents_[i], seconds(300)), 0)
          << "agent-" << i << " did not deliver everything:\n"
          << agents_[i]->stderr_text();
    }
  }

  // The store holds exactly what each agent's --json-out says it sent.
  void ExpectExactlyOnce() {
    std::map<std::string, EventBag> stored = StoredEventsByAgent(data_dir_);
    for (int i = 0; i < kAgents; ++i) {
      const std::string name = "agent-" + std::to_string(i);
      const EventBag sent = JsonOutEvents(test_dir_.Sub(name + ".json"));
      EXPECT_GE(Count(sent), kEventsPerAgent) << name;
      EXPECT_TRUE(SameEvents(sent, stored[name])) << name;
    }
    const std::vector<v1::AgentRecord> registry = StoredAgents(data_dir_);
    ASSERT_EQ(registry.size(), static_cast<size_t>(kAgents));
    for (const v1::AgentRecord& agent : registry) {
      EXPECT_EQ(agent.sequence_gaps(), 0u) << agent.identity().name();
      EXPECT_EQ(agent.events_applied(), Count(stored[agent.identity().name()]));
      EXPECT_EQ(agent.address(), "127.0.0.1") << agent.identity().name();
      EXPECT_FALSE(agent.online()) << "a final status means offline";
    }
  }

  static TempDir* dir_;
  static std::string capture_;
  TempDir test_dir_;
  const std::string data_dir_ = test_dir_.Sub("data");
  const std::string socket_path_ = test_dir_.Sub("flowgate.sock");
  std::vector<std::unique_ptr<BackgroundProcess>> agents_;
};

TempDir* TransportDeliveryTest::dir_ = nullptr;
std::string TransportDeliveryTest::capture_;

TEST_F(TransportDeliveryTest, FourAgentsStoreExactlyTheEventsSent) {
  auto gateway = std::make_unique<GatewayProcess>(GatewayArgs());
  ASSERT_TRUE(gateway->ready()) << gateway->log();
  StartAgents(gateway->endpoint(), {"--compress"});
  ExpectAgentsFinish();
  EXPECT_EQ(gateway->Stop(), 0) << gateway->log();
  ExpectExactlyOnce();
}

TEST_F(TransportDeliveryTest, GatewayKilledRepeatedlyStillExactlyOnce) {
  auto gateway = std::make_unique<GatewayProcess>(GatewayArgs());
  ASSERT_TRUE(gateway->ready()) << gateway->log();
  const std::string endpoint = gateway->endpoint();
  // At 4x packet time the agents run for about 15 s, long enough to be interrupted.
  StartAgents(endpoint, {"--replay-speed", "4"});
  for (int kill = 0; kill < 3; ++kill) {
    // Kill once the restarted gateway has stored and published some more of the stream.
    ASSERT_TRUE(SeenFlows(socket_path_, 2'000)) << gateway->log();
    EXPECT_EQ(gateway->Kill(), 128 + SIGKILL);
    gateway = std::make_unique<GatewayProcess>(GatewayArgs(endpoint));
    ASSERT_TRUE(gateway->ready()) << gateway->log();
    ASSERT_EQ(gateway->endpoint(), endpoint);
  }
  ExpectAgentsFinish();
  EXPECT_EQ(gateway->Stop(), 0) << gateway->log();
  ExpectExactlyOnce();
}

// The gateway is down for 20 s (the figure) while the agents keep reading at 2x
// packet time (a 60 s capture: they are still capturing when it returns). They spool, then
// deliver everything once it is back.
TEST_F(TransportDeliveryTest, GatewayDownTwentySecondsAgentsSpoolThenDeliverAll) {
  auto gateway = std::make_unique<GatewayProcess>(GatewayArgs());
  ASSERT_TRUE(gateway->ready()) << gateway->log();
  const std::string endpoint = gateway->endpoint();
  StartAgents(endpoint, {"--replay-speed", "2"});
  ASSERT_TRUE(SeenFlows(socket_path_, 500)) << gateway->log();
  EXPECT_EQ(gateway->Kill(), 128 + SIGKILL);
  gateway.reset();
  // The outage itself is the scenario (not a synchronisation): 20 s without a gateway.
  std::this_thread::sleep_for(seconds(20));
  for (int i = 0; i < kAgents; ++i) {
    EXPECT_GT(SpoolFiles(test_dir_.Sub("agent-" + std::to_string(i))), 0u)
        << "agent-" << i << " spooled nothing while the gateway was down";
    EXPECT_EQ(::kill(agents_[i]->pid(), 0), 0) << "agent-" << i << " stopped capturing";
  }
  gateway = std::make_unique<GatewayProcess>(GatewayArgs(endpoint));
  ASSERT_TRUE(gateway->ready()) << gateway->log();
  ExpectAgentsFinish();
  EXPECT_EQ(gateway->Stop(), 0) << gateway->log();
  ExpectExactlyOnce();
  for (int i = 0; i < kAgents; ++i) {
    EXPECT_EQ(SpoolFiles(test_dir_.Sub("agent-" + std::to_string(i))), 0u)
        << "everything acknowledged leaves the spool";
  }
}

// An agent reading a file waits for the gateway when its spool is full: the file loses
// nothing by waiting, so nothing may be dropped (a live capture drops the oldest instead).
// The gateway is frozen (SIGSTOP) so that acknowledgements stop while the agent reads.
TEST_F(TransportDeliveryTest, FileAgentWithAFullSpoolWaitsInsteadOfDropping) {
  GatewayProcess gateway(GatewayArgs());
  ASSERT_TRUE(gateway.ready()) << gateway.log();
  constexpr uint64_t kSpoolBytes = 256 * 1024;
  ASSERT_EQ(::kill(gateway.pid(), SIGSTOP), 0);
  const std::string state_dir = test_dir_.Sub("agent-0");
  BackgroundProcess agent(AgentArgv(capture_, gateway.endpoint(), "agent-0", state_dir,
                                    test_dir_.Sub("agent-0.json"),
                                    {"--spool-max-bytes", std::to_string(kSpoolBytes)}));
  const auto spool_bytes = [&state_dir] {
    uint64_t bytes = 0;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(state_dir + "/spool", error)) {
      std::error_code gone;  // a file acknowledged meanwhile counts as 0
      const uintmax_t size = entry.file_size(gone);
      if (!gone) bytes += size;
    }
    return bytes;
  };
  const auto deadline = std::chrono::steady_clock::now() + seconds(60);
  while (spool_bytes() < kSpoolBytes && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling a size, bounded
  }
  const uint64_t held = spool_bytes();
  ASSERT_EQ(::kill(gateway.pid(), SIGCONT), 0);
  EXPECT_GE(held, kSpoolBytes) << "the spool never filled while the gateway was frozen";
  EXPECT_EQ(WaitExit(agent, seconds(300)), 0) << agent.stderr_text();
  EXPECT_EQ(agent.stderr_text().find("spool is full"), std::string::npos) << agent.stderr_text();
  EXPECT_EQ(gateway.Stop(), 0) << gateway.log();

  std::map<std::string, EventBag> stored = StoredEventsByAgent(data_dir_);
  const EventBag sent = JsonOutEvents(test_dir_.Sub("agent-0.json"));
  EXPECT_GE(Count(sent), kEventsPerAgent);
  EXPECT_TRUE(SameEvents(sent, stored["agent-0"]));
}

}  // namespace
}  // namespace flowgate::testing::transport
