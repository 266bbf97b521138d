#include "netifyd_stream.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

namespace flowgate::testing {

using nlohmann::json;

int ConnectUnixSocket(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    const int error = errno;
    ::close(fd);
    errno = error;
    return -1;
  }
  return fd;
}

NetifydSocketClient::NetifydSocketClient(const std::string& path) : fd_(ConnectUnixSocket(path)) {
  if (fd_ < 0) error_ = "connect " + path + ": " + std::strerror(errno);
}

NetifydSocketClient::~NetifydSocketClient() {
  if (fd_ >= 0) ::close(fd_);
}

std::optional<json> NetifydSocketClient::Next(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string payload;
  while (!reader_.Next(&payload)) {
    if (fd_ < 0) return std::nullopt;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      error_ = "timed out waiting for a message";
      return std::nullopt;
    }
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buffer[65536];
    ssize_t n = ::read(fd_, buffer, sizeof buffer);
    if (n <= 0) {
      error_ = "the server closed the connection";
      ::close(fd_);
      fd_ = -1;
      return std::nullopt;
    }
    Status status = reader_.Feed(std::string_view(buffer, static_cast<size_t>(n)));
    if (!status.ok()) {
      error_ = status.message();
      return std::nullopt;
    }
  }
  json parsed = json::parse(payload, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    error_ = "payload is not one JSON object: " + payload.substr(0, 200);
    return std::nullopt;
  }
  return parsed;
}

std::vector<json> ParseNetifydStream(const std::string& bytes, std::string* error) {
  NetifydFrameReader reader;
  std::vector<json> messages;
  Status status = reader.Feed(bytes);
  if (!status.ok()) *error = status.message();
  std::string payload;
  while (reader.Next(&payload)) messages.push_back(json::parse(payload));
  if (status.ok() && reader.pending_bytes() != 0) *error = "stream ends inside a frame";
  return messages;
}

namespace {
// Canonical address text, so that "b00c::2" (nDPI's reader) and "b00c:0:2" (RFC 5952)
// compare equal.
std::string CanonicalAddress(const std::string& text) {
  unsigned char bytes[16];
  char out[INET6_ADDRSTRLEN];
  if (::inet_pton(AF_INET, text.c_str(), bytes) == 1)
    return inet_ntop(AF_INET, bytes, out, sizeof out);
  if (::inet_pton(AF_INET6, text.c_str(), bytes) == 1)
    return inet_ntop(AF_INET6, bytes, out, sizeof out);
  return text;
}
}  // namespace

FlowTuple MakeFlowTuple(int l4, const std::string& ip_a, int port_a, const std::string& ip_b,
                        int port_b, int vlan) {
  auto a = std::make_pair(CanonicalAddress(ip_a), port_a);
  auto b = std::make_pair(CanonicalAddress(ip_b), port_b);
  if (b < a) std::swap(a, b);
  return {l4, a.first, a.second, b.first, b.second, vlan};
}

std::string NdpiName(const json& message) {
  const json& f = message.at("flow");
  std::string name = f.at("detected_protocol_name");
  if (f.at("detected_application").get<int>() != 0) {
    name += "." + f.at("detected_application_name").get<std::string>();
  }
  return name;
}

std::map<FlowTuple, json> FlowsByTuple(const std::vector<json>& messages) {
  std::map<FlowTuple, json> flows;
  for (const json& m : messages) {
    if (m.value("type", "") != "flow") continue;
    const json& f = m.at("flow");
    flows[MakeFlowTuple(f.at("ip_protocol"), f.value("local_ip", ""), f.at("local_port"),
                        f.value("other_ip", ""), f.at("other_port"), f.at("vlan_id"))] = m;
  }
  return flows;
}

std::vector<ExpectedFlow> LoadExpectedFlows(const std::string& testdata_dir,
                                            const std::string& pcap) {
  static const std::map<std::string, int> kL4 = {
      {"TCP", 6}, {"UDP", 17}, {"ICMP", 1}, {"IGMP", 2}, {"ICMPV6", 58}};
  std::ifstream in(testdata_dir + "/ndpi-4.2/expected_flows.tsv");
  std::vector<ExpectedFlow> flows;
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream fields(line);
    std::string field;
    while (std::getline(fields, field, '\t')) f.push_back(field);
    if (f.size() < 9 || f[0] != pcap || !kL4.contains(f[1])) continue;
    flows.push_back(
        {MakeFlowTuple(kL4.at(f[1]), f[2], std::stoi(f[3]), f[4], std::stoi(f[5]), std::stoi(f[6])),
         f[7], f[8]});
  }
  return flows;
}

}  // namespace flowgate::testing
