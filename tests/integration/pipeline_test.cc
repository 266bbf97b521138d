// The whole chain with the real binaries on loopback: flowgate-agent reads a capture,
// classifies it with nDPI and ships it over ZeroMQ; flowgate-gateway stores it in RocksDB
// and streams it on a Unix socket in netifyd's framing.
#include <signal.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "../support/gateway_process.h"
#include "../support/netifyd_stream.h"
#include "../support/process.h"
#include "../support/temp_dir.h"
#include "conversation.h"
#include "flowgate/storage/flow_store.h"
#include "pcap_writer.h"

namespace flowgate::testing {
namespace {

using nlohmann::json;
using std::chrono::seconds;

const std::string kTestdata = FLOWGATE_TESTDATA;

std::string CapturePath(const std::string& name) { return kTestdata + "/ndpi-4.2/pcap/" + name; }
std::string ProtosPath() { return kTestdata + "/ndpi-4.2/config/protos.txt"; }

// Captures covering Ethernet, Linux SLL, raw IP, pcapng, a VLAN and a 6in4 tunnel.
const std::vector<std::string> kCaptures = {
    "443-git.pcap",    "dns_doh.pcap", "quic-mvfst-27.pcapng",    "mqtt.pcap",
    "6in4tunnel.pcap", "dropbox.pcap", "whatsapp_login_chat.pcap"};

// A gateway serving one Unix socket.
class Gateway : public GatewayProcess {
 public:
  Gateway(const std::string& data_dir, const std::string& socket_path)
      : GatewayProcess({"--data-dir", data_dir, "--json-socket", socket_path}) {}
};

CommandResult RunAgent(const std::string& capture, const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {BinaryPath("flowgate-agent"),
                                   "-r",
                                   CapturePath(capture),
                                   "--ndpi-protos",
                                   ProtosPath(),
                                   "--plaintext"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return RunCommand(argv, seconds(120));
}

// Reads the socket until the agent named `agent_name` sends its final agent_status (its
// last event before it exits), returning every message of that agent.
std::vector<json> ReadAgentStream(NetifydSocketClient& client, const std::string& agent_name) {
  std::vector<json> messages;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < deadline) {
    std::optional<json> message = client.Next(seconds(30));
    if (!message) break;
    if (!message->contains("agent") || (*message)["agent"].value("name", "") != agent_name)
      continue;
    messages.push_back(*message);
    if ((*message)["type"] == "agent_status" && message->value("final", false)) return messages;
  }
  ADD_FAILURE() << "stream from " << agent_name << " ended early: " << client.error();
  return messages;
}

void ExpectMatchesNdpi(const std::map<FlowTuple, json>& flows, const std::string& capture) {
  std::vector<ExpectedFlow> expected = LoadExpectedFlows(kTestdata, capture);
  ASSERT_FALSE(expected.empty()) << "no expected flows for " << capture;
  for (const ExpectedFlow& e : expected) {
    auto it = flows.find(e.tuple);
    const auto& [l4, a, pa, b, pb, vlan] = e.tuple;
    const std::string where = capture + " " + std::to_string(l4) + " " + a + ":" +
                              std::to_string(pa) + " <-> " + b + ":" + std::to_string(pb) +
                              " vlan " + std::to_string(vlan);
    ASSERT_NE(it, flows.end()) << "flow missing: " << where;
    EXPECT_EQ(NdpiName(it->second), e.ndpi_name) << where;
  }
}

class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(CapturePath("443-git.pcap"))) {
      GTEST_SKIP() << "nDPI reference captures not found under " << kTestdata;
    }
  }
  TempDir dir_;
};

