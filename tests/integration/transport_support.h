// Helpers of the transport tests (issue 4): generated captures, agents and gateways as
// real processes, and the exact comparison of what agents sent with what the store holds.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "../support/gateway_process.h"
#include "../support/netifyd_stream.h"
#include "../support/process.h"
#include "../support/temp_dir.h"
#include "flowgate/common/netifyd_json.h"
#include "flowgate/storage/flow_store.h"

namespace flowgate::testing::transport {

// A multiset of events, each as canonical compact JSON (what the agent's --json-out says).
using EventBag = std::map<std::string, uint64_t>;

inline std::string Canonical(const v1::Event& event) {
  return nlohmann::json::parse(EncodeNetifydPayload(event, nullptr)).dump();
}

// Writes a deterministic capture of `sessions` synthetic sessions (about 3.4 events each)
// starting over `duration` of packet time.
inline std::string MakeCapture(const TempDir& dir, const std::string& name, int sessions, int seed,
                               const std::string& duration = "60s") {
  const std::string path = dir.Sub(name);
  CommandResult made =
      RunCommand({BinaryPath("flowgate-trafficgen"), "--out", path, "--sessions",
                  std::to_string(sessions), "--seed", std::to_string(seed), "--duration", duration},
                 std::chrono::seconds(120));
  EXPECT_EQ(made.exit_code, 0) << made.err;
  return path;
}

// The events of an agent's --json-out file, in the order the agent emitted them (which is
// also the order of its batches to the gateway).
inline std::vector<std::string> JsonOutEventLog(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  std::string error;
  std::vector<std::string> log;
  for (const nlohmann::json& message : ParseNetifydStream(bytes.str(), &error)) {
    log.push_back(message.dump());
  }
  EXPECT_TRUE(error.empty()) << path << ": " << error;
  return log;
}

// The events of an agent's --json-out file. Only agent_status differs between runs of the
// same capture, so callers compare everything.
inline EventBag JsonOutEvents(const std::string& path) {
  EventBag bag;
  for (const std::string& event : JsonOutEventLog(path)) bag[event] += 1;
  return bag;
}

inline uint64_t Count(const EventBag& bag) {
  uint64_t n = 0;
  for (const auto& [event, count] : bag) n += count;
  return n;
}

// Every event in the store at `data_dir` (the gateway must be stopped), by agent name, in
// the order of the store's log.
inline std::map<std::string, std::vector<std::string>> StoredEventLogByAgent(
    const std::string& data_dir) {
  std::map<std::string, std::vector<std::string>> by_agent;
  Result<std::unique_ptr<storage::FlowStore>> store =
      storage::OpenRocksFlowStore({.path = data_dir});
  EXPECT_TRUE(store.ok()) << store.status().message();
  if (!store.ok()) return by_agent;
  uint64_t after = 0;
  while (true) {
    std::vector<v1::StoredEvent> events;
    Status read = (*store)->ReadEvents(after, 10'000, &events);
    EXPECT_TRUE(read.ok()) << read.message();
    if (!read.ok() || events.empty()) break;
    for (const v1::StoredEvent& stored : events) {
      by_agent[stored.agent().name()].push_back(Canonical(stored.event()));
      after = stored.gateway_sequence();
    }
  }
  return by_agent;
}

// Every event in the store at `data_dir` (the gateway must be stopped), by agent name.
inline std::map<std::string, EventBag> StoredEventsByAgent(const std::string& data_dir) {
  std::map<std::string, EventBag> by_agent;
  for (const auto& [agent, log] : StoredEventLogByAgent(data_dir)) {
    for (const std::string& event : log) by_agent[agent][event] += 1;
  }
  return by_agent;
}

inline std::vector<v1::AgentRecord> StoredAgents(const std::string& data_dir) {
  Result<std::unique_ptr<storage::FlowStore>> store =
      storage::OpenRocksFlowStore({.path = data_dir});
  EXPECT_TRUE(store.ok()) << store.status().message();
  if (!store.ok()) return {};
  Result<std::vector<v1::AgentRecord>> agents = (*store)->ListAgents();
  EXPECT_TRUE(agents.ok());
  return agents.ok() ? *agents : std::vector<v1::AgentRecord>{};
}

// Explains the first differences between what was sent and what was stored.
inline ::testing::AssertionResult SameEvents(const EventBag& sent, const EventBag& stored) {
  uint64_t missing = 0, extra = 0;
  std::string example;
  for (const auto& [event, count] : sent) {
    auto it = stored.find(event);
    const uint64_t have = it == stored.end() ? 0 : it->second;
    if (have < count) {
      missing += count - have;
      if (example.empty()) example = "missing: " + event.substr(0, 200);
    }
  }
  for (const auto& [event, count] : stored) {
    auto it = sent.find(event);
    const uint64_t want = it == sent.end() ? 0 : it->second;
    if (count > want) {
      extra += count - want;
      if (example.empty()) example = "extra (or twice): " + event.substr(0, 200);
    }
  }
  if (missing == 0 && extra == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << Count(sent) << " events sent, " << Count(stored) << " stored: " << missing
         << " missing, " << extra << " extra or duplicated; e.g. " << example;
}

// A flowgate-agent reading `capture` and sending to `endpoint`, also writing its events to
// `json_out` (the reference of what it sent).
inline std::vector<std::string> AgentArgv(const std::string& capture, const std::string& endpoint,
                                          const std::string& name, const std::string& state_dir,
                                          const std::string& json_out,
                                          const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv = {BinaryPath("flowgate-agent"),
                                   "-r",
                                   capture,
                                   "--gateway",
                                   endpoint,
                                   "--name",
                                   name,
                                   "--site",
                                   "test",
                                   "--state-dir",
                                   state_dir,
                                   "--json-out",
                                   json_out,
                                   "--delivery-timeout",
                                   "180s",
                                   "--plaintext"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

// Waits (bounded) for the process to exit by itself; returns its exit code (-1 on timeout).
inline int WaitExit(BackgroundProcess& process, std::chrono::seconds timeout) {
  return process.StopWith(0, timeout);  // signal 0: just wait
}

// Reads the gateway's JSON socket until `count` flow events arrived (bounded).
inline bool SeenFlows(const std::string& socket_path, int count) {
  NetifydSocketClient client(socket_path);
  if (!client.connected()) return false;
  int seen = 0;
  while (seen < count) {
    std::optional<nlohmann::json> message = client.Next(std::chrono::seconds(60));
    if (!message) return false;
    if ((*message)["type"] == "flow") ++seen;
  }
  return true;
}

inline size_t SpoolFiles(const std::string& state_dir) {
  std::error_code error;
  size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(state_dir + "/spool", error)) {
    n += entry.path().extension() == ".batch";
  }
  return n;
}

}  // namespace flowgate::testing::transport
