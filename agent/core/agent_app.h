// The agent as a library: capture -> decode -> flow table -> DPI -> events -> sinks.
// main() only parses flags into AgentOptions and calls RunAgent; tests call it in-process.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "capture/packet_source.h"
#include "classify/ndpi_classifier.h"
#include "flowgate/common/status.h"

namespace flowgate::agent {

// A live capture interface and its role (netifyd's -I internal/LAN, -E external/WAN).
struct CaptureInterface {
  std::string name;
  bool internal = true;
};

struct AgentOptions {
  // pcap or pcapng files to read (-r), each as fast as possible or at `replay_speed`.
  std::vector<std::string> capture_files;
  // Interfaces to capture on (-i/-I/-E). At least one file or interface is REQUIRED.
  std::vector<CaptureInterface> interfaces;
  // BPF filter, promiscuous mode, kernel buffer size. Default: see CaptureOptions.
  capture::CaptureOptions capture;
  // DPI worker threads; each packet goes to the worker its flow hashes to. Default: 1.
  uint32_t workers = 1;
  // Replay capture files at this multiple of their packet time (1 = real time). Default: 0,
  // as fast as possible.
  double replay_speed = 0;
  // Write the netifyd JSON stream here ("-" = stdout). Default: none.
  std::string json_out;
  // ZeroMQ endpoints of the gateways of one cluster, e.g. "tcp://gw:7151": the agent talks
  // to the first and fails over to the next (wrapping) when the one it talks to acknowledges
  // nothing for `failover_after_ms` (see export/gateway_client.h). Default: none.
  std::vector<std::string> gateways;
  // With several gateways: how long the current one may acknowledge nothing while batches
  // wait before the agent moves to the next. Default: 10 s.
  uint64_t failover_after_ms = 10'000;
  // Agent name and site, carried in every batch to the gateway. Default: host name, "".
  std::string name;
  std::string site;
  // Where the agent keeps its identity (agent-id file) and its spool of batches the gateway
  // has not acknowledged (spool/). Default: none (a new id per run; spool in memory).
  std::string state_dir;
  // Bytes of unacknowledged batches kept; past it the oldest go (counted). Default: 256 MiB.
  uint64_t spool_max_bytes = 256u << 20;
  // Compress batches to the gateway with zstd. Default: false.
  bool compress = false;
  // CURVE: this agent's key pair file and the gateway's public key file (flowgate keygen
  // makes both; every gateway of the cluster has the same key). REQUIRED with `gateways`
  // unless `plaintext`.
  std::string key_file;
  std::string gateway_key_file;
  // Talk to the gateway unencrypted and unauthenticated. Default: false.
  bool plaintext = false;
  // Networks whose addresses count as local (orientation of flows). Default: none; private
  // ranges still rank above public ones.
  std::vector<std::string> local_networks;
  classify::ClassifierOptions classifier;
  uint64_t idle_timeout_ms = 30'000;
  uint64_t tcp_idle_timeout_ms = 300'000;
  uint64_t max_flows = 262'144;
  // Packets each worker's queue holds; live capture drops what does not fit (counted per
  // interface as queue_dropped), capture files wait. Default: 8192.
  uint64_t queue_packets = 8192;
  // Interval of flow_stats and agent_status, in packet time for capture files. Default: 15 s.
  uint64_t update_interval_ms = 15'000;
  // How long to wait at the end for the gateway to acknowledge everything. Default: 30 s.
  uint64_t delivery_timeout_ms = 30'000;
  // Prometheus metrics over HTTP, HOST:PORT; port 0 picks one. Default: "" (off).
  std::string metrics_listen;
};

// Runs the agent to completion: the end of every capture file, or SIGINT/SIGTERM (blocked
// in the calling process while it runs, and handled by RunAgent), after which every flow is
// purged as terminated and everything is flushed. Returns the first error that stopped it;
// events produced before a broken record are still delivered.
Status RunAgent(const AgentOptions& options);

}  // namespace flowgate::agent