TEST_F(PipelineTest, SocketStreamsEveryAgentFlowWithNdpiLabelsAndSurvivesRestart) {
  const std::string socket_path = dir_.Sub("flowgate.sock");
  const std::string data_dir = dir_.Sub("data");
  std::map<std::string, v1::PurgeReason> purges;  // agent name + digest -> reason on the socket
  {
    Gateway gateway(data_dir, socket_path);
    ASSERT_TRUE(gateway.ready()) << gateway.log();
    EXPECT_EQ(
        std::filesystem::status(socket_path).permissions() & std::filesystem::perms::others_read,
        std::filesystem::perms::none)
        << "the socket must not be world-readable";

    NetifydSocketClient client(socket_path);
    ASSERT_TRUE(client.connected()) << client.error();
    std::vector<std::string> first_types;
    for (int i = 0; i < 3; ++i) {
      auto message = client.Next(seconds(10));
      ASSERT_TRUE(message) << client.error();
      first_types.push_back((*message)["type"]);
      if (i == 2) {
        EXPECT_GT((*message)["protocols"].size(), 100u) << "definitions lists nDPI's catalogue";
      }
    }
    EXPECT_EQ(first_types,
              (std::vector<std::string>{"agent_hello", "agent_status", "definitions"}));

    for (const std::string& capture : kCaptures) {
      const std::string name = "probe-" + capture;
      CommandResult agent =
          RunAgent(capture, {"--gateway", gateway.endpoint(), "--name", name, "--site", "site-a"});
      ASSERT_EQ(agent.exit_code, 0) << capture << ": " << agent.err;
      std::vector<json> messages = ReadAgentStream(client, name);
      ASSERT_FALSE(messages.empty());
      EXPECT_EQ(messages.front()["type"], "agent_hello") << capture;
      for (const json& m : messages) {
        ASSERT_TRUE(m.contains("type")) << m.dump();
        EXPECT_EQ(m["agent"]["site"], "site-a");
        EXPECT_EQ(m["agent"]["id"].get<std::string>().size(), 36u);
        if (m["type"] == "flow_purge") {
          const std::string reason = m["reason"];
          EXPECT_TRUE(reason == "terminated" || reason == "expired" || reason == "closed")
              << reason;
          purges[name + "/" + m["flow"]["digest"].get<std::string>()] =
              reason == "terminated" ? v1::PURGE_REASON_TERMINATED
              : reason == "closed"   ? v1::PURGE_REASON_CLOSED
                                     : v1::PURGE_REASON_EXPIRED;
        }
      }
      EXPECT_EQ(messages.back()["flow_count"], 0) << "the final status follows the last purge";
      ExpectMatchesNdpi(FlowsByTuple(messages), capture);
    }
    EXPECT_EQ(gateway.Stop(), 0) << gateway.log();
    EXPECT_FALSE(std::filesystem::exists(socket_path)) << "the socket file is removed on exit";
  }
  {
    // Restart on the same data dir: it opens what it stored and stops cleanly again.
    Gateway gateway(data_dir, socket_path);
    ASSERT_TRUE(gateway.ready()) << gateway.log();
    EXPECT_NE(gateway.log().find("holds"), std::string::npos);
    EXPECT_EQ(gateway.Stop(), 0) << gateway.log();
  }
  Result<std::unique_ptr<storage::FlowStore>> store =
      storage::OpenRocksFlowStore({.path = data_dir});
  ASSERT_TRUE(store.ok()) << store.status().message();
  size_t stored_flows = 0;
  ASSERT_TRUE((*store)
                  ->ScanFlows([&](const v1::FlowRecord& record) {
                    ++stored_flows;
                    const std::string key =
                        record.agent().name() + "/" + record.counters().digest();
                    EXPECT_TRUE(purges.contains(key)) << "stored but never shown: " << key;
                    EXPECT_EQ(record.purge_reason(), purges[key]) << key;
                    EXPECT_FALSE(record.metadata().detected_protocol_name().empty())
                        << record.DebugString();
                    EXPECT_GT(record.counters().total_packets(), 0u) << record.DebugString();
                    return true;
                  })
                  .ok());
  EXPECT_EQ(stored_flows, purges.size()) << "every flow the socket showed is in the store";
  auto agents = (*store)->ListAgents();
  ASSERT_TRUE(agents.ok());
  EXPECT_EQ(agents->size(), kCaptures.size());
}

