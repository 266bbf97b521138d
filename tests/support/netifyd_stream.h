// Test-side readers of the netifyd JSON stream: a strict Unix-socket client, and the
// comparison of observed flows with nDPI's own answers (shared/testdata/ndpi-4.2).
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "flowgate/common/netifyd_json.h"

namespace flowgate::testing {

// A connected AF_UNIX stream socket to `path` (the caller closes it), or -1 with errno set.
int ConnectUnixSocket(const std::string& path);

// Connects to a Unix socket and reads netifyd frames with a strict reader: every header
// must be `{"length": N}\n` followed by exactly N bytes ending in '\n'.
class NetifydSocketClient {
 public:
  explicit NetifydSocketClient(const std::string& path);
  ~NetifydSocketClient();
  NetifydSocketClient(const NetifydSocketClient&) = delete;
  NetifydSocketClient& operator=(const NetifydSocketClient&) = delete;

  bool connected() const { return fd_ >= 0; }
  // The next payload parsed as JSON, or nullopt after `timeout` / EOF / a framing error
  // (error() then says which).
  std::optional<nlohmann::json> Next(std::chrono::milliseconds timeout);
  const std::string& error() const { return error_; }

 private:
  int fd_ = -1;
  NetifydFrameReader reader_;
  std::string error_;
};

// Splits a whole netifyd stream (e.g. an agent's --json-out) into JSON objects. Fails the
// calling test on a framing error.
std::vector<nlohmann::json> ParseNetifydStream(const std::string& bytes, std::string* error);

// A flow's identity as nDPI's reader prints it: l4 protocol number, the two endpoints in
// canonical text order, VLAN.
using FlowTuple = std::tuple<int, std::string, int, std::string, int, int>;
FlowTuple MakeFlowTuple(int l4, const std::string& ip_a, int port_a, const std::string& ip_b,
                        int port_b, int vlan);

// nDPI's name for a flow message's label: "TLS.Google", or "HTTP" with no application.
std::string NdpiName(const nlohmann::json& flow_message);

// The `flow` messages of a stream, by tuple, the last message of each flow winning.
std::map<FlowTuple, nlohmann::json> FlowsByTuple(const std::vector<nlohmann::json>& messages);

struct ExpectedFlow {
  FlowTuple tuple;
  std::string ndpi_name;
  std::string confidence;
};
// The expected flows of `pcap` from expected_flows.tsv; empty if the file is missing.
std::vector<ExpectedFlow> LoadExpectedFlows(const std::string& testdata_dir,
                                            const std::string& pcap);

}  // namespace flowgate::testing
