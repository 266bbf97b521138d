// Live capture: reference captures replayed with tcpreplay into a veth pair, the agent
// capturing on the other end (-i), must give the flows and labels of the offline run.
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "../support/ndpi_reference.h"
#include "../support/netifyd_stream.h"
#include "../support/netns.h"
#include "../support/process.h"
#include "../support/temp_dir.h"

namespace flowgate::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

// Ethernet captures (tcpreplay sends frames as they are) with TCP, UDP, TLS, QUIC, DNS.
const std::vector<std::string> kCaptures = {
    "dropbox.pcap", "steam.pcap", "whatsapp_login_chat.pcap",
    "dns_doh.pcap", "quic.pcap",  "google_ssl.pcap"};

std::vector<json> ReadStream(const std::string& path) {
  std::ifstream in(path);
  std::stringstream bytes;
  bytes << in.rdbuf();
  std::string error;
  std::vector<json> messages = ParseNetifydStream(bytes.str(), &error);
  // A live stream read while the agent writes may end inside a frame: only complete frames
  // count, and the final read happens after the agent exited.
  return messages;
}

// Packets the agent has read on `interface` so far, from its agent_status messages.
uint64_t PacketsSeen(const std::string& path, const std::string& interface) {
  uint64_t packets = 0;
  for (const json& m : ReadStream(path)) {
    if (m.value("type", "") != "agent_status" || !m.contains("stats")) continue;
    if (m["stats"].contains(interface)) packets += m["stats"][interface].value("raw", uint64_t{0});
  }
  return packets;
}

std::vector<std::string> AgentArgs(const std::string& testdata) {
  return {"--ndpi-protos",      testdata + "/ndpi-4.2/config/protos.txt",
          "--idle-timeout",     "1h",
          "--tcp-idle-timeout", "1h"};
}

// Replays kCaptures into `net` with tcpreplay (`pace`: its speed flags), then waits
// (bounded) until the agent writing `out` reports having read every packet sent. Returns
// the packets tcpreplay sent; 0 (and a test failure) when the replay did not work.
uint64_t ReplayAndWaitUntilRead(const VethNamespace& net, const std::vector<std::string>& pace,
                                const std::string& out) {
  std::vector<std::string> replay = {"/usr/bin/tcpreplay", "-q"};
  replay.insert(replay.end(), pace.begin(), pace.end());
  replay.insert(replay.end(), {"-i", net.namespace_end()});
  for (const std::string& capture : kCaptures)
    replay.push_back(TestdataDir() + "/ndpi-4.2/pcap/" + capture);
  CommandResult sent = RunCommand(net.InNamespace(replay), seconds(120));
  const std::string report = sent.out + sent.err;
  std::smatch m;
  if (sent.exit_code != 0 ||
      !std::regex_search(report, m, std::regex(R"(Actual: (\d+) packets)"))) {
    ADD_FAILURE() << "tcpreplay failed: " << report;
    return 0;
  }
  const uint64_t packets = std::stoull(m[1].str());
  // The agent reports what it read once a second; wait (bounded) until all of it arrived.
  const auto deadline = std::chrono::steady_clock::now() + seconds(30);
  while (PacketsSeen(out, net.host_end()) < packets &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(200));  // polling an observed count, bounded
  }
  return packets;
}