TEST_F(PipelineTest, JsonOutGivesTheSameFlowsAsTheGateway) {
  const std::string socket_path = dir_.Sub("flowgate.sock");
  Gateway gateway(dir_.Sub("data"), socket_path);
  ASSERT_TRUE(gateway.ready()) << gateway.log();
  NetifydSocketClient client(socket_path);
  ASSERT_TRUE(client.connected()) << client.error();
  const std::string capture = "dropbox.pcap";
  CommandResult via_gateway = RunAgent(capture, {"--gateway", gateway.endpoint(), "--name", "gw"});
  ASSERT_EQ(via_gateway.exit_code, 0) << via_gateway.err;
  std::map<FlowTuple, json> from_socket = FlowsByTuple(ReadAgentStream(client, "gw"));

  CommandResult local = RunAgent(capture, {"--json-out", "-"});
  ASSERT_EQ(local.exit_code, 0) << local.err;
  std::string error;
  std::vector<json> messages = ParseNetifydStream(local.out, &error);
  ASSERT_TRUE(error.empty()) << error;
  ASSERT_FALSE(messages.empty());
  EXPECT_EQ(messages.front()["type"], "agent_hello");
  EXPECT_EQ(messages.back()["type"], "agent_status");
  std::map<FlowTuple, json> from_stdout = FlowsByTuple(messages);
  ExpectMatchesNdpi(from_stdout, capture);
  ASSERT_EQ(from_stdout.size(), from_socket.size());
  for (const auto& [tuple, message] : from_stdout) {
    ASSERT_TRUE(from_socket.contains(tuple));
    json a = message["flow"], b = from_socket.at(tuple)["flow"];
    // Digests are salted by agent id (two runs, two ids); everything else is the same.
    a.erase("digest");
    b.erase("digest");
    EXPECT_EQ(a, b);
  }
}

// A hostile HTTP request (Latin-1 and stray bytes in the URL, user agent and host) must
// not cost the agent's batch: events are proto3 and the gateway refused the whole batch
// when a string was not UTF-8. The text arrives with U+FFFD for each bad byte.
TEST_F(PipelineTest, TextThatIsNotUtf8ReachesTheGatewayAsReplacementCharacters) {
  const std::string request =
      "GET /caf\xe9?q=\xff HTTP/1.1\r\nHost: www.ex\xe4mple.com\r\nUser-Agent: bot\x80/1\r\n\r\n";
  trafficgen::Rng rng(1);
  trafficgen::FrameList frames;
  trafficgen::TcpConversation http({{2, 0, 0, 0, 0, 2}, trafficgen::Ipv4(10, 0, 0, 2), 40000},
                                   {{2, 0, 0, 0, 0, 1}, trafficgen::Ipv4(192, 0, 2, 80), 80},
                                   {1'700'000'000'000'000, 20'000}, rng, frames);
  http.Open();
  http.ClientSends(std::span(reinterpret_cast<const uint8_t*>(request.data()), request.size()));
  http.Close();
  const std::string capture = dir_.Sub("latin1-http.pcap");
  Result<trafficgen::PcapWriter> writer = trafficgen::PcapWriter::Open(capture);
  ASSERT_TRUE(writer.ok()) << writer.status().message();
  for (const trafficgen::TimedFrame& frame : frames) {
    ASSERT_TRUE(writer->Write(frame.time_us, frame.frame).ok());
  }
  ASSERT_TRUE(writer->Close().ok());

  const std::string socket_path = dir_.Sub("flowgate.sock");
  Gateway gateway(dir_.Sub("data"), socket_path);
  ASSERT_TRUE(gateway.ready()) << gateway.log();
  NetifydSocketClient client(socket_path);
  ASSERT_TRUE(client.connected()) << client.error();
  CommandResult agent = RunCommand({BinaryPath("flowgate-agent"), "-r", capture, "--plaintext",
                                    "--gateway", gateway.endpoint(), "--name", "latin1"},
                                   seconds(60));
  ASSERT_EQ(agent.exit_code, 0) << agent.err;
  std::map<FlowTuple, json> flows = FlowsByTuple(ReadAgentStream(client, "latin1"));
  const FlowTuple tuple = MakeFlowTuple(6, "10.0.0.2", 40000, "192.0.2.80", 80, 0);
  ASSERT_TRUE(flows.contains(tuple)) << gateway.log();
  const json& flow = flows.at(tuple)["flow"];
  EXPECT_EQ(flow["http"].value("url", ""), "www.ex\uFFFDmple.com/caf\uFFFD?q=\uFFFD") << flow;
  EXPECT_EQ(flow["http"].value("user_agent", ""), "bot\uFFFD/1") << flow;
  EXPECT_EQ(flow.value("host_server_name", ""), "www.ex\uFFFDmple.com") << flow;
  EXPECT_EQ(gateway.log().find("refused"), std::string::npos) << gateway.log();
  EXPECT_NE(agent.err.find(", 0 batches refused by the gateway"), std::string::npos) << agent.err;
}

