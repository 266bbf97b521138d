// The ClickHouse store (issue 9) with real ClickHouse servers on loopback, started by the
// tests (deploy/clickhouse-cluster.sh): several gateways over one 2-shard cluster answer
// history queries exactly as the embedded RocksDB store does for the same input, through
// a gateway killed mid-insert and a shard stopped during ingest, and retention drops days.
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../../storage/src/clickhouse_http.h"
#include "../support/clickhouse_cluster.h"
#include "../support/ndpi_reference.h"
#include "../support/process.h"
#include "../support/temp_dir.h"
#include "flowgate/storage/clickhouse_store.h"
#include "history_support.h"
#include "transport_support.h"

namespace flowgate::testing {
namespace {

using std::chrono::seconds;
using transport::MakeCapture;
using transport::WaitExit;

// Fixed agent ids, so that which shard holds an agent's rows is the same in every run (the
// gateway picks a shard by the id); these four spread over both shards of a 2-shard cluster.
const std::vector<std::string> kAgentIds = {
    "0b5e4c7a-1f0e-4a53-9d42-6f3a51c0de01", "6a1d2f9e-77b4-4e0c-8a3e-2c9b0f4d1e02",
    "c3f8a0d4-5b2e-4f71-b6d9-8e1a7c3f5a03", "f2d7b1e9-3a6c-4d88-9f05-4b7e2a6c8d04"};

// The reference captures (nDPI's expected answers) split in `parts`, part `index`.
std::vector<std::string> CaptureShare(size_t index, size_t parts) {
  std::vector<std::string> all;
  for (const auto& entry : std::filesystem::directory_iterator(TestdataDir() + "/ndpi-4.2/pcap")) {
    if (entry.path().extension() == ".pcap") all.push_back(entry.path().string());
  }
  std::sort(all.begin(), all.end());
  std::vector<std::string> share;
  for (size_t i = index; i < all.size(); i += parts) share.push_back(all[i]);
  return share;
}

// A state dir whose agent id is `id` (what the agent made on its first start otherwise).
std::string StateDirWithId(const TempDir& dir, const std::string& name, const std::string& id) {
  const std::string state_dir = dir.Sub(name);
  std::filesystem::create_directories(state_dir);
  std::ofstream(state_dir + "/agent-id") << id << "\n";
  return state_dir;
}

std::vector<std::string> AgentOverFiles(const std::vector<std::string>& captures,
                                        const std::vector<std::string>& gateways,
                                        const std::string& name, const std::string& site,
                                        const std::string& state_dir,
                                        const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv = {BinaryPath("flowgate-agent"),
                                   "--name",
                                   name,
                                   "--site",
                                   site,
                                   "--state-dir",
                                   state_dir,
                                   "--delivery-timeout",
                                   "180s",
                                   "--plaintext"};
  for (const std::string& capture : captures) argv.insert(argv.end(), {"-r", capture});
  for (const std::string& gateway : gateways) argv.insert(argv.end(), {"--gateway", gateway});
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

// Everything a user compares between two gateways' history answers, as text.
struct HistoryAnswers {
  std::vector<std::string> flows;                       // every flow, sorted
  std::vector<std::string> windowed_flows;              // the flows active in a window, sorted
  std::map<std::string, std::vector<std::string>> top;  // "group/source" -> entries
  std::map<std::string, uint64_t> events_by_agent;      // ListAgents: name -> events applied
};

std::string Text(const google::protobuf::Message& message) {
  std::string text;
  google::protobuf::TextFormat::Printer printer;
  printer.SetSingleLineMode(true);
  printer.PrintToString(message, &text);
  return text;
}

HistoryAnswers AskEverything(HistoryGateway& gateway) {
  HistoryAnswers answers;
  v1::QueryFlowsRequest query;
  query.set_limit(10'000);
  do {
    v1::QueryFlowsResponse page;
    grpc::Status status = gateway.stub().QueryFlows(CallContext().get(), query, &page);
    EXPECT_TRUE(status.ok()) << status.error_message();
    if (!status.ok()) break;
    for (const v1::FlowRecord& flow : page.flows()) answers.flows.push_back(Text(flow));
    query.set_page_token(page.next_page_token());
  } while (!query.page_token().empty());
  std::sort(answers.flows.begin(), answers.flows.end());

  // A window inside the captures' years (2019-02 to 2020-09), as analysts ask.
  query.Clear();
  query.set_limit(10'000);
  query.mutable_range()->set_from_ms(1'550'000'000'000);
  query.mutable_range()->set_to_ms(1'600'000'000'000);
  v1::QueryFlowsResponse windowed;
  grpc::Status windowed_status = gateway.stub().QueryFlows(CallContext().get(), query, &windowed);
  EXPECT_TRUE(windowed_status.ok()) << windowed_status.error_message();
  for (const v1::FlowRecord& flow : windowed.flows()) answers.windowed_flows.push_back(Text(flow));
  std::sort(answers.windowed_flows.begin(), answers.windowed_flows.end());

  for (v1::GroupBy group : {v1::GROUP_BY_APPLICATION, v1::GROUP_BY_PROTOCOL, v1::GROUP_BY_HOST,
                            v1::GROUP_BY_AGENT, v1::GROUP_BY_OTHER_ADDRESS}) {
    for (v1::TopSource source : {v1::TOP_SOURCE_FLOWS, v1::TOP_SOURCE_ROLLUPS}) {
      if (group == v1::GROUP_BY_OTHER_ADDRESS && source == v1::TOP_SOURCE_ROLLUPS) continue;
      v1::TopRequest request;
      request.set_group_by(group);
      request.set_source(source);
      request.set_limit(10'000);
      v1::TopResponse response;
      grpc::Status status = gateway.stub().Top(CallContext().get(), request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      std::vector<std::string>& entries =
          answers.top[v1::GroupBy_Name(group) + "/" + v1::TopSource_Name(source)];
      for (const v1::TopEntry& entry : response.entries()) entries.push_back(Text(entry));
    }
  }

  v1::ListAgentsResponse agents;
  grpc::Status status =
      gateway.stub().ListAgents(CallContext().get(), v1::ListAgentsRequest(), &agents);
  EXPECT_TRUE(status.ok()) << status.error_message();
  for (const v1::AgentRecord& agent : agents.agents()) {
    answers.events_by_agent[agent.identity().name()] += agent.events_applied();
  }
  return answers;
}

// Explains the first difference of two answers of the same question.
::testing::AssertionResult SameAnswers(const HistoryAnswers& got, const HistoryAnswers& want) {
  if (got.flows.size() != want.flows.size()) {
    return ::testing::AssertionFailure()
           << got.flows.size() << " flows, the RocksDB store answers " << want.flows.size();
  }
  for (size_t i = 0; i < got.flows.size(); ++i) {
    if (got.flows[i] != want.flows[i]) {
      return ::testing::AssertionFailure() << "flow " << i << " differs:\n  got  " << got.flows[i]
                                           << "\n  want " << want.flows[i];
    }
  }
  if (got.windowed_flows != want.windowed_flows) {
    return ::testing::AssertionFailure()
           << "flows in the window differ: " << got.windowed_flows.size() << " flows, the "
           << "RocksDB store answers " << want.windowed_flows.size();
  }
  for (const auto& [question, entries] : want.top) {
    auto it = got.top.find(question);
    if (it == got.top.end() || it->second != entries) {
      std::string got_text, want_text;
      if (it != got.top.end()) {
        for (const std::string& e : it->second) got_text += "\n    " + e;
      }
      for (const std::string& e : entries) want_text += "\n    " + e;
      return ::testing::AssertionFailure()
             << "Top " << question << " differs:\n  got" << got_text << "\n  want" << want_text;
    }
  }
  if (got.events_by_agent != want.events_by_agent) {
    return ::testing::AssertionFailure() << "ListAgents' events applied differ";
  }
  return ::testing::AssertionSuccess();
}

// Events applied for agents of `gateway`, summed (polled while agents deliver).
uint64_t EventsApplied(HistoryGateway& gateway) {
  v1::ListAgentsResponse agents;
  if (!gateway.stub().ListAgents(CallContext("", 5).get(), v1::ListAgentsRequest(), &agents).ok()) {
    return 0;
  }
  uint64_t events = 0;
  for (const v1::AgentRecord& agent : agents.agents()) events += agent.events_applied();
  return events;
}

// Polls `condition` every 50 ms until it holds or `timeout` passes.
template <typename Condition>
bool Eventually(Condition condition, seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling a condition
  }
  return true;
}

class ClickHouseStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!ClickHouseCluster::Installed()) {
      GTEST_SKIP() << ClickHouseCluster::kServerBinary
                   << " is not installed (deploy/install-deps.sh installs clickhouse-server)";
    }
  }

  // Starts a cluster of `shards` for this test.
  void StartCluster(int shards) {
    const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    Result<ClickHouseCluster> cluster = ClickHouseCluster::Start(
        ClickHouseCluster::DirFor(name), {.source_dir = FLOWGATE_SOURCE_DIR, .shards = shards});
    ASSERT_TRUE(cluster.ok()) << cluster.status().message();
    cluster_.emplace(std::move(cluster).value());
  }

  // Flags of a gateway storing into the cluster.
  std::vector<std::string> ClickHouseArgs(const std::string& socket_name) const {
    std::vector<std::string> args = {"--store", "clickhouse", "--json-socket",
                                     dir_.Sub(socket_name)};
    for (const std::string& url : cluster_->urls())
      args.insert(args.end(), {"--clickhouse-url", url});
    if (cluster_->urls().size() > 1)
      args.insert(args.end(), {"--clickhouse-cluster", cluster_->cluster()});
    return args;
  }

  // The answers of the embedded RocksDB store for the same agents (same ids, so the same
  // flow digests) reading the same captures.
  HistoryAnswers RocksDbAnswers(const std::vector<std::vector<std::string>>& captures_by_agent) {
    HistoryGateway reference(dir_.Sub("rocksdb"), dir_.Sub("rocksdb.sock"));
    EXPECT_TRUE(reference.ready()) << reference.log();
    if (!reference.ready()) return {};
    for (size_t i = 0; i < captures_by_agent.size(); ++i) {
      CommandResult run = RunCommand(
          AgentOverFiles(
              captures_by_agent[i], {reference.process().endpoint()}, "probe-" + std::to_string(i),
              "site-" + std::to_string(i % 2),
              StateDirWithId(dir_, "reference-agent-" + std::to_string(i), kAgentIds[i])),
          seconds(180));
      EXPECT_EQ(run.exit_code, 0) << run.err;
    }
    return AskEverything(reference);
  }

  TempDir dir_;
  std::optional<ClickHouseCluster> cluster_;
};

TEST_F(ClickHouseStoreTest, TwoGatewaysOverTwoShardsAnswerExactlyAsRocksDb) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(2));
  HistoryGateway first(ClickHouseArgs("first.sock"));
  ASSERT_TRUE(first.ready()) << first.log();
  HistoryGateway second(ClickHouseArgs("second.sock"));
  ASSERT_TRUE(second.ready()) << second.log();

