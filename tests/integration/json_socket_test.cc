// The gateway's netifyd-compatible JSON socket with real clients: nc + jq, a strict
// length-aware reader, a line reader, many readers at once, a reader that stalls, readers
// that misbehave, a TCP listener, and --replay-active.
#include <grp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "../support/gateway_process.h"
#include "../support/netifyd_stream.h"
#include "../support/temp_dir.h"
#include "../support/test_agent.h"

namespace flowgate::testing {
namespace {

using nlohmann::json;
using std::chrono::seconds;

// Sends `count` flow events in batches of `batch` from `agent`; each batch acknowledged.
void SendFlows(TestAgent& agent, int first, int count, int batch = 200) {
  for (int n = first; n < first + count; n += batch) {
    std::vector<v1::Event> events;
    for (int i = n; i < std::min(first + count, n + batch); ++i) {
      events.push_back(MakeFlowEvent(i, "TLS", "YouTube", "www.youtube.com"));
    }
    std::optional<v1::Ack> ack = agent.SendBatch(events);
    ASSERT_TRUE(ack.has_value()) << "no ack from the gateway";
    ASSERT_EQ(ack->status(), v1::ACK_STATUS_STORED) << ack->error();
  }
}

// Reads until `count` flow messages have arrived (other messages are skipped), within one
// overall deadline; returns their digests in order. `progress`, if set, is called after
// each flow with the number read so far.
std::vector<std::string> ReadFlowDigests(NetifydSocketClient& client, size_t count,
                                         const std::function<void(size_t)>& progress = nullptr) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  std::vector<std::string> digests;
  while (digests.size() < count) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    std::optional<json> message = left.count() > 0 ? client.Next(left) : std::optional<json>();
    if (!message) {
      ADD_FAILURE() << "after " << digests.size() << " of " << count
                    << " flows: " << (left.count() > 0 ? client.error() : "out of time");
      break;
    }
    if ((*message)["type"] == "flow") {
      digests.push_back((*message)["flow"]["digest"]);
      if (progress) progress(digests.size());
    }
  }
  return digests;
}

class JsonSocketTest : public ::testing::Test {
 protected:
  std::string Socket() const { return dir_.Sub("flowgate.sock"); }
  std::vector<std::string> Args(std::vector<std::string> extra) const {
    std::vector<std::string> args = {"--data-dir", dir_.Sub("data"),    "--json-socket",
                                     Socket(),     "--status-interval", "1s"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
  TempDir dir_;
};

TEST_F(JsonSocketTest, NcJqStrictAndLineReadersAllParseTheWholeStream) {
  GatewayProcess gateway(Args({}));
  ASSERT_TRUE(gateway.ready()) << gateway.log();
  // What users run: Debian's netcat-openbsd piped into jq.
  const std::string jq_out = dir_.Sub("jq.out");
  BackgroundProcess nc_jq(
      {"/bin/sh", "-c", "nc -U '" + Socket() + "' | jq -c 'select(.type)' > '" + jq_out + "'"});
  ASSERT_TRUE(gateway.WaitForLog("connected from unix:")) << gateway.log();
  // A raw reader, to check the bytes themselves; it reads as fast as they come.
  const int raw = ConnectUnixSocket(Socket());
  ASSERT_GE(raw, 0);
  ASSERT_TRUE(gateway.WaitForLog("client 2 connected")) << gateway.log();
  std::string bytes;
  std::thread raw_reader([&] {
    char buffer[65536];
    ssize_t n;
    while ((n = ::read(raw, buffer, sizeof buffer)) > 0)
      bytes.append(buffer, static_cast<size_t>(n));
    ::close(raw);
  });

  TestAgent agent(gateway.endpoint(), "probe-1", "site-a");
  constexpr int kFlows = 1000;
  SendFlows(agent, 0, kFlows);
  std::vector<v1::Event> purges;
  for (int n = 0; n < kFlows; ++n) purges.push_back(MakePurgeEvent(n));
  ASSERT_TRUE(agent.SendBatch(purges).has_value());
  // A clean stop lets readers take everything queued; nc then sees EOF and jq finishes.
  EXPECT_EQ(gateway.Stop(), 0) << gateway.log();
  EXPECT_EQ(nc_jq.StopWith(0, seconds(30)), 0) << "nc | jq did not finish cleanly";

  raw_reader.join();  // EOF: the gateway closed it after sending everything

  // Strict reader: every header exact, every payload exactly N bytes ending in '\n'.
  std::string error;
  std::vector<json> strict = ParseNetifydStream(bytes, &error);
  ASSERT_TRUE(error.empty()) << error;
  ASSERT_GE(strict.size(), 3u + 2 * kFlows);
  EXPECT_EQ(strict[0]["type"], "agent_hello");
  EXPECT_EQ(strict[1]["type"], "agent_status");
  EXPECT_EQ(strict[2]["type"], "definitions");

  // Line reader: skip the {"length" lines; what is left is the same messages.
  std::vector<json> lines;
  std::istringstream in(bytes);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("{\"length\"", 0) == 0) continue;
    lines.push_back(json::parse(line));
  }
  EXPECT_EQ(lines, strict);

