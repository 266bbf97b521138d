// Which addresses are "ours": the orientation rules of netifyd-socket.md (local_*/other_*,
// other_type) rest on classing each address of a flow.
#pragma once

#include <string_view>
#include <vector>

#include "capture/packet_decoder.h"
#include "flowgate/common/status.h"

namespace flowgate::agent {

struct IpNetwork {
  capture::IpAddress base;
  uint8_t prefix_length = 0;
  bool Contains(const capture::IpAddress& address) const;
};

// Parses "10.0.0.0/8", "2001:db8::/32" or a bare address (a /32 or /128).
Result<IpNetwork> ParseIpNetwork(std::string_view text);

enum class AddressClass {
  kLocal,    // on a configured local network or a capture interface's network
  kPrivate,  // reserved for private use: RFC 1918, RFC 4193, link-local, loopback, CGNAT
  kMulticast,
  kBroadcast,
  kPublic,
};

class LocalNetworks {
 public:
  void Add(const IpNetwork& network) { networks_.push_back(network); }
  AddressClass Classify(const capture::IpAddress& address) const;

 private:
  std::vector<IpNetwork> networks_;
};

}  // namespace flowgate::agent
