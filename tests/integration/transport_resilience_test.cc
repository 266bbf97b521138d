// What a fleet's transport must survive (issue 4): an agent killed with SIGKILL (what
// reached its spool is delivered by its next run, with the original boot id and sequence),
// hostile or broken frames (each refused and counted while a real agent's delivery goes
// on untouched), and an offline run whose batches a gateway refuses (it fails, saying so).
#include <signal.h>

#include <gtest/gtest.h>

#include <atomic>
#include <regex>
#include <thread>

#include <zmq.hpp>

#include "../support/netns.h"
#include "../support/prometheus.h"
#include "../support/test_agent.h"
#include "flowgate/common/envelope_codec.h"
#include "transport_support.h"

namespace flowgate::testing::transport {
namespace {

using std::chrono::seconds;

class TransportResilienceTest : public ::testing::Test {
 protected:
  TempDir dir_;
  const std::string data_dir_ = dir_.Sub("data");
  const std::string socket_path_ = dir_.Sub("flowgate.sock");
};

// Every batch the agent's spool held when it was killed.
EventBag SpooledEvents(const std::string& state_dir, uint64_t* batches) {
  EventBag bag;
  *batches = 0;
  for (const auto& entry : std::filesystem::directory_iterator(state_dir + "/spool")) {
    if (entry.path().extension() != ".batch") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    v1::Envelope envelope;
    EXPECT_TRUE(envelope.ParseFromString(bytes.str())) << entry.path();
    for (const v1::Event& event : envelope.events()) bag[Canonical(event)] += 1;
    ++*batches;
  }
  return bag;
}

TEST_F(TransportResilienceTest, AgentKilledNothingThatReachedItsSpoolIsLost) {
  const std::string first_capture = MakeCapture(dir_, "first.pcap", 3'000, 11);
  const std::string second_capture = MakeCapture(dir_, "second.pcap", 300, 12, "5s");
  const std::string state_dir = dir_.Sub("agent");
  // A gateway that is gone: its port is where the agent keeps trying to deliver.
  auto gateway = std::make_unique<GatewayProcess>(std::vector<std::string>{
      "--data-dir", data_dir_, "--json-socket", socket_path_, "--agents-plaintext"});
  ASSERT_TRUE(gateway->ready()) << gateway->log();
  const std::string endpoint = gateway->endpoint();
  EXPECT_EQ(gateway->Stop(), 0);

  // The first run spools (no gateway) and is killed while still reading (1x packet time).
  {
    BackgroundProcess agent(AgentArgv(first_capture, endpoint, "probe", state_dir,
                                      dir_.Sub("first.json"), {"--replay-speed", "1"}));
    const auto deadline = std::chrono::steady_clock::now() + seconds(60);
    while (SpoolFiles(state_dir) < 20 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling a condition
    }
    ASSERT_GE(SpoolFiles(state_dir), 20u) << "the agent spooled nothing:\n" << agent.stderr_text();
    EXPECT_EQ(agent.StopWith(SIGKILL), 128 + SIGKILL);
  }
  uint64_t spooled_batches = 0;
  const EventBag spooled = SpooledEvents(state_dir, &spooled_batches);
  ASSERT_GT(Count(spooled), 0u);

  // The second run (same state dir, so same agent id) resends them, then its own events.
  gateway = std::make_unique<GatewayProcess>(
      std::vector<std::string>{"--data-dir", data_dir_, "--json-socket", socket_path_,
                               "--agents-plaintext", "--agents-listen", endpoint});
  ASSERT_TRUE(gateway->ready()) << gateway->log();
  CommandResult second =
      RunCommand(AgentArgv(second_capture, endpoint, "probe", state_dir, dir_.Sub("second.json")),
                 seconds(180));
  EXPECT_EQ(second.exit_code, 0) << second.err;
  EXPECT_NE(second.err.find("resending " + std::to_string(spooled_batches) + " batches"),
            std::string::npos)
      << second.err;
  EXPECT_EQ(gateway->Stop(), 0) << gateway->log();
  EXPECT_EQ(SpoolFiles(state_dir), 0u);

  // Exactly: what the spool held plus what the second run sent, none twice.
  EventBag expected = JsonOutEvents(dir_.Sub("second.json"));
  for (const auto& [event, count] : spooled) expected[event] += count;
  std::map<std::string, EventBag> stored = StoredEventsByAgent(data_dir_);
  EXPECT_TRUE(SameEvents(expected, stored["probe"]));
  const std::vector<v1::AgentRecord> registry = StoredAgents(data_dir_);
  ASSERT_EQ(registry.size(), 1u);
  EXPECT_EQ(registry[0].sequence_gaps(), 0u) << "the killed run's boot resumes where it was";
}

TEST_F(TransportResilienceTest, HostileFramesAreRefusedAndCountedOthersContinue) {
  GatewayProcess gateway(
      {"--data-dir", data_dir_, "--json-socket", socket_path_, "--agents-plaintext"});
  ASSERT_TRUE(gateway.ready()) << gateway.log();
  const std::string capture = MakeCapture(dir_, "steady.pcap", 2'000, 21, "10s");
  BackgroundProcess agent(AgentArgv(capture, gateway.endpoint(), "steady", dir_.Sub("steady"),
                                    dir_.Sub("steady.json"), {"--replay-speed", "2"}));

  TestAgent hostile(gateway.endpoint(), "hostile", "nowhere");
  // Garbage.
  std::optional<v1::Ack> ack = hostile.SendRaw("\xff\xff\xff\xff not a protobuf at all");
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->status(), v1::ACK_STATUS_MALFORMED) << ack->error();
  // An unknown version, from an agent the gateway can name.
  v1::Envelope future;
  future.set_version(static_cast<v1::ProtocolVersion>(2));
  *future.mutable_agent() = hostile.identity();
  future.set_sequence(1);
  ack = hostile.SendRaw(future.SerializeAsString());
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->status(), v1::ACK_STATUS_UNSUPPORTED_VERSION) << ack->error();
  // A truncated envelope: a real batch cut short.
  v1::Envelope real;
  real.set_version(v1::PROTOCOL_VERSION_1);
  *real.mutable_agent() = hostile.identity();
  real.set_sequence(1);
  *real.add_events() = MakeFlowEvent(1, "TLS", "netify.example", "example.com");
  const std::string whole = real.SerializeAsString();
  ack = hostile.SendRaw(whole.substr(0, whole.size() - 7));
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->status(), v1::ACK_STATUS_MALFORMED) << ack->error();
  // One byte over the frame limit (64 MiB).
  ack = hostile.SendRaw(std::string((64u << 20) + 1, 'x'), seconds(60));
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->status(), v1::ACK_STATUS_TOO_LARGE) << ack->error();

