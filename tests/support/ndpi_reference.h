// What nDPI's own reader (ndpiReader -v 2) printed for the reference captures, parsed from
// shared/testdata/ndpi-4.2/result/NAME.out, and the per-flow totals of an agent's stream to
// compare with it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "netifyd_stream.h"

namespace flowgate::testing {

// The reference data directory: $FLOWGATE_TESTDATA when set (read at run time, so a built
// test can be pointed elsewhere), else the path CMake compiled in.
std::string TestdataDir();

struct ReferenceFlow {
  FlowTuple tuple;
  std::string l4;      // "TCP", "UDP", "ICMP", ...
  std::string src_ip;  // canonical text; the sender of the flow's first packet
  int src_port = 0;
  std::string ndpi_name;  // "TLS.Google", "HTTP"
  std::string host;       // [Hostname/SNI: ...], or empty
  uint64_t src_packets = 0, src_bytes = 0, dst_packets = 0, dst_bytes = 0;
};

// Every flow line of `testdata_dir`/ndpi-4.2/result/`pcap`.out; empty if the file is missing.
std::vector<ReferenceFlow> LoadReferenceFlows(const std::string& testdata_dir,
                                              const std::string& pcap);

// A flow's whole-life counters from an agent's stream, by the sender's endpoint.
struct FlowTotals {
  std::string local_ip;  // canonical text
  int local_port = 0;
  uint64_t local_packets = 0, local_bytes = 0, other_packets = 0, other_bytes = 0;
  bool purged = false;
};

// Adds up each flow's flow_stats and flow_purge deltas. Keyed by tuple; when a tuple was
// purged and seen again (an idle split), the last instance wins, as FlowsByTuple does.
std::map<FlowTuple, FlowTotals> FlowTotalsByTuple(const std::vector<nlohmann::json>& messages);

// Canonical text of an IPv4 or IPv6 address ("b00c::2" and "b00c:0:2" alike).
std::string CanonicalIp(const std::string& text);

}  // namespace flowgate::testing