// Bad input: a one-line error naming the problem, a non-zero exit, promptly.
void ExpectCleanFailure(const CommandResult& result, const std::string& mention) {
  EXPECT_FALSE(result.timed_out) << "hung";
  EXPECT_NE(result.exit_code, 0);
  EXPECT_LT(result.exit_code, 128) << "crashed: " << result.err;
  std::string err = result.err;
  while (!err.empty() && err.back() == '\n') err.pop_back();
  // Log lines may precede it; the error is the last line and names the problem.
  std::string last = err.substr(err.rfind('\n') == std::string::npos ? 0 : err.rfind('\n') + 1);
  EXPECT_NE(last.find(mention), std::string::npos) << "stderr: " << result.err;
}

TEST_F(PipelineTest, AgentRejectsBadInputClearly) {
  const std::string agent = BinaryPath("flowgate-agent");
  ExpectCleanFailure(RunCommand({agent, "-r", dir_.Sub("missing.pcap"), "--json-out", "-"}),
                     "missing.pcap");
  std::ofstream(dir_.Sub("notes.txt")) << "this is not a capture\n";
  ExpectCleanFailure(RunCommand({agent, "-r", dir_.Sub("notes.txt"), "--json-out", "-"}),
                     "not a pcap or pcapng");
  ExpectCleanFailure(RunCommand({agent, "-r", dir_.path().string(), "--json-out", "-"}),
                     dir_.path().string());
  ExpectCleanFailure(RunCommand({agent, "--bogus"}), "unknown flag '--bogus'");
  ExpectCleanFailure(RunCommand({agent, "-r", CapturePath("443-git.pcap"), "--json-out", "-",
                                 "--name", "caf\xe9"}),
                     "--name is not UTF-8");
  ExpectCleanFailure(RunCommand({agent, "-r", CapturePath("443-git.pcap"), "--max-flows", "lots"}),
                     "--max-flows");
  ExpectCleanFailure(RunCommand({agent, "-r", CapturePath("443-git.pcap")}), "--json-out");
  ExpectCleanFailure(RunCommand({agent, "-r", CapturePath("443-git.pcap"), "--gateway",
                                 "tcp://127.0.0.1:1", "--delivery-timeout", "1s", "--plaintext"}),
                     "tcp://127.0.0.1:1");
  ExpectCleanFailure(RunCommand({agent, "-r", CapturePath("443-git.pcap"), "--gateway",
                                 "nonsense://x", "--plaintext"}),
                     "nonsense://x");
  CommandResult help = RunCommand({agent, "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--gateway"), std::string::npos);
}

TEST_F(PipelineTest, AgentReportsABrokenCaptureAfterDeliveringWhatItRead) {
  std::string bytes(std::filesystem::file_size(CapturePath("dropbox.pcap")), '\0');
  std::ifstream(CapturePath("dropbox.pcap"), std::ios::binary)
      .read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  std::ofstream(dir_.Sub("cut.pcap"), std::ios::binary) << bytes.substr(0, bytes.size() / 2 + 7);
  CommandResult result =
      RunCommand({BinaryPath("flowgate-agent"), "-r", dir_.Sub("cut.pcap"), "--json-out", "-"});
  ExpectCleanFailure(result, "cut.pcap");
  std::string error;
  std::vector<json> messages = ParseNetifydStream(result.out, &error);
  EXPECT_TRUE(error.empty()) << error;
  EXPECT_FALSE(FlowsByTuple(messages).empty()) << "flows before the break are still reported";
}