  EXPECT_EQ(WaitExit(agent, seconds(180)), 0) << agent.stderr_text();
  EXPECT_EQ(gateway.Stop(), 0);
  const std::string log = gateway.log();
  // Garbage and the oversize frame name no agent; the truncated envelope still says whose
  // it was, as does the unknown version.
  const std::string hostile_id = hostile.identity().id();
  for (const std::string& line :
       std::vector<std::string>{"agent unknown at 127.0.0.1 (malformed, 1 so far)",
                                hostile_id + " at 127.0.0.1 (version, 1 so far)",
                                hostile_id + " at 127.0.0.1 (malformed, 1 so far)",
                                "agent unknown at 127.0.0.1 (too_large, 1 so far)"}) {
    EXPECT_NE(log.find(line), std::string::npos) << line << " not logged:\n" << log;
  }
  std::map<std::string, EventBag> stored = StoredEventsByAgent(data_dir_);
  EXPECT_TRUE(SameEvents(JsonOutEvents(dir_.Sub("steady.json")), stored["steady"]));
  EXPECT_EQ(stored.count("hostile"), 0u) << "nothing of a refused frame is stored";
  // The refusals that named their agent are in that agent's registry record.
  bool found = false;
  for (const v1::AgentRecord& record : StoredAgents(data_dir_)) {
    if (record.identity().id() != hostile.identity().id()) continue;
    found = true;
    EXPECT_EQ(record.batches_rejected(), 2u);
    EXPECT_EQ(record.rejected_by_reason().at("version"), 1u);
    EXPECT_EQ(record.rejected_by_reason().at("malformed"), 1u);
    EXPECT_EQ(record.address(), "127.0.0.1");
    EXPECT_EQ(record.events_applied(), 0u);
  }
  EXPECT_TRUE(found) << "the refused agent is not in the registry";
}

