// The local ClickHouse cluster the ClickHouse storage backend is tested against
// (deploy/clickhouse-cluster.sh through tests/support/clickhouse_cluster.h): a Distributed
// table reads every shard from any shard, a stopped shard makes such reads fail loudly, and
// a restarted shard comes back with its data.
#include "../support/clickhouse_cluster.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "../support/process.h"

namespace flowgate::testing {
namespace {

const std::string kSourceDir = FLOWGATE_SOURCE_DIR;
const std::string kScript = kSourceDir + "/deploy/clickhouse-cluster.sh";

class ClickHouseClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!ClickHouseCluster::Installed()) {
      GTEST_SKIP() << ClickHouseCluster::kServerBinary
                   << " is not installed (Debian: apt-get install clickhouse-server "
                      "clickhouse-client)";
    }
  }
};

// Local tables on every shard and a Distributed table over them, as the gateway will make
// them (no ON CLUSTER: there is no ZooKeeper).
void CreateTables(const ClickHouseCluster& cluster) {
  for (const std::string& url : cluster.urls()) {
    for (const std::string& sql : {
             std::string("CREATE DATABASE IF NOT EXISTS db"),
             std::string("CREATE TABLE db.flows_local (k UInt64, bytes UInt64) "
                         "ENGINE = MergeTree ORDER BY k"),
             "CREATE TABLE db.flows AS db.flows_local ENGINE = Distributed(" + cluster.cluster() +
                 ", db, flows_local, sipHash64(k))",
         }) {
      Result<std::string> created = cluster.Query(url, sql);
      ASSERT_TRUE(created.ok()) << url << ": " << created.status().message();
    }
  }
}

std::string QueryOrError(const ClickHouseCluster& cluster, const std::string& url,
                         const std::string& sql) {
  Result<std::string> result = cluster.Query(url, sql);
  return result.ok() ? result.value() : "error: " + result.status().message();
}

// Whether process `pid` is still running (a zombie nobody reaped yet has stopped).
bool Running(const std::string& pid) {
  std::ifstream stat("/proc/" + pid + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const size_t end_of_name = line.rfind(") ");
  return end_of_name != std::string::npos && line[end_of_name + 2] != 'Z';
}

TEST_F(ClickHouseClusterTest, DistributedTableReadsEveryShardAndSurvivesAShardRestart) {
  Result<ClickHouseCluster> started = ClickHouseCluster::Start(
      ClickHouseCluster::DirFor("distributed_restart"), {.source_dir = kSourceDir});
  ASSERT_TRUE(started.ok()) << started.status().message();
  ClickHouseCluster& cluster = started.value();
  ASSERT_EQ(cluster.urls().size(), 2u);
  const std::string shard1 = cluster.urls()[0], shard2 = cluster.urls()[1];
  EXPECT_NE(shard1, shard2);
  CreateTables(cluster);
  if (HasFatalFailure()) return;

  // Rows written straight to each shard's local table, as a sharding writer does.
  ASSERT_EQ(QueryOrError(cluster, shard1,
                         "INSERT INTO db.flows_local VALUES (1, 100), (2, 200), (3, 300)"),
            "");
  ASSERT_EQ(QueryOrError(cluster, shard2, "INSERT INTO db.flows_local VALUES (4, 400), (5, 500)"),
            "");
  for (const std::string& url : cluster.urls()) {
    EXPECT_EQ(QueryOrError(cluster, url, "SELECT count(), sum(bytes) FROM db.flows"), "5\t1500\n")
        << "through " << url;
  }

  ASSERT_TRUE(cluster.StopShard(2).ok());
  const std::string down = QueryOrError(cluster, shard1, "SELECT count() FROM db.flows");
  EXPECT_NE(down.find("error: "), std::string::npos) << down;
  EXPECT_NE(down.find("Connection refused"), std::string::npos) << down;
  EXPECT_NE(QueryOrError(cluster, shard2, "SELECT 1").find("error: "), std::string::npos);
  // Shard 1 alone still answers for its own rows.
  EXPECT_EQ(QueryOrError(cluster, shard1, "SELECT count() FROM db.flows_local"), "3\n");

  Status restarted = cluster.StartShard(2);
  ASSERT_TRUE(restarted.ok()) << restarted.message();
  EXPECT_EQ(QueryOrError(cluster, shard2, "SELECT count() FROM db.flows_local"), "2\n");
  for (const std::string& url : cluster.urls()) {
    EXPECT_EQ(QueryOrError(cluster, url, "SELECT count(), sum(bytes) FROM db.flows"), "5\t1500\n")
        << "through " << url << " after shard 2 restarted";
  }
}

TEST_F(ClickHouseClusterTest, StartStopsWhatACrashedRunLeftInItsDirectory) {
  const std::string dir = ClickHouseCluster::DirFor("crashed_run");
  // A run that died before its destructor: servers started by the script and never stopped.
  CommandResult leftover =
      RunCommand({"/bin/bash", kScript, "start", "--dir", dir, "--shards", "1", "--base-port",
                  std::to_string(ClickHouseCluster::FreeBasePort(1))});
  ASSERT_EQ(leftover.exit_code, 0) << leftover.err;
  std::string leftover_pid;
  std::getline(std::ifstream(dir + "/shard1.pid"), leftover_pid);
  ASSERT_TRUE(Running(leftover_pid));

  Result<ClickHouseCluster> started = ClickHouseCluster::Start(dir, {.source_dir = kSourceDir});
  ASSERT_TRUE(started.ok()) << started.status().message();
  EXPECT_FALSE(Running(leftover_pid)) << "the leftover server " << leftover_pid << " still runs";
  EXPECT_EQ(QueryOrError(started.value(), started->urls()[1], "SELECT 1"), "1\n");
}

TEST_F(ClickHouseClusterTest, StartNamesTheShardWhosePortIsTakenAndLeavesNothingRunning) {
  const int base_port = ClickHouseCluster::FreeBasePort(2);
  ASSERT_NE(base_port, 0);
  // Another program listens on shard 2's HTTP port.
  const int taken = base_port + 2;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(taken));
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(fd, 1), 0);

  const std::string dir = ClickHouseCluster::DirFor("port_taken");
  Result<ClickHouseCluster> started =
      ClickHouseCluster::Start(dir, {.source_dir = kSourceDir, .base_port = base_port});
  ::close(fd);
  ASSERT_FALSE(started.ok());
  const std::string& message = started.status().message();
  EXPECT_NE(message.find("shard2"), std::string::npos) << message;
  EXPECT_NE(message.find("port " + std::to_string(taken) + " on 127.0.0.1 is already taken"),
            std::string::npos)
      << message;
  // Shard 1, started before shard 2's port was found taken, was stopped again.
  EXPECT_FALSE(std::filesystem::exists(dir + "/shard1.pid"));
  CommandResult status = RunCommand({"/bin/bash", kScript, "status", "--dir", dir});
  EXPECT_EQ(status.out.find(" up "), std::string::npos) << status.out;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace flowgate::testing