TEST_F(PipelineTest, GatewayRejectsBadInputClearly) {
  const std::string gateway = BinaryPath("flowgate-gateway");
  ExpectCleanFailure(RunCommand({gateway, "--bogus"}), "unknown flag '--bogus'");
  ExpectCleanFailure(RunCommand({gateway}), "--data-dir");
  std::ofstream(dir_.Sub("file")) << "x";
  ExpectCleanFailure(
      RunCommand({gateway, "--data-dir", dir_.Sub("file") + "/db", "--agents-plaintext"}), "file");
  ExpectCleanFailure(RunCommand({gateway, "--data-dir", dir_.Sub("d1"), "--agents-listen", "bogus",
                                 "--agents-plaintext"}),
                     "bogus");
  // A second gateway on the same data dir is refused, not corrupting the first's store.
  Gateway first(dir_.Sub("data"), dir_.Sub("a.sock"));
  ASSERT_TRUE(first.ready()) << first.log();
  ExpectCleanFailure(
      RunCommand({gateway, "--data-dir", dir_.Sub("data"), "--agents-listen", "tcp://127.0.0.1:*",
                  "--json-socket", dir_.Sub("b.sock"), "--agents-plaintext"}),
      "in use");
  // And a second gateway on the same socket path is refused while the first is alive.
  ExpectCleanFailure(
      RunCommand({gateway, "--data-dir", dir_.Sub("data2"), "--agents-listen", "tcp://127.0.0.1:*",
                  "--json-socket", dir_.Sub("a.sock"), "--agents-plaintext"}),
      "in use");
  CommandResult help = RunCommand({gateway, "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--json-socket"), std::string::npos);
}

// The gateway's CPU per event depends on its allocator (FLOWGATE_JEMALLOC in
// CMakeLists.txt): an operator reads which one it runs on in its startup line.
TEST_F(PipelineTest, GatewayNamesItsAllocatorWhenReady) {
  Gateway gateway(dir_.Sub("data"), dir_.Sub("g.sock"));
  ASSERT_TRUE(gateway.ready()) << gateway.log();
#if FLOWGATE_GATEWAY_JEMALLOC
  EXPECT_NE(gateway.log().find("ready (allocator: jemalloc 5."), std::string::npos)
      << gateway.log();
#else
  EXPECT_NE(gateway.log().find("ready (allocator: glibc malloc)"), std::string::npos)
      << gateway.log();
#endif
}

// Operators look at a busy gateway with `top -H` or perf: each ingest stage shows by name.
TEST_F(PipelineTest, GatewayThreadsAreNamedByTheirStage) {
  Gateway gateway(dir_.Sub("data"), dir_.Sub("g.sock"));
  ASSERT_TRUE(gateway.ready()) << gateway.log();
  std::set<std::string> names;
  const std::string tasks = "/proc/" + std::to_string(gateway.pid()) + "/task";
  for (const auto& task : std::filesystem::directory_iterator(tasks)) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    if (std::getline(comm, name)) names.insert(name);
  }
  for (const std::string stage :
       {"ingest-socket", "ingest-prepare", "ingest-commit", "json-socket"}) {
    EXPECT_TRUE(names.contains(stage)) << stage << " not among the gateway's threads";
  }
}

// The benchmarks are run by hand too (to profile one part, at another scale): a typo in a
// flag must not quietly run the whole default benchmark instead.
TEST_F(PipelineTest, BenchmarksPrintHelpAndRefuseUnknownFlags) {
  for (const std::string name :
       {"flowgate_bench", "flowgate_json_bench", "flowgate_transport_bench",
        "flowgate_history_bench", "flowgate_e2e_bench", "flowgate_clickhouse_bench"}) {
    SCOPED_TRACE(name);
    const std::string bench = BinaryPath(name);
    CommandResult help = RunCommand({bench, "--help"});
    EXPECT_EQ(help.exit_code, 0) << help.err;
    EXPECT_EQ(help.out.rfind("Usage: " + name, 0), 0u) << help.out;
    ExpectCleanFailure(RunCommand({bench, "--bogus"}), "unknown flag '--bogus'");
  }
  ExpectCleanFailure(RunCommand({BinaryPath("flowgate_bench"), "--repeats", "0"}), "--repeats");
  ExpectCleanFailure(RunCommand({BinaryPath("flowgate_transport_bench"), "--only", "wire"}),
                     "--only is raw, writes, store or transport");
}

TEST_F(PipelineTest, CliPrintsHelp) {
  CommandResult help = RunCommand({BinaryPath("flowgate"), "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("query"), std::string::npos);
  ExpectCleanFailure(RunCommand({BinaryPath("flowgate"), "frobnicate"}), "unknown command");
}

}  // namespace
}  // namespace flowgate::testing
