#include "core/local_networks.h"

#include <arpa/inet.h>

#include <string>

namespace flowgate::agent {

bool IpNetwork::Contains(const capture::IpAddress& address) const {
  if (address.version != base.version) return false;
  const unsigned full_bytes = prefix_length / 8u;
  for (unsigned i = 0; i < full_bytes; ++i) {
    if (address.bytes[i] != base.bytes[i]) return false;
  }
  const unsigned rest = prefix_length % 8u;
  if (rest == 0) return true;
  const auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (address.bytes[full_bytes] & mask) == (base.bytes[full_bytes] & mask);
}

Result<IpNetwork> ParseIpNetwork(std::string_view text) {
  std::string address(text.substr(0, text.find('/')));
  IpNetwork network;
  unsigned max_prefix = 0;
  if (::inet_pton(AF_INET, address.c_str(), network.base.bytes) == 1) {
    network.base.version = 4;
    max_prefix = 32;
  } else if (::inet_pton(AF_INET6, address.c_str(), network.base.bytes) == 1) {
    network.base.version = 6;
    max_prefix = 128;
  } else {
    return Status::InvalidArgument("'" + std::string(text) +
                                   "' is not an address or network (example: 10.0.0.0/8)");
  }
  network.prefix_length = static_cast<uint8_t>(max_prefix);
  if (size_t slash = text.find('/'); slash != std::string_view::npos) {
    std::string_view digits = text.substr(slash + 1);
    unsigned prefix = 0;
    bool valid = !digits.empty() && digits.size() <= 3;
    for (char c : digits) {
      valid = valid && c >= '0' && c <= '9';
      prefix = prefix * 10 + static_cast<unsigned>(c - '0');
    }
    if (!valid || prefix > max_prefix) {
      return Status::InvalidArgument("'" + std::string(text) + "' has a bad prefix length (0 to " +
                                     std::to_string(max_prefix) + ")");
    }
    network.prefix_length = static_cast<uint8_t>(prefix);
  }
  return network;
}

namespace {
const std::vector<IpNetwork>& PrivateNetworks() {
  static const std::vector<IpNetwork> networks = [] {
    std::vector<IpNetwork> list;
    for (const char* cidr : {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                             "169.254.0.0/16", "127.0.0.0/8", "fc00::/7", "fe80::/10", "::1/128"}) {
      list.push_back(ParseIpNetwork(cidr).value());
    }
    return list;
  }();
  return networks;
}
}  // namespace

AddressClass LocalNetworks::Classify(const capture::IpAddress& address) const {
  if (address.version == 4) {
    if (address.bytes[0] >= 224 && address.bytes[0] <= 239) return AddressClass::kMulticast;
    if (address.bytes[0] == 255 && address.bytes[1] == 255 && address.bytes[2] == 255 &&
        address.bytes[3] == 255) {
      return AddressClass::kBroadcast;
    }
  } else if (address.bytes[0] == 0xff) {
    return AddressClass::kMulticast;
  }
  for (const IpNetwork& n : networks_) {
    if (!n.Contains(address)) continue;
    // The all-ones host of a configured IPv4 network is its broadcast address.
    if (address.version == 4 && n.prefix_length < 31) {
      bool all_ones = true;
      for (unsigned bit = n.prefix_length; bit < 32 && all_ones; ++bit) {
        all_ones = (address.bytes[bit / 8] & (0x80 >> (bit % 8))) != 0;
      }
      if (all_ones) return AddressClass::kBroadcast;
    }
    return AddressClass::kLocal;
  }
  for (const IpNetwork& n : PrivateNetworks()) {
    if (n.Contains(address)) return AddressClass::kPrivate;
  }
  return AddressClass::kPublic;
}

}  // namespace flowgate::agent