TEST(AgentLive, ReplayedCapturesMatchTheOfflineRun) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root for network namespaces";
  if (!std::filesystem::exists("/usr/bin/tcpreplay")) GTEST_SKIP() << "tcpreplay missing";
  const std::string testdata = TestdataDir();
  TempDir dir;

  // The offline answer, capture by capture.
  std::map<FlowTuple, json> offline;
  for (const std::string& capture : kCaptures) {
    const std::string out = dir.Sub(capture + ".offline.json");
    std::vector<std::string> argv = {BinaryPath("flowgate-agent"), "-r",
                                     testdata + "/ndpi-4.2/pcap/" + capture, "--json-out", out};
    for (const std::string& arg : AgentArgs(testdata)) argv.push_back(arg);
    CommandResult run = RunCommand(argv, seconds(60));
    ASSERT_EQ(run.exit_code, 0) << run.err;
    offline.merge(FlowsByTuple(ReadStream(out)));
  }
  ASSERT_FALSE(offline.empty());

  VethNamespace net;  // removed at scope exit, whatever happens below
  ASSERT_TRUE(net.ok()) << net.error();
  const std::string live_out = dir.Sub("live.json");
  std::vector<std::string> argv = {
      BinaryPath("flowgate-agent"), "-i", net.host_end(), "--json-out", live_out,
      "--update-interval",          "1s", "--workers",    "2"};
  for (const std::string& arg : AgentArgs(testdata)) argv.push_back(arg);
  BackgroundProcess agent(argv);
  ASSERT_TRUE(agent.WaitForStderrLine("capturing on", seconds(30)).has_value())
      << agent.stderr_text();

  const uint64_t packets = ReplayAndWaitUntilRead(net, {"--pps", "2000"}, live_out);
  ASSERT_GT(packets, 0u);
  const uint64_t seen = PacketsSeen(live_out, net.host_end());
  EXPECT_GE(seen, packets) << "the agent read fewer packets than were sent";
  EXPECT_EQ(agent.StopWith(SIGTERM), 0) << agent.stderr_text();

  const std::vector<json> messages = ReadStream(live_out);
  ASSERT_FALSE(messages.empty());
  EXPECT_EQ(messages.back().value("type", ""), "agent_status");
  EXPECT_TRUE(messages.back().value("final", false));
  const std::map<FlowTuple, json> live = FlowsByTuple(messages);
  int same = 0;
  std::ostringstream differences;
  for (const auto& [tuple, flow] : offline) {
    auto it = live.find(tuple);
    const std::string got = it == live.end() ? "(missing)" : NdpiName(it->second);
    if (got == NdpiName(flow)) {
      ++same;
    } else {
      const auto& [l4, a, pa, b, pb, vlan] = tuple;
      differences << l4 << " " << a << ":" << pa << " <-> " << b << ":" << pb << ": live " << got
                  << ", offline " << NdpiName(flow) << "\n";
    }
  }
  const double percent = 100.0 * same / static_cast<double>(offline.size());
  std::printf("live vs offline: %d/%zu flows with equal labels (%.2f%%), %zu live flows\n%s", same,
              offline.size(), percent, live.size(), differences.str().c_str());
  EXPECT_GE(percent, 99.0);
  EXPECT_LE(live.size(), offline.size() + offline.size() / 100) << "extra flows seen live";
}

// A worker that cannot keep up must cost packets, never correctness: with one-packet queues
// and traffic at tcpreplay's top speed, packets are dropped, and every packet the capture
// read is accounted for as classified (in some flow's counters), undecodable or dropped by
// a queue, with the drops reported per interface in agent_status.
TEST(AgentLive, FullWorkerQueuesDropAndCountWhatTheyLose) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root for network namespaces";
  if (!std::filesystem::exists("/usr/bin/tcpreplay")) GTEST_SKIP() << "tcpreplay missing";
  const std::string testdata = TestdataDir();
  TempDir dir;
  VethNamespace net;
  ASSERT_TRUE(net.ok()) << net.error();
  const std::string out = dir.Sub("live.json");
  std::vector<std::string> argv = {
      BinaryPath("flowgate-agent"), "-i", net.host_end(),    "--json-out", out,
      "--update-interval",          "1s", "--queue-packets", "1"};
  for (const std::string& arg : AgentArgs(testdata)) argv.push_back(arg);
  BackgroundProcess agent(argv);
  ASSERT_TRUE(agent.WaitForStderrLine("capturing on", seconds(30)).has_value())
      << agent.stderr_text();

  const uint64_t packets = ReplayAndWaitUntilRead(net, {"--topspeed"}, out);
  ASSERT_GT(packets, 0u);
  ASSERT_EQ(agent.StopWith(SIGTERM), 0) << agent.stderr_text();

  uint64_t raw = 0, discarded = 0, queue_dropped = 0, classified = 0;
  for (const json& message : ReadStream(out)) {
    const std::string type = message.value("type", "");
    if (type == "agent_status" && message.contains("stats") &&
        message["stats"].contains(net.host_end())) {
      const json& stats = message["stats"][net.host_end()];
      raw += stats.value("raw", uint64_t{0});
      discarded += stats.value("discarded", uint64_t{0});
      queue_dropped += stats.value("queue_dropped", uint64_t{0});
    } else if (type == "flow_purge") {
      classified += message["flow"].value("total_packets", uint64_t{0});
    }
  }
  EXPECT_GE(raw, packets) << "the agent read fewer packets than were sent";
  EXPECT_GT(queue_dropped, 0u) << "one-packet queues at top speed dropped nothing";
  EXPECT_EQ(raw, classified + discarded + queue_dropped)
      << raw << " read = " << classified << " in flows + " << discarded << " undecodable + "
      << queue_dropped << " dropped by full queues";
  std::printf("read %llu packets: %llu in flows, %llu undecodable, %llu dropped by full queues\n",
              static_cast<unsigned long long>(raw), static_cast<unsigned long long>(classified),
              static_cast<unsigned long long>(discarded),
              static_cast<unsigned long long>(queue_dropped));
}

}  // namespace
}  // namespace flowgate::testing
