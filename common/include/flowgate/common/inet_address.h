// Numeric TCP listen addresses ("IPV4:PORT" or "[IPV6]:PORT"), parsed and printed the same
// way by every listener the binaries open (JSON TCP, metrics).
#pragma once

#include <sys/socket.h>

#include <string>

#include "flowgate/common/status.h"

namespace flowgate {

struct InetAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

// Parses "HOST:PORT" or "[IPV6]:PORT". Hosts are numeric so that opening a listener never
// waits on DNS. `what` names the address in the error ("json socket TCP address").
Result<InetAddress> ParseInetAddress(const std::string& text, const std::string& what);

// "127.0.0.1:7150" or "[::1]:7150"; "?" for a family other than IPv4/IPv6.
std::string FormatInetAddress(const sockaddr_storage& storage);

}  // namespace flowgate
