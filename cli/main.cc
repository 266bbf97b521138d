// flowgate: the command-line client of a flowgate gateway.
#include <cstdio>
#include <optional>
#include <string>

#include "flowgate/common/flags.h"
#include "flowgate/common/identity.h"

namespace {
constexpr const char* kCommands =
    "Commands (served by the gateway's gRPC API as it lands; see the issues):\n"
    "  query    flows in a time range, filtered      flowgate query --since 1h --filter 'app == "
    "\"YouTube\"'\n"
    "  top      top applications, hosts, agents      flowgate top --by application\n"
    "  tail     the live merged stream               flowgate tail --filter 'agent == \"site-a\"'\n"
    "  agents   the agent registry                   flowgate agents\n"
    "  flow     one flow by digest                   flowgate flow DIGEST\n"
    "  version  print the version\n";
}  // namespace

int main(int argc, char** argv) {
  using namespace flowgate;
  std::string gateway = "127.0.0.1:7152";
  FlagParser flags("flowgate", "flowgate [--gateway HOST:PORT] COMMAND [options]",
                   std::string("Queries a flowgate gateway.\n\n") + kCommands);
  flags.AddString("gateway", "", "HOST:PORT", "gRPC address of the gateway", &gateway);
  std::optional<int> exit_code = ParseMainFlags(flags, argc, argv, nullptr, true);
  if (exit_code) return *exit_code;
  if (flags.positional().empty()) {
    std::fputs(flags.Help().c_str(), stdout);
    return 0;
  }
  const std::string& command = flags.positional().front();
  if (command == "version") {
    std::printf("flowgate %s\n", FlowgateVersion());
    return 0;
  }
  for (const char* known : {"query", "top", "tail", "agents", "flow"}) {
    if (command == known) {
      std::fprintf(stderr, "flowgate: '%s' needs the gateway's gRPC API, which is not built yet\n",
                   known);
      return 3;
    }
  }
  std::fprintf(stderr, "flowgate: unknown command '%s'; see flowgate --help\n", command.c_str());
  return 2;
}
