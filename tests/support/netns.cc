#include "netns.h"

#include <unistd.h>

#include <chrono>

#include "process.h"

namespace flowgate::testing {

VethNamespace::VethNamespace() {
  const std::string id = std::to_string(::getpid());
  namespace_ = "fgtest" + id;
  host_end_ = "fgh" + id;
  namespace_end_ = "fgn" + id;
  if (::geteuid() != 0) {
    error_ = "needs root to create network namespaces";
    return;
  }
  // IPv6 is switched off on both ends before they come up, so the kernel's own router and
  // neighbour solicitations do not show up as extra flows.
  const bool made =
      Run({"/usr/sbin/ip", "netns", "add", namespace_}) &&
      Run({"/usr/sbin/ip", "link", "add", host_end_, "type", "veth", "peer", "name",
           namespace_end_}) &&
      Run({"/usr/sbin/ip", "link", "set", namespace_end_, "netns", namespace_}) &&
      Run({"/usr/sbin/sysctl", "-q", "-w", "net.ipv6.conf." + host_end_ + ".disable_ipv6=1"}) &&
      Run(InNamespace({"/usr/sbin/sysctl", "-q", "-w",
                       "net.ipv6.conf." + namespace_end_ + ".disable_ipv6=1"})) &&
      // Reference captures hold frames past 1500 bytes (offloaded segments).
      Run({"/usr/sbin/ip", "link", "set", host_end_, "mtu", "65535"}) &&
      Run(InNamespace({"ip", "link", "set", namespace_end_, "mtu", "65535"})) &&
      Run({"/usr/sbin/ip", "link", "set", host_end_, "up"}) &&
      Run(InNamespace({"ip", "link", "set", namespace_end_, "up"}));
  if (!made && error_.empty()) error_ = "cannot set up the namespace";
}

VethNamespace::~VethNamespace() {
  // Deleting the namespace deletes its veth end, and with it the pair; the second command
  // covers a failure half-way through the set-up.
  RunCommand({"/usr/sbin/ip", "netns", "del", namespace_}, std::chrono::seconds(10));
  RunCommand({"/usr/sbin/ip", "link", "del", host_end_}, std::chrono::seconds(10));
}

std::vector<std::string> VethNamespace::InNamespace(const std::vector<std::string>& argv) const {
  std::vector<std::string> full = {"/usr/sbin/ip", "netns", "exec", namespace_};
  full.insert(full.end(), argv.begin(), argv.end());
  return full;
}

bool VethNamespace::Run(const std::vector<std::string>& argv) {
  CommandResult result = RunCommand(argv, std::chrono::seconds(10));
  if (result.exit_code == 0) return true;
  std::string command;
  for (const std::string& arg : argv) command += (command.empty() ? "" : " ") + arg;
  error_ = "'" + command + "' failed: " + result.err;
  return false;
}

}  // namespace flowgate::testing
