// flowgate: the command-line client of a flowgate gateway.
#include <cstdio>
#include <optional>
#include <string>

#include "flowgate/common/flags.h"
#include "flowgate/common/identity.h"
#include "keygen_command.h"
#include "query_commands.h"

namespace {
constexpr const char* kCommands =
    "Commands (each takes --help):\n"
    "  query    flows in a time range, filtered      flowgate query --since 1h --filter 'app == "
    "\"YouTube\"'\n"
    "  top      top applications, hosts, agents      flowgate top --by application\n"
    "  tail     the live merged stream               flowgate tail --filter 'agent == \"site-a\"'\n"
    "  agents   the agent registry                   flowgate agents\n"
    "  flow     one flow by digest                   flowgate flow DIGEST\n"
    "  keygen   CURVE key pair for agents/gateway    flowgate keygen --name probe-1 --out DIR\n"
    "  version  print the version\n";
}  // namespace

int main(int argc, char** argv) {
  using namespace flowgate;
  // keygen is local (no gateway): it takes only its own flags.
  if (argc >= 2 && std::string(argv[1]) == "keygen") {
    return cli::RunKeygenCommand(argc - 1, argv + 1);
  }
  cli::ClientOptions client;
  std::string& gateway = client.gateway;
  FlagParser flags("flowgate",
                   "flowgate [--gateway HOST:PORT] [--token-file F] [--tls-ca F] COMMAND [options]",
                   std::string("Queries a flowgate gateway.\n\n") + kCommands);
  flags.AddString("gateway", "", "HOST:PORT", "gRPC address of the gateway", &gateway);
  flags.AddString("token-file", "", "FILE", "Bearer token for the gateway's gRPC API",
                  &client.token_file);
  flags.AddString("tls-ca", "", "FILE", "Use TLS, trusting the PEM CA certificate in FILE",
                  &client.tls_ca_file);
  // The gRPC commands take their own flags: parse only what comes before the command.
  int global_argc = argc;
  for (int i = 1; i < argc; ++i) {
    if (cli::IsQueryCommand(argv[i])) {
      global_argc = i;
      break;
    }
    const std::string arg = argv[i];
    if (arg.rfind("--", 0) == 0 && arg.find('=') == std::string::npos && arg != "--help") ++i;
  }
  std::optional<int> exit_code = ParseMainFlags(flags, global_argc, argv, nullptr, true);
  if (exit_code) return *exit_code;
  if (global_argc < argc) {
    return cli::RunQueryCommand(client, argc - global_argc, argv + global_argc);
  }
  if (flags.positional().empty()) {
    std::fputs(flags.Help().c_str(), stdout);
    return 0;
  }
  const std::string& command = flags.positional().front();
  if (command == "version") {
    std::printf("flowgate %s\n", FlowgateVersion());
    return 0;
  }
  std::fprintf(stderr, "flowgate: unknown command '%s'; see flowgate --help\n", command.c_str());
  return 2;
}