  // jq saw the same messages: every object with a type (the headers have none).
  std::vector<json> from_jq;
  std::ifstream jq(jq_out);
  while (std::getline(jq, line)) from_jq.push_back(json::parse(line));
  ASSERT_EQ(from_jq.size(), strict.size() - 0) << "jq output differs in count";
  size_t flows = 0, purged = 0;
  for (const json& m : from_jq) {
    flows += m["type"] == "flow";
    purged += m["type"] == "flow_purge";
    if (m["type"] == "flow" || m["type"] == "flow_purge") {
      EXPECT_EQ(m["agent"]["name"], "probe-1");
      EXPECT_EQ(m["agent"]["site"], "site-a");
      EXPECT_EQ(m["agent"]["id"], agent.identity().id());
    }
  }
  EXPECT_EQ(flows, static_cast<size_t>(kFlows));
  EXPECT_EQ(purged, static_cast<size_t>(kFlows));
}

TEST_F(JsonSocketTest, FiftyClientsReceiveEveryMessageInTheSameOrder) {
  GatewayProcess gateway(Args({}));
  ASSERT_TRUE(gateway.ready()) << gateway.log();
  std::vector<std::unique_ptr<NetifydSocketClient>> clients;
  for (int i = 0; i < 50; ++i) {
    clients.push_back(std::make_unique<NetifydSocketClient>(Socket()));
    ASSERT_TRUE(clients.back()->connected()) << clients.back()->error();
    // Registered once its welcome frames arrive.
    for (int w = 0; w < 3; ++w)
      ASSERT_TRUE(clients.back()->Next(seconds(10))) << clients.back()->error();
  }
  TestAgent a(gateway.endpoint(), "probe-a", "site-a"), b(gateway.endpoint(), "probe-b", "site-b");
  constexpr int kPerAgent = 1000;
  SendFlows(a, 0, kPerAgent, 100);
  SendFlows(b, kPerAgent, kPerAgent, 100);
  std::vector<std::string> first = ReadFlowDigests(*clients[0], 2 * kPerAgent);
  ASSERT_EQ(first.size(), 2u * kPerAgent);
  for (size_t i = 1; i < clients.size(); ++i) {
    EXPECT_EQ(ReadFlowDigests(*clients[i], 2 * kPerAgent), first) << "client " << i;
  }
}