// Answers every batch as a gateway of a later protocol version would: refused,
// ACK_STATUS_UNSUPPORTED_VERSION (the real gateway refuses a version it does not speak the
// same way; there is no later version of it to run).
class LaterVersionGateway {
 public:
  LaterVersionGateway() {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.bind("tcp://127.0.0.1:*");
    endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this] { Serve(); });
  }
  ~LaterVersionGateway() {
    stopping_ = true;
    thread_.join();
  }
  const std::string& endpoint() const { return endpoint_; }
  uint64_t refused() const { return refused_.load(); }

 private:
  void Serve() {
    while (!stopping_) {
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(50));
      zmq::message_t routing, payload;
      if (!socket_.recv(routing, zmq::recv_flags::dontwait) || !routing.more() ||
          !socket_.recv(payload, zmq::recv_flags::dontwait)) {
        continue;
      }
      // Only the header matters (whose batch to refuse); the bound is the gateway's default.
      constexpr size_t kMaxFrameBytes = 64u << 20;
      v1::Envelope envelope;
      (void)DecodeEnvelope(
          std::string_view(static_cast<const char*>(payload.data()), payload.size()),
          kMaxFrameBytes, &envelope);
      v1::Ack ack;
      ack.set_status(v1::ACK_STATUS_UNSUPPORTED_VERSION);
      ack.set_boot_id(envelope.agent().boot_id());
      ack.set_sequence(envelope.sequence());
      ack.set_error("protocol version 1 is not supported (this gateway speaks 2)");
      socket_.send(routing, zmq::send_flags::sndmore);
      socket_.send(zmq::buffer(ack.SerializeAsString()));
      ++refused_;
    }
  }

  zmq::context_t context_{1};
  zmq::socket_t socket_{context_, zmq::socket_type::router};
  std::string endpoint_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> refused_{0};
  std::thread thread_;
};

// A capture file is read to be delivered whole, often by a script that checks the exit
// status: a run whose batches the gateway refused ends in failure, saying what was lost.
TEST_F(TransportResilienceTest, OfflineRunWhoseBatchesWereRefusedFailsAndSaysWhatWasLost) {
  const std::string capture = MakeCapture(dir_, "offline.pcap", 300, 31, "5s");
  LaterVersionGateway gateway;
  CommandResult run = RunCommand(AgentArgv(capture, gateway.endpoint(), "offline",
                                           dir_.Sub("agent"), dir_.Sub("offline.json")),
                                 seconds(120));
  EXPECT_EQ(run.exit_code, 1) << run.err;
  const uint64_t produced = Count(JsonOutEvents(dir_.Sub("offline.json")));
  ASSERT_GT(produced, 0u);
  const std::string expected = "flowgate-agent: " + std::to_string(produced) + " events in " +
                               std::to_string(gateway.refused()) +
                               " batches were refused by the gateway and are lost (last: protocol "
                               "version 1 is not supported (this gateway speaks 2))";
  EXPECT_NE(run.err.find(expected), std::string::npos) << "expected: " << expected << "\n"
                                                       << run.err;
}

