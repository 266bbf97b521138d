// A local N-shard ClickHouse cluster for a test, run by deploy/clickhouse-cluster.sh: one
// clickhouse-server per shard on loopback, each naming every shard in <remote_servers>, so
// that a Distributed table over the cluster reads from any shard. Stopped when destroyed.
#pragma once

#include <string>
#include <vector>

#include "flowgate/common/status.h"

namespace flowgate::testing {

struct ClickHouseClusterOptions {
  // The checkout holding deploy/clickhouse-cluster.sh (tests pass FLOWGATE_SOURCE_DIR).
  // REQUIRED.
  std::string source_dir;
  // Default: 2.
  int shards = 2;
  // The <remote_servers> name, as in ENGINE = Distributed(cluster, db, table, key).
  // Default: "flowgate".
  std::string cluster = "flowgate";
  // The first port (shard K: HTTP base + 2(K-1), native TCP the next one). 0 picks a free
  // range at random, away from the ephemeral ports. Default: 0.
  int base_port = 0;
};

class ClickHouseCluster {
 public:
  // The server the script runs; tests skip (and only skip) when it is missing.
  static constexpr const char* kServerBinary = "/usr/sbin/clickhouse-server";
  static constexpr const char* kClientBinary = "/usr/bin/clickhouse-client";
  static bool Installed();

  // A base port whose 2 * `shards` ports are free on 127.0.0.1 now, picked at random below
  // the ephemeral range (0 if none is).
  static int FreeBasePort(int shards);

  // A directory for `test_name`'s cluster that is the same in every run of this build's
  // tests, so that Start, finding servers a crashed run left there, stops them first.
  static std::string DirFor(const std::string& test_name);

  // Stops whatever an earlier run left in `dir`, empties it, and starts `options.shards`
  // servers there, waiting (bounded) until each answers. The error names the shard and
  // holds the end of its error log.
  static Result<ClickHouseCluster> Start(const std::string& dir,
                                         const ClickHouseClusterOptions& options);

  ClickHouseCluster(ClickHouseCluster&& other) noexcept;
  ClickHouseCluster& operator=(ClickHouseCluster&&) = delete;
  ClickHouseCluster(const ClickHouseCluster&) = delete;
  ClickHouseCluster& operator=(const ClickHouseCluster&) = delete;
  // Stops every server and removes the directory.
  ~ClickHouseCluster();

  // "http://127.0.0.1:PORT" of each shard, shard 1 first.
  const std::vector<std::string>& urls() const { return urls_; }
  const std::string& cluster() const { return options_.cluster; }
  const std::string& dir() const { return dir_; }

  // Stops shard `k` (1-based) and waits (bounded) until it has exited; its data stays.
  Status StopShard(int k);
  // Starts stopped shard `k` again with its config and data, waiting until it answers.
  Status StartShard(int k);

  // Runs one statement on the server at `url` (one of urls()) with clickhouse-client over
  // the native port, returning its output (TabSeparated) or the server's error message.
  Result<std::string> Query(const std::string& url, const std::string& sql) const;

 private:
  ClickHouseCluster(std::string dir, ClickHouseClusterOptions options,
                    std::vector<std::string> urls);
  Status RunScript(const std::vector<std::string>& args, std::string* out = nullptr) const;

  std::string dir_;  // empty once moved from
  ClickHouseClusterOptions options_;
  std::vector<std::string> urls_;
};

}  // namespace flowgate::testing