TEST_F(JsonSocketTest, StalledClientLosesWholeMessagesAndNobodyElseNotices) {
  GatewayProcess gateway(Args({"--json-client-buffer", "64KiB"}));
  ASSERT_TRUE(gateway.ready()) << gateway.log();
  const int stalled = ConnectUnixSocket(Socket());  // never reads until the end
  ASSERT_GE(stalled, 0);
  ASSERT_TRUE(gateway.WaitForLog("client 1 connected")) << gateway.log();
  NetifydSocketClient reader(Socket());
  ASSERT_TRUE(reader.connected());
  ASSERT_TRUE(gateway.WaitForLog("client 2 connected")) << gateway.log();

  TestAgent agent(gateway.endpoint(), "probe-1", "site-a");
  constexpr int kFlows = 20000;
  // The reader keeps up: each batch goes out only once the reader has the one before, so
  // its queue in the gateway never holds more than one batch (well under 64 KiB), however
  // slow this machine is. The stalled client meanwhile overflows its own.
  std::mutex mutex;
  std::condition_variable progressed;
  size_t read_so_far = 0;
  size_t read_flows = 0;
  std::thread read_all([&] {
    read_flows = ReadFlowDigests(reader, kFlows, [&](size_t n) {
                   std::lock_guard lock(mutex);
                   read_so_far = n;
                   progressed.notify_all();
                 }).size();
    std::lock_guard lock(mutex);
    read_so_far = kFlows;  // done (or failed): release the sender
    progressed.notify_all();
  });
  constexpr int kBatch = 20;
  for (int n = 0; n < kFlows; n += kBatch) {
    SendFlows(agent, n, kBatch, kBatch);
    std::unique_lock lock(mutex);
    if (!progressed.wait_for(lock, seconds(60),
                             [&] { return read_so_far >= static_cast<size_t>(n + kBatch); })) {
      ADD_FAILURE() << "the reader stopped receiving at " << read_so_far;
      break;
    }
  }
  read_all.join();
  EXPECT_EQ(read_flows, static_cast<size_t>(kFlows)) << "the reading client gets every message";

  // The gateway's own status (every second) counts the stalled client's drops and shows
  // its queue within the configured bound.
  bool reported = false;
  for (int statuses = 0; !reported && statuses < 30;) {
    std::optional<json> message = reader.Next(seconds(10));
    if (!message) break;
    statuses += (*message)["type"] == "agent_status";
    if ((*message)["type"] != "agent_status" || !message->contains("gateway")) continue;
    const json& g = (*message)["gateway"];
    if (g["json_frames_dropped"].get<uint64_t>() == 0) continue;
    for (const json& c : g["json_client"]) {
      if (c["id"] != 1) continue;
      EXPECT_GT(c["frames_dropped"].get<uint64_t>(), 0u);
      EXPECT_LE(c["queued_bytes"].get<uint64_t>(), 64u * 1024 + 16 * 1024) << c.dump();
      reported = true;
    }
    if (reported) break;
  }
  EXPECT_TRUE(reported) << "no gateway status reported the stalled client's drops";

  // When it finally reads, it gets only whole frames.
  EXPECT_EQ(gateway.Stop(), 0);
  std::string bytes;
  char buffer[65536];
  ssize_t n;
  while ((n = ::read(stalled, buffer, sizeof buffer)) > 0)
    bytes.append(buffer, static_cast<size_t>(n));
  ::close(stalled);
  std::string error;
  std::vector<json> messages = ParseNetifydStream(bytes, &error);
  EXPECT_TRUE(error.empty()) << error;
  EXPECT_LT(messages.size(), static_cast<size_t>(kFlows)) << "it must have lost some";
}

TEST_F(JsonSocketTest, MisbehavingClientsDoNotDisturbTheRest) {
  GatewayProcess gateway(Args({}));
  ASSERT_TRUE(gateway.ready()) << gateway.log();
  NetifydSocketClient reader(Socket());
  ASSERT_TRUE(reader.connected());
  for (int w = 0; w < 3; ++w) ASSERT_TRUE(reader.Next(seconds(10)));
  TestAgent agent(gateway.endpoint(), "probe-1", "site-a");

  // A client that writes is disconnected, as netifyd does.
  const int writer = ConnectUnixSocket(Socket());
  ASSERT_GE(writer, 0);
  ASSERT_EQ(::write(writer, "hello\n", 6), 6);
  char buffer[65536];
  ssize_t n;
  while ((n = ::read(writer, buffer, sizeof buffer)) > 0) {
  }
  EXPECT_EQ(n, 0) << "the gateway closes a client that writes";
  ::close(writer);

  // Clients that vanish mid-frame, and a flood of connects and disconnects.
  for (int i = 0; i < 300; ++i) {
    const int fd = ConnectUnixSocket(Socket());
    ASSERT_GE(fd, 0) << "connect " << i;
    if (i % 3 == 0) (void)::read(fd, buffer, 7);  // leave mid-header
    ::close(fd);
  }
  SendFlows(agent, 0, 500, 50);
  EXPECT_EQ(ReadFlowDigests(reader, 500).size(), 500u);
  EXPECT_EQ(gateway.Stop(), 0) << gateway.log();
}