  // Four agents over a quarter of the reference captures each, two per gateway.
  std::vector<std::vector<std::string>> captures;
  for (size_t i = 0; i < 4; ++i) {
    captures.push_back(CaptureShare(i, 4));
    HistoryGateway& gateway = i < 2 ? first : second;
    CommandResult run =
        RunCommand(AgentOverFiles(captures[i], {gateway.process().endpoint()},
                                  "probe-" + std::to_string(i), "site-" + std::to_string(i % 2),
                                  StateDirWithId(dir_, "agent-" + std::to_string(i), kAgentIds[i])),
                   seconds(180));
    ASSERT_EQ(run.exit_code, 0) << run.err;
  }

  // Both shards hold flows, and the Distributed table reads them all.
  uint64_t rows_on_shards = 0;
  for (const std::string& url : cluster_->urls()) {
    Result<std::string> rows =
        cluster_->Query(url, "SELECT count() FROM flowgate.flow_parts_local");
    ASSERT_TRUE(rows.ok()) << rows.status().message();
    EXPECT_GT(std::stoull(*rows), 0u) << "shard " << url << " holds no flows";
    rows_on_shards += std::stoull(*rows);
  }
  Result<std::string> rows =
      cluster_->Query(cluster_->urls()[0], "SELECT count() FROM flowgate.flow_parts");
  ASSERT_TRUE(rows.ok()) << rows.status().message();
  EXPECT_EQ(std::stoull(*rows), rows_on_shards);

