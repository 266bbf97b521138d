// flowgate-agent: classify the flows of a capture with nDPI and send them on.
#include <cstdio>
#include <optional>

#include "core/agent_app.h"
#include "flowgate/common/flags.h"

int main(int argc, char** argv) {
  using namespace flowgate;
  agent::AgentOptions options;
  FlagParser flags(
      "flowgate-agent",
      "flowgate-agent -r FILE [--json-out PATH|-] [--gateway tcp://HOST:PORT] [options]",
      "Reads packets, tracks and classifies every flow with nDPI 4.2, and emits netifyd\n"
      "events (agent_hello, flow, flow_stats, flow_purge, agent_status) as a netifyd JSON\n"
      "stream (--json-out) and/or to a flowgate gateway over ZeroMQ (--gateway). At the end\n"
      "of a capture file the remaining flows are purged as 'terminated' and the agent exits\n"
      "0 once the gateway has acknowledged everything.\n\n"
      "Example: flowgate-agent -r capture.pcap --json-out - | jq -c 'select(.type==\"flow\")'");
  flags.AddString("read", "r", "FILE", "Read packets from a pcap or pcapng file",
                  &options.capture_file);
  flags.AddString("json-out", "", "PATH", "Write the netifyd JSON stream to PATH ('-' = stdout)",
                  &options.json_out);
  flags.AddString("gateway", "", "ENDPOINT", "Send events to the gateway at tcp://HOST:PORT",
                  &options.gateway);
  flags.AddString("name", "", "NAME", "Agent name shown by the gateway (default: host name)",
                  &options.name);
  flags.AddString("site", "", "SITE", "Site name shown by the gateway", &options.site);
  flags.AddString("state-dir", "", "DIR", "Keep the agent's identity in DIR", &options.state_dir);
  flags.AddOption("local-net", "", "CIDR", "A network whose addresses are local (repeatable)",
                  [&](std::string_view v) {
                    options.local_networks.emplace_back(v);
                    return Status::Ok();
                  });
  flags.AddString("ndpi-protos", "", "FILE", "Load nDPI protocol rules from FILE",
                  &options.classifier.protos_file);
  flags.AddDuration("idle-timeout", "Purge idle non-TCP flows (and TCP after FIN) after",
                    &options.idle_timeout_ms);
  flags.AddDuration("tcp-idle-timeout", "Purge idle TCP flows after", &options.tcp_idle_timeout_ms);
  flags.AddUint("max-flows", "N", "Flows tracked at most; the least recently seen is evicted",
                &options.max_flows, 1, 100'000'000);
  flags.AddDuration("update-interval", "Interval of flow_stats and agent_status",
                    &options.update_interval_ms);
  flags.AddDuration("delivery-timeout", "Wait this long at exit for the gateway's acknowledgements",
                    &options.delivery_timeout_ms);
  flags.AddLogLevel();
  std::optional<int> exit_code = ParseMainFlags(flags, argc, argv, [&]() -> Status {
    if (options.capture_file.empty()) {
      return Status::InvalidArgument("no capture given: use -r FILE (see --help)");
    }
    if (options.update_interval_ms < 1000) {
      return Status::InvalidArgument("--update-interval must be at least 1s");
    }
    return Status::Ok();
  });
  if (exit_code) return *exit_code;
  Status status = agent::RunAgent(options);
  if (!status.ok()) {
    std::fprintf(stderr, "flowgate-agent: %s\n", status.message().c_str());
    return 1;
  }
  return 0;
}