TEST_F(JsonSocketTest, TcpListenerAndSocketPermissions) {
  const gid_t group = 1;  // "daemon" on Debian; any existing group other than ours will do
  ASSERT_NE(::getgrgid(group), nullptr);
  GatewayProcess gateway(Args({"--json-tcp", "127.0.0.1:0", "--json-socket-mode", "0640",
                               "--json-socket-group", std::to_string(group)}));
  ASSERT_TRUE(gateway.ready()) << gateway.log();
  struct stat st {};
  ASSERT_EQ(::stat(Socket().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_gid, group);
  ASSERT_EQ(gateway.json_tcp().size(), 1u);
  EXPECT_EQ(gateway.json_tcp()[0].rfind("127.0.0.1:", 0), 0u);

  const std::string out = dir_.Sub("tcp.out");
  const std::string port = gateway.json_tcp()[0].substr(gateway.json_tcp()[0].find(':') + 1);
  BackgroundProcess nc(
      {"/bin/sh", "-c", "nc 127.0.0.1 " + port + " | jq -c 'select(.type)' > '" + out + "'"});
  ASSERT_TRUE(gateway.WaitForLog("connected from tcp:")) << gateway.log();
  TestAgent agent(gateway.endpoint(), "probe-1", "site-a");
  SendFlows(agent, 0, 100);
  EXPECT_EQ(gateway.Stop(), 0);
  EXPECT_EQ(nc.StopWith(0, seconds(30)), 0);
  std::ifstream in(out);
  std::string line;
  size_t flows = 0;
  std::vector<std::string> types;
  while (std::getline(in, line)) {
    json m = json::parse(line);
    types.push_back(m["type"]);
    flows += m["type"] == "flow";
  }
  ASSERT_GE(types.size(), 3u);
  EXPECT_EQ(types[0], "agent_hello");
  EXPECT_EQ(types[2], "definitions");
  EXPECT_EQ(flows, 100u);
  EXPECT_FALSE(std::filesystem::exists(Socket()));
}

TEST_F(JsonSocketTest, ReplayActiveSendsFlowsStillActiveAsEstablished) {
  {
    GatewayProcess gateway(Args({"--replay-active"}));
    ASSERT_TRUE(gateway.ready()) << gateway.log();
    TestAgent agent(gateway.endpoint(), "probe-1", "site-a");
    SendFlows(agent, 0, 10);
    ASSERT_TRUE(agent.SendBatch({MakePurgeEvent(3), MakePurgeEvent(7)}).has_value());

    NetifydSocketClient late(Socket());
    ASSERT_TRUE(late.connected());
    std::vector<std::string> types;
    std::set<std::string> replayed;
    for (int i = 0; i < 3 + 8; ++i) {
      std::optional<json> m = late.Next(seconds(10));
      ASSERT_TRUE(m) << late.error();
      types.push_back((*m)["type"]);
      if ((*m)["type"] == "flow") {
        EXPECT_EQ((*m)["established"], true);
        EXPECT_EQ((*m)["agent"]["name"], "probe-1");
        replayed.insert((*m)["flow"]["digest"]);
      }
    }
    EXPECT_EQ(std::vector<std::string>(types.begin(), types.begin() + 3),
              (std::vector<std::string>{"agent_hello", "agent_status", "definitions"}));
    EXPECT_EQ(replayed.size(), 8u);
    EXPECT_FALSE(replayed.contains(FlowDigest(3))) << "a purged flow is not active";
    EXPECT_FALSE(replayed.contains(FlowDigest(7)));
    EXPECT_EQ(gateway.Stop(), 0);
  }
  // After a restart the active set comes back from the store.
  GatewayProcess gateway(Args({"--replay-active"}));
  ASSERT_TRUE(gateway.ready()) << gateway.log();
  NetifydSocketClient client(Socket());
  size_t flows = 0;
  for (int i = 0; i < 3 + 8; ++i) {
    std::optional<json> m = client.Next(seconds(10));
    ASSERT_TRUE(m) << client.error();
    flows += (*m)["type"] == "flow";
  }
  EXPECT_EQ(flows, 8u);
}

TEST_F(JsonSocketTest, PerListenerFilterSendsOnlyMatchingEvents) {
  const std::string youtube_socket = dir_.Sub("youtube.sock");
  GatewayProcess gateway(Args({"--json-socket", youtube_socket, "--json-filter",
                               "app == \"YouTube\" and type == \"flow\""}));
  ASSERT_TRUE(gateway.ready()) << gateway.log();
  NetifydSocketClient all(Socket()), youtube(youtube_socket);
  for (NetifydSocketClient* c : {&all, &youtube}) {
    for (int w = 0; w < 3; ++w) ASSERT_TRUE(c->Next(seconds(10))) << c->error();
  }
  TestAgent agent(gateway.endpoint(), "probe-1", "site-a");
  std::vector<v1::Event> events;
  for (int n = 0; n < 100; ++n) {
    events.push_back(n % 4 == 0 ? MakeFlowEvent(n, "TLS", "YouTube", "www.youtube.com")
                                : MakeFlowEvent(n, "TLS", "NetFlix", "www.netflix.com"));
    events.push_back(MakePurgeEvent(n));
  }
  ASSERT_TRUE(agent.SendBatch(events).has_value());
  EXPECT_EQ(ReadFlowDigests(all, 100).size(), 100u);
  std::vector<std::string> only = ReadFlowDigests(youtube, 25);
  ASSERT_EQ(only.size(), 25u);
  for (size_t i = 0; i < only.size(); ++i) EXPECT_EQ(only[i], FlowDigest(static_cast<int>(4 * i)));
  // Nothing else was queued for it: the next message is the gateway's own status.
  std::optional<json> next = youtube.Next(seconds(10));
  ASSERT_TRUE(next) << youtube.error();
  EXPECT_EQ((*next)["type"], "agent_status");
  EXPECT_FALSE(next->contains("agent")) << "the gateway's own status, not an agent's";

  CommandResult bad = RunCommand({BinaryPath("flowgate-gateway"), "--data-dir", dir_.Sub("d2"),
                                  "--json-socket", dir_.Sub("x.sock"), "--json-filter", "app == "});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("column"), std::string::npos) << bad.err;
}

TEST_F(JsonSocketTest, LiveSocketIsRefusedAndStaleOneReplaced) {
  {
    GatewayProcess first(Args({}));
    ASSERT_TRUE(first.ready()) << first.log();
    CommandResult second = RunCommand({BinaryPath("flowgate-gateway"), "--data-dir",
                                       dir_.Sub("data2"), "--agents-listen", "tcp://127.0.0.1:*",
                                       "--json-socket", Socket(), "--agents-plaintext"});
    EXPECT_NE(second.exit_code, 0);
    EXPECT_NE(second.err.find("in use"), std::string::npos) << second.err;
    EXPECT_EQ(first.Kill(), 128 + SIGKILL);  // leaves a stale socket file behind
  }
  ASSERT_TRUE(std::filesystem::exists(Socket()));
  GatewayProcess again(Args({}));
  EXPECT_TRUE(again.ready()) << "a stale socket file is replaced: " << again.log();
}

}  // namespace
}  // namespace flowgate::testing