  const HistoryAnswers want = RocksDbAnswers(captures);
  ASSERT_GT(want.flows.size(), 1000u);
  ASSERT_GT(want.windowed_flows.size(), 10u);
  ASSERT_LT(want.windowed_flows.size(), want.flows.size());
  EXPECT_TRUE(SameAnswers(AskEverything(first), want)) << "through the first gateway";
  EXPECT_TRUE(SameAnswers(AskEverything(second), want)) << "through the second gateway";

  // A batch written again after a failure between its rows and its mark (a gateway killed,
  // a shard down) counts once: every row stored twice, arriving later the second time, with
  // merges stopped so that ReplacingMergeTree cannot hide a miss of the query-time collapse.
  for (const std::string& url : cluster_->urls()) {
    for (const std::string& sql :
         {std::string("SYSTEM STOP MERGES"),
          std::string("INSERT INTO flowgate.flow_parts_local SELECT day, agent_id, digest, "
                      "boot_id, batch_sequence, received_ms + 1000, first_ms, last_ms, "
                      "has_metadata, application, protocol, host, operand FROM "
                      "flowgate.flow_parts_local"),
          std::string("INSERT INTO flowgate.rollups_local SELECT * FROM flowgate.rollups_local")}) {
      Result<std::string> done = cluster_->Query(url, sql);
      ASSERT_TRUE(done.ok()) << sql << ": " << done.status().message();
    }
  }
  Result<std::string> doubled =
      cluster_->Query(cluster_->urls()[0], "SELECT count() FROM flowgate.flow_parts");
  ASSERT_TRUE(doubled.ok()) << doubled.status().message();
  ASSERT_EQ(std::stoull(*doubled), 2 * rows_on_shards);
  EXPECT_TRUE(SameAnswers(AskEverything(second), want)) << "with every batch stored twice";

