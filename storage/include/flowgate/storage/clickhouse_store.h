// The ClickHouse backend of FlowStore: flow history for a fleet that outgrows one gateway.
//
// Several gateways may share one ClickHouse cluster. Each writes its own agents' batches and
// serves its own agents' live stream; every gateway answers history queries (flows, Top,
// GetFlow, ListAgents) for the whole fleet, and reads delivery marks from the cluster, so an
// agent may fail over from one gateway to another without loss or duplicates.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "flowgate/common/status.h"
#include "flowgate/storage/flow_store.h"

namespace flowgate::storage {

struct ClickHouseStoreOptions {
  // HTTP interface of each server, http://HOST:PORT. REQUIRED. Without a cluster: exactly
  // one. With a cluster: one per shard of it (each shard gets its local tables; an agent's
  // rows all go to one shard, chosen by its id).
  std::vector<std::string> urls;
  // Cluster name in the servers' <remote_servers>. Distributed tables over it answer
  // queries. Default: "" (one server, plain tables).
  std::string cluster;
  // Database of flowgate's tables (created if missing). Default: "flowgate".
  std::string database = "flowgate";
  // ListAgents reports an agent offline after this many missed status intervals. Default: 3.
  uint32_t offline_after_missed_intervals = 3;
  // Time limit of one HTTP request. Default: 30 s.
  uint32_t timeout_ms = 30'000;
  // Inserts (one per shard and table for each group of agent batches) start at least this
  // far apart; batches arriving meanwhile join the next group. Adds up to this much to the
  // time agents wait for acknowledgements. Default: 200 ms.
  uint32_t min_insert_interval_ms = 200;
  // Events of the merged live log kept in memory for ReadEvents (gRPC Subscribe resumes),
  // at least (the oldest agent batch goes whole once the rest holds this many);
  // history lives in flows and rollups. Default: 262144.
  size_t live_log_events = 262'144;
};

// Connects, checks the cluster (its shard count must equal the number of urls), and creates
// the database and tables that are missing. Fails with a message naming the server.
Result<std::unique_ptr<FlowStore>> OpenClickHouseFlowStore(const ClickHouseStoreOptions& options);

}  // namespace flowgate::storage
