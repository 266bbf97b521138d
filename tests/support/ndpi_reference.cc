#include "ndpi_reference.h"

#include <cstdlib>
#include <fstream>
#include <regex>

namespace flowgate::testing {

std::string TestdataDir() {
  const char* env = std::getenv("FLOWGATE_TESTDATA");
  if (env != nullptr && *env != '\0') return env;
  return FLOWGATE_TESTDATA;
}

std::string CanonicalIp(const std::string& text) {
  // MakeFlowTuple already canonicalises its addresses: one place knows how.
  return std::get<1>(MakeFlowTuple(0, text, 0, text, 0, 0));
}

namespace {

// "1.2.3.4:80" or "[2001:db8::1]:443" into address and port.
bool SplitEndpoint(const std::string& text, std::string* ip, int* port) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  std::string address = text.substr(0, colon);
  if (address.size() >= 2 && address.front() == '[')
    address = address.substr(1, address.size() - 2);
  *ip = CanonicalIp(address);
  *port = std::atoi(text.c_str() + colon + 1);
  return true;
}

}  // namespace

std::vector<ReferenceFlow> LoadReferenceFlows(const std::string& testdata_dir,
                                              const std::string& pcap) {
  static const std::map<std::string, int> kL4 = {
      {"TCP", 6}, {"UDP", 17}, {"ICMP", 1}, {"IGMP", 2}, {"ICMPV6", 58}};
  // "\t3\tTCP 1.2.3.4:5 <-> 6.7.8.9:80 [VLAN: 7][proto: 7/HTTP]...[2 pkts/120 bytes <-> ...]"
  static const std::regex kLine(
      R"(^\s+\d+\s+(\S+) (\S+) (?:<->|->) (\S+) (?:\[VLAN: (\d+)\])?\[proto: [^/\]]*/([^\]]+)\].*?)"
      R"(\[(\d+) pkts/(\d+) bytes (?:<->|->) (\d+) pkts/(\d+) bytes\](.*)$)");
  static const std::regex kHost(R"(\[Hostname/SNI: ([^\]]*)\])");
  std::ifstream in(testdata_dir + "/ndpi-4.2/result/" + pcap + ".out");
  std::vector<ReferenceFlow> flows;
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (!std::regex_match(line, m, kLine) || !kL4.contains(m[1].str())) continue;
    ReferenceFlow flow;
    flow.l4 = m[1].str();
    std::string dst_ip;
    int dst_port = 0;
    if (!SplitEndpoint(m[2].str(), &flow.src_ip, &flow.src_port) ||
        !SplitEndpoint(m[3].str(), &dst_ip, &dst_port)) {
      continue;
    }
    const int vlan = m[4].matched ? std::stoi(m[4].str()) : 0;
    flow.tuple = MakeFlowTuple(kL4.at(flow.l4), flow.src_ip, flow.src_port, dst_ip, dst_port, vlan);
    flow.ndpi_name = m[5].str();
    flow.src_packets = std::stoull(m[6].str());
    flow.src_bytes = std::stoull(m[7].str());
    flow.dst_packets = std::stoull(m[8].str());
    flow.dst_bytes = std::stoull(m[9].str());
    const std::string rest = m[10].str();
    std::smatch host;
    if (std::regex_search(rest, host, kHost)) flow.host = host[1].str();
    flows.push_back(std::move(flow));
  }
  return flows;
}

std::map<FlowTuple, FlowTotals> FlowTotalsByTuple(const std::vector<nlohmann::json>& messages) {
  std::map<std::string, FlowTuple> tuple_of_digest;
  std::map<std::string, FlowTotals> open;  // by digest, until purged
  std::map<FlowTuple, FlowTotals> totals;
  for (const nlohmann::json& m : messages) {
    const std::string type = m.value("type", "");
    if (type == "flow") {
      const nlohmann::json& f = m.at("flow");
      const std::string digest = f.at("digest");
      tuple_of_digest[digest] =
          MakeFlowTuple(f.at("ip_protocol"), f.value("local_ip", ""), f.at("local_port"),
                        f.value("other_ip", ""), f.at("other_port"), f.at("vlan_id"));
      FlowTotals& t = open[digest];
      t.local_ip = CanonicalIp(f.value("local_ip", ""));
      t.local_port = f.at("local_port");
    } else if (type == "flow_stats" || type == "flow_purge") {
      const nlohmann::json& f = m.at("flow");
      const std::string digest = f.at("digest");
      FlowTotals& t = open[digest];
      t.local_packets += f.value("local_packets", uint64_t{0});
      t.local_bytes += f.value("local_bytes", uint64_t{0});
      t.other_packets += f.value("other_packets", uint64_t{0});
      t.other_bytes += f.value("other_bytes", uint64_t{0});
      if (type == "flow_purge") {
        t.purged = true;
        auto tuple = tuple_of_digest.find(digest);
        if (tuple != tuple_of_digest.end()) totals[tuple->second] = t;
        open.erase(digest);
      }
    }
  }
  return totals;
}

}  // namespace flowgate::testing