  // GetFlow through the gateway that did not store it.
  v1::QueryFlowsRequest query;
  query.set_filter("agent == \"probe-0\"");
  query.set_limit(1);
  v1::QueryFlowsResponse page;
  ASSERT_TRUE(first.stub().QueryFlows(CallContext().get(), query, &page).ok());
  ASSERT_EQ(page.flows_size(), 1);
  v1::GetFlowRequest get;
  get.set_digest(page.flows(0).metadata().digest());
  get.set_agent_id(kAgentIds[0]);
  v1::FlowRecord flow;
  grpc::Status status = second.stub().GetFlow(CallContext().get(), get, &flow);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Text(flow), Text(page.flows(0)));
}

TEST_F(ClickHouseStoreTest, GatewayKilledAndShardStoppedDuringIngestLoseNothingCountNothingTwice) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(2));
  auto gateway = std::make_unique<HistoryGateway>(ClickHouseArgs("gateway.sock"));
  ASSERT_TRUE(gateway->ready()) << gateway->log();
  const std::string endpoint = gateway->process().endpoint();

  // Two agents reading generated captures at packet speed (8 s), so that ingest is under
  // way while the test breaks things.
  std::vector<std::vector<std::string>> captures;
  std::vector<std::unique_ptr<BackgroundProcess>> agents;
  for (size_t i = 0; i < 2; ++i) {
    captures.push_back({MakeCapture(dir_, "capture-" + std::to_string(i) + ".pcap", 4'000,
                                    static_cast<int>(21 + i), "8s")});
    agents.push_back(std::make_unique<BackgroundProcess>(AgentOverFiles(
        captures[i], {endpoint}, "probe-" + std::to_string(i), "site-" + std::to_string(i % 2),
        StateDirWithId(dir_, "agent-" + std::to_string(i), kAgentIds[i]),
        {"--replay-speed", "1"})));
  }

  ASSERT_TRUE(Eventually([&] { return EventsApplied(*gateway) >= 2'000; }, seconds(60)))
      << gateway->log();
  gateway->process().Kill();
  std::vector<std::string> args = ClickHouseArgs("gateway.sock");
  args.insert(args.end(), {"--agents-listen", endpoint});
  gateway = std::make_unique<HistoryGateway>(args);
  ASSERT_TRUE(gateway->ready()) << gateway->log();

  ASSERT_TRUE(Eventually([&] { return EventsApplied(*gateway) >= 6'000; }, seconds(60)))
      << gateway->log();
  ASSERT_TRUE(cluster_->StopShard(2).ok());
  EXPECT_TRUE(gateway->process().WaitForLog("store failed, withholding acknowledgements"))
      << gateway->log();
  ASSERT_TRUE(cluster_->StartShard(2).ok());

  for (size_t i = 0; i < agents.size(); ++i) {
    EXPECT_EQ(WaitExit(*agents[i], seconds(180)), 0) << agents[i]->stderr_text();
  }
  EXPECT_TRUE(gateway->process().WaitForLog("store writes again")) << gateway->log();
  EXPECT_TRUE(SameAnswers(AskEverything(*gateway), RocksDbAnswers(captures)));
}

TEST_F(ClickHouseStoreTest, AgentFailsOverToTheOtherGatewayWithoutLossGapOrDuplicate) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(2));
  HistoryGateway first(ClickHouseArgs("first.sock"));
  ASSERT_TRUE(first.ready()) << first.log();
  HistoryGateway second(ClickHouseArgs("second.sock"));
  ASSERT_TRUE(second.ready()) << second.log();

  // One agent given both gateways, reading at packet speed (8 s) so that it is mid-stream
  // when the first gateway dies.
  const std::vector<std::string> captures = {MakeCapture(dir_, "capture.pcap", 4'000, 31, "8s")};
  BackgroundProcess agent(
      AgentOverFiles(captures, {first.process().endpoint(), second.process().endpoint()}, "probe-0",
                     "site-0", StateDirWithId(dir_, "agent", kAgentIds[0]),
                     {"--replay-speed", "1", "--failover-after", "2s"}));
  ASSERT_TRUE(Eventually([&] { return EventsApplied(first) >= 3'000; }, seconds(60)))
      << first.log() << agent.stderr_text();
  first.process().Kill();
  ASSERT_EQ(WaitExit(agent, seconds(180)), 0) << agent.stderr_text();
  EXPECT_NE(agent.stderr_text().find("1 failovers, last to " + second.process().endpoint()),
            std::string::npos)
      << agent.stderr_text();

  // The second gateway read the agent boot's mark from the cluster: it went on where the
  // first stopped (no gap), acknowledged what the first had applied as duplicates, and
  // every answer equals the RocksDB store's for the same events.
  v1::ListAgentsResponse agents;
  ASSERT_TRUE(second.stub().ListAgents(CallContext().get(), v1::ListAgentsRequest(), &agents).ok());
  ASSERT_EQ(agents.agents_size(), 1);
  EXPECT_EQ(agents.agents(0).sequence_gaps(), 0u);
  EXPECT_TRUE(SameAnswers(AskEverything(second), RocksDbAnswers({captures})));
}

TEST_F(ClickHouseStoreTest, RetentionDropsWholeDaysOnSchedule) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(1));
  const uint64_t now_ms =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
  // Ten days old and fresh traffic, from one agent.
  const std::string old_capture = dir_.Sub("old.pcap"), new_capture = dir_.Sub("new.pcap");
  for (const auto& [path, start_ms] :
       {std::pair<std::string, uint64_t>{old_capture, now_ms - 10 * 86'400'000ull},
        std::pair<std::string, uint64_t>{new_capture, now_ms}}) {
    CommandResult made = RunCommand({BinaryPath("flowgate-trafficgen"), "--out", path, "--sessions",
                                     "200", "--start-ms", std::to_string(start_ms)},
                                    seconds(60));
    ASSERT_EQ(made.exit_code, 0) << made.err;
  }
  std::vector<std::string> args = ClickHouseArgs("gateway.sock");
  HistoryGateway keeping(args);
  ASSERT_TRUE(keeping.ready()) << keeping.log();
  CommandResult run =
      RunCommand(AgentOverFiles({old_capture, new_capture}, {keeping.process().endpoint()}, "probe",
                                "site", StateDirWithId(dir_, "agent", kAgentIds[0])),
                 seconds(120));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const HistoryAnswers before = AskEverything(keeping);
  keeping.process().Stop();

  const std::string url = cluster_->urls()[0];
  auto partitions = [&] {
    Result<std::string> listed = cluster_->Query(
        url,
        "SELECT DISTINCT partition FROM system.parts WHERE active AND database = 'flowgate' "
        "AND table = 'flow_parts' ORDER BY partition");
    EXPECT_TRUE(listed.ok()) << listed.status().message();
    return listed.ok() ? *listed : std::string();
  };
  const std::string old_day = std::to_string(storage::DayPartitionOf(now_ms - 10 * 86'400'000ull));
  ASSERT_NE(partitions().find(old_day), std::string::npos) << partitions();

  // A gateway keeping two days drops the old day at its first check.
  args.insert(args.end(), {"--retention", "2d", "--retention-interval", "200ms"});
  HistoryGateway pruning(args);
  ASSERT_TRUE(pruning.ready()) << pruning.log();
  ASSERT_TRUE(
      Eventually([&] { return partitions().find(old_day) == std::string::npos; }, seconds(30)))
      << partitions() << pruning.log();
  EXPECT_FALSE(partitions().empty()) << "today's flows went too";

  const HistoryAnswers after = AskEverything(pruning);
  EXPECT_LT(after.flows.size(), before.flows.size());
  EXPECT_GT(after.flows.size(), 0u);
  for (const std::string& flow : after.flows) {
    EXPECT_NE(std::find(before.flows.begin(), before.flows.end(), flow), before.flows.end())
        << "a kept flow changed: " << flow;
  }
  v1::QueryFlowsRequest query;
  v1::QueryFlowsResponse page;
  ASSERT_TRUE(pruning.stub().QueryFlows(CallContext().get(), query, &page).ok());
  EXPECT_EQ(page.retained_from_ms(), (now_ms - 2 * 86'400'000ull) / 86'400'000ull * 86'400'000ull);
}

// gRPC Subscribe resumes from the live log the ClickHouse store keeps in memory: from any
// event it still holds, across the agent batches it keeps them in, each event once with its
// sequence and agent; only the oldest batches go once it holds more than it is asked to.
TEST_F(ClickHouseStoreTest, LiveLogResumesFromAnyEventItHoldsAndKeepsTheNewest) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(1));
  storage::ClickHouseStoreOptions options;
  options.urls = {cluster_->urls()[0]};
  options.live_log_events = 10;
  Result<std::unique_ptr<storage::FlowStore>> store = storage::OpenClickHouseFlowStore(options);
  ASSERT_TRUE(store.ok()) << store.status().message();
  // 6 batches of 3 events (a flow, its stats and its purge): sequences 1..18.
  for (uint64_t batch = 1; batch <= 6; ++batch) {
    v1::Envelope envelope;
    envelope.set_version(v1::PROTOCOL_VERSION_1);
    envelope.set_sequence(batch);
    envelope.mutable_agent()->set_id(kAgentIds[0]);
    envelope.mutable_agent()->set_boot_id("boot-1");
    envelope.mutable_agent()->set_name("probe-0");
    for (int i = 0; i < 3; ++i) {
      v1::FlowCounters* counters =
          i == 0   ? nullptr
          : i == 1 ? envelope.add_events()->mutable_flow_stats()->mutable_flow()
                   : envelope.add_events()->mutable_flow_purge()->mutable_flow();
      const std::string digest = "flow-" + std::to_string(batch);
      if (counters == nullptr) {
        envelope.add_events()->mutable_flow()->mutable_flow()->set_digest(digest);
      } else {
        counters->set_digest(digest);
        counters->set_local_bytes(100 * batch + i);
      }
    }
    Result<storage::AppendResult> appended = (*store)->Append(envelope, 1'000 + batch, nullptr);
    ASSERT_TRUE(appended.ok()) << appended.status().message();
    ASSERT_EQ(appended->outcome, storage::AppendOutcome::kApplied);
  }
  // The sent event of gateway sequence `sequence` in text, to compare with what is read.
  const auto sent = [](uint64_t sequence) {
    const uint64_t batch = (sequence - 1) / 3 + 1;
    const std::string digest = "flow-" + std::to_string(batch);
    switch ((sequence - 1) % 3) {
      case 0:
        return "flow { flow { digest: \"" + digest + "\" } }";
      case 1:
        return "flow_stats { flow { digest: \"" + digest +
               "\" local_bytes: " + std::to_string(100 * batch + 1) + " } }";
      default:
        return "flow_purge { flow { digest: \"" + digest +
               "\" local_bytes: " + std::to_string(100 * batch + 2) + " } }";
    }
  };
  const auto read = [&](uint64_t after, size_t limit) {
    std::vector<v1::StoredEvent> events;
    Status status = (*store)->ReadEvents(after, limit, &events);
    EXPECT_TRUE(status.ok()) << status.message();
    std::vector<uint64_t> sequences;
    for (const v1::StoredEvent& event : events) {
      sequences.push_back(event.gateway_sequence());
      EXPECT_EQ(event.agent().id(), kAgentIds[0]);
      EXPECT_EQ(event.agent().name(), "probe-0");
      EXPECT_EQ(event.received_at(), 1'000 + (event.gateway_sequence() - 1) / 3 + 1);
      EXPECT_EQ(event.event().ShortDebugString(), sent(event.gateway_sequence()));
    }
    return sequences;
  };
  // At least the newest 10 are held, in whole batches: batches 3 to 6.
  const std::vector<uint64_t> held = read(0, 100);
  ASSERT_EQ(held.size(), 12u);
  for (size_t i = 0; i < held.size(); ++i) EXPECT_EQ(held[i], 7 + i);
  // Within a batch and across batch boundaries, up to the limit.
  EXPECT_EQ(read(8, 3), (std::vector<uint64_t>{9, 10, 11}));
  EXPECT_EQ(read(12, 1), (std::vector<uint64_t>{13}));
  EXPECT_EQ(read(16, 100), (std::vector<uint64_t>{17, 18}));
  EXPECT_TRUE(read(18, 100).empty());
}

TEST_F(ClickHouseStoreTest, UnreachableServerOrWrongClusterFailsNamingIt) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(2));
  CommandResult unreachable =
      RunCommand({BinaryPath("flowgate-gateway"), "--store", "clickhouse", "--clickhouse-url",
                  "http://127.0.0.1:1", "--agents-plaintext", "--json-socket", dir_.Sub("a.sock")},
                 seconds(60));
  EXPECT_NE(unreachable.exit_code, 0);
  EXPECT_NE(unreachable.err.find("http://127.0.0.1:1"), std::string::npos) << unreachable.err;

  // One URL for a 2-shard cluster: the shards would not all get their tables.
  CommandResult short_of_shards =
      RunCommand({BinaryPath("flowgate-gateway"), "--store", "clickhouse", "--clickhouse-url",
                  cluster_->urls()[0], "--clickhouse-cluster", cluster_->cluster(),
                  "--agents-plaintext", "--json-socket", dir_.Sub("b.sock")},
                 seconds(60));
  EXPECT_NE(short_of_shards.exit_code, 0);
  EXPECT_NE(short_of_shards.err.find("2 shards"), std::string::npos) << short_of_shards.err;

  CommandResult unknown_cluster = RunCommand(
      {BinaryPath("flowgate-gateway"), "--store", "clickhouse", "--clickhouse-url",
       cluster_->urls()[0], "--clickhouse-url", cluster_->urls()[1], "--clickhouse-cluster",
       "nosuch", "--agents-plaintext", "--json-socket", dir_.Sub("c.sock")},
      seconds(60));
  EXPECT_NE(unknown_cluster.exit_code, 0);
  EXPECT_NE(unknown_cluster.err.find("nosuch"), std::string::npos) << unknown_cluster.err;

  CommandResult wrong_store = RunCommand(
      {BinaryPath("flowgate-gateway"), "--store", "postgres", "--agents-plaintext"}, seconds(30));
  EXPECT_EQ(wrong_store.exit_code, 2) << wrong_store.err;
  EXPECT_NE(wrong_store.err.find("rocksdb or clickhouse"), std::string::npos) << wrong_store.err;
}

}  // namespace
}  // namespace flowgate::testing
