// The agent as a library: capture -> decode -> flow table -> DPI -> events -> sinks.
// main() only parses flags into AgentOptions and calls RunAgent; tests call it in-process.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "classify/ndpi_classifier.h"
#include "flowgate/common/status.h"

namespace flowgate::agent {

struct AgentOptions {
  // A pcap or pcapng file to read (-r). REQUIRED (live capture comes with the agent issue).
  std::string capture_file;
  // Write the netifyd JSON stream here ("-" = stdout). Default: none.
  std::string json_out;
  // ZeroMQ endpoint of the gateway, e.g. "tcp://gw:7151". Default: none.
  std::string gateway;
  // Agent name and site, carried in every batch to the gateway. Default: host name, "".
  std::string name;
  std::string site;
  // Where the agent keeps its identity (agent-id file). Default: none (a new id per run).
  std::string state_dir;
  // Networks whose addresses count as local (orientation of flows). Default: none; private
  // ranges still rank above public ones.
  std::vector<std::string> local_networks;
  classify::ClassifierOptions classifier;
  uint64_t idle_timeout_ms = 30'000;
  uint64_t tcp_idle_timeout_ms = 300'000;
  uint64_t max_flows = 262'144;
  // Interval of flow_stats and agent_status, in packet time for capture files. Default: 15 s.
  uint64_t update_interval_ms = 15'000;
  // How long to wait at the end for the gateway to acknowledge everything. Default: 30 s.
  uint64_t delivery_timeout_ms = 30'000;
};

// Runs the agent to completion (end of the capture file). Returns the first error that
// stopped it; events produced before a broken record are still delivered.
Status RunAgent(const AgentOptions& options);

}  // namespace flowgate::agent