// A live capture cannot wait for the gateway: when the spool is full the oldest batches go,
// counted (agent metrics and status), and the gateway sees the gap; what was kept arrives
// exactly once. The gateway is frozen (SIGSTOP) while traffic is replayed into a veth pair.
TEST_F(TransportResilienceTest, LiveAgentWithAFullSpoolDropsTheOldestAndCountsThem) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root for network namespaces";
  if (!std::filesystem::exists("/usr/bin/tcpreplay")) GTEST_SKIP() << "tcpreplay missing";
  const std::string capture = MakeCapture(dir_, "live.pcap", 3'000, 21, "10s");
  GatewayProcess gateway(
      {"--data-dir", data_dir_, "--json-socket", socket_path_, "--agents-plaintext"});
  ASSERT_TRUE(gateway.ready()) << gateway.log();
  ASSERT_EQ(::kill(gateway.pid(), SIGSTOP), 0);

  VethNamespace net;
  ASSERT_TRUE(net.ok()) << net.error();
  std::vector<std::string> argv = {BinaryPath("flowgate-agent"),
                                   "-i",
                                   net.host_end(),
                                   "--gateway",
                                   gateway.endpoint(),
                                   "--plaintext",
                                   "--name",
                                   "live",
                                   "--state-dir",
                                   dir_.Sub("agent"),
                                   "--json-out",
                                   dir_.Sub("live.json"),
                                   "--spool-max-bytes",
                                   "64KiB",
                                   "--idle-timeout",
                                   "1s",
                                   "--metrics",
                                   "127.0.0.1:0"};
  BackgroundProcess agent(argv);
  // Logged once the capture is open and the workers exist.
  std::optional<std::string> line = agent.WaitForStderrLine("metrics at", seconds(30));
  ASSERT_TRUE(line.has_value()) << agent.stderr_text();
  const std::string metrics = MetricsAddressFromLog(*line);

  CommandResult sent = RunCommand(net.InNamespace({"/usr/bin/tcpreplay", "-q", "--pps", "20000",
                                                   "-i", net.namespace_end(), capture}),
                                  seconds(120));
  ASSERT_EQ(sent.exit_code, 0) << sent.out << sent.err;
  double dropped = 0;
  const auto deadline = std::chrono::steady_clock::now() + seconds(60);
  while (dropped == 0 && std::chrono::steady_clock::now() < deadline) {
    std::string error;
    std::optional<Scrape> scrape = ScrapeMetrics(metrics, &error);
    ASSERT_TRUE(scrape.has_value()) << error;
    dropped = scrape->Get("flowgate_agent_events_dropped_total{reason=\"spool_full\"}").value_or(0);
    if (dropped == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));  // polling
  }
  EXPECT_GT(dropped, 0.0) << "a 64 KiB spool held everything while the gateway was frozen";
  ASSERT_EQ(::kill(gateway.pid(), SIGCONT), 0);
  EXPECT_EQ(agent.StopWith(SIGTERM, seconds(120)), 0) << agent.stderr_text();
  EXPECT_NE(agent.stderr_text().find("spool is full"), std::string::npos);
  std::smatch m;
  const std::string log = agent.stderr_text();
  ASSERT_TRUE(std::regex_search(
      log, m,
      std::regex(R"(events for the gateway: (\d+) acknowledged, (\d+) dropped from a full spool)")))
      << log;
  const uint64_t acked = std::stoull(m[1]), lost = std::stoull(m[2]);
  EXPECT_GE(static_cast<double>(lost), dropped);
  EXPECT_EQ(gateway.Stop(), 0) << gateway.log();

  // Stored: every event acknowledged, each once and each one the agent produced, and fewer
  // than it produced. (A batch dropped from the spool after it was sent may still have
  // arrived: the agent cannot know, so it counts it as dropped.) The registry shows the gap
  // the dropped batches left.
  const EventBag produced = JsonOutEvents(dir_.Sub("live.json"));
  const EventBag stored = StoredEventsByAgent(data_dir_)["live"];
  EXPECT_GE(Count(stored), acked);
  EXPECT_LE(Count(stored), acked + lost);
  EXPECT_LT(Count(stored), Count(produced));
  for (const auto& [event, count] : stored) {
    auto it = produced.find(event);
    ASSERT_TRUE(it != produced.end() && it->second >= count)
        << "stored but never produced (or more often): " << event.substr(0, 200);
  }
  const std::vector<v1::AgentRecord> registry = StoredAgents(data_dir_);
  ASSERT_EQ(registry.size(), 1u);
  EXPECT_GT(registry[0].sequence_gaps(), 0u) << "the dropped batches left no gap";
  EXPECT_EQ(registry[0].events_applied(), Count(stored));
}

}  // namespace
}  // namespace flowgate::testing::transport
