// flowgate-agent: classify the flows of a capture with nDPI and send them on.
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "core/agent_app.h"
#include "flowgate/common/flags.h"
#include "flowgate/common/utf8.h"

int main(int argc, char** argv) {
  using namespace flowgate;
  agent::AgentOptions options;
  FlagParser flags(
      "flowgate-agent",
      "flowgate-agent {-r FILE | -i IFACE}... [--json-out PATH|-] [--gateway tcp://HOST:PORT] "
      "[options]",
      "Reads packets from capture files and/or live interfaces, tracks and classifies every\n"
      "flow with nDPI 4.2, and emits netifyd events (agent_hello, flow, flow_stats,\n"
      "flow_purge, agent_status) as a netifyd JSON stream (--json-out) and/or to a flowgate\n"
      "gateway over ZeroMQ (--gateway). At the end of the capture files, or on SIGINT or\n"
      "SIGTERM, the remaining flows are purged as 'terminated' and the agent exits 0 once\n"
      "the gateway has acknowledged everything; 1 if it did not within --delivery-timeout\n"
      "or, reading files, if it refused batches (their events are lost).\n\n"
      "Example: flowgate-agent -r capture.pcap --json-out - | jq -c 'select(.type==\"flow\")'\n"
      "         flowgate-agent -I eth0 -E wan0 --workers 2 --gateway tcp://gw:7151");
  flags.AddOption("read", "r", "FILE", "Read packets from a pcap or pcapng file (repeatable)",
                  [&](std::string_view v) {
                    options.capture_files.emplace_back(v);
                    return Status::Ok();
                  });
  auto add_interface = [&](bool internal) {
    return [&options, internal](std::string_view v) {
      options.interfaces.push_back({std::string(v), internal});
      return Status::Ok();
    };
  };
  flags.AddOption("interface", "i", "IFACE", "Capture on a LAN interface (repeatable)",
                  add_interface(true));
  flags.AddOption("internal", "I", "IFACE", "Capture on a LAN interface, as netifyd -I",
                  add_interface(true));
  flags.AddOption("external", "E", "IFACE", "Capture on a WAN interface, as netifyd -E",
                  add_interface(false));
  flags.AddString("bpf", "", "EXPR", "Capture only packets matching this BPF filter",
                  &options.capture.bpf);
  flags.AddSwitch("no-promiscuous", "", "Do not put live interfaces in promiscuous mode",
                  [&] { options.capture.promiscuous = false; });
  flags.AddByteSize("capture-buffer", "Kernel capture buffer per interface (default: 16MiB)",
                    &options.capture.buffer_bytes, 65536);
  uint64_t workers = options.workers;
  flags.AddUint("workers", "N", "DPI worker threads (default: 1)", &workers, 1, 64);
  flags.AddOption(
      "replay-speed", "", "X",
      "Replay capture files at X times their packet time (default: as fast as "
      "possible)",
      [&](std::string_view v) {
        char* end = nullptr;
        const std::string text(v);
        const double speed = std::strtod(text.c_str(), &end);
        if (end == text.c_str() || *end != '\0' || !(speed > 0) || speed > 1e6) {
          return Status::InvalidArgument("--replay-speed wants a number > 0, got '" + text + "'");
        }
        options.replay_speed = speed;
        return Status::Ok();
      });
  flags.AddString("json-out", "", "PATH", "Write the netifyd JSON stream to PATH ('-' = stdout)",
                  &options.json_out);
  flags.AddOption("gateway", "", "ENDPOINT",
                  "Send events to the gateway at tcp://HOST:PORT; repeated, the gateways of "
                  "one cluster, used one at a time in turn (see --failover-after)",
                  [&](std::string_view v) {
                    if (!v.empty()) options.gateways.emplace_back(v);  // "" = none, as ever
                    return Status::Ok();
                  });
  flags.AddDuration("failover-after",
                    "With several --gateway: move to the next when the current one acknowledged "
                    "nothing for this long while batches waited",
                    &options.failover_after_ms);
  flags.AddString("name", "", "NAME", "Agent name shown by the gateway (default: host name)",
                  &options.name);
  flags.AddString("site", "", "SITE", "Site name shown by the gateway", &options.site);
  flags.AddString("state-dir", "", "DIR",
                  "Keep the agent's identity, and its spool of unacknowledged batches, in DIR",
                  &options.state_dir);
  flags.AddByteSize("spool-max-bytes",
                    "Unacknowledged batches kept (on disk with --state-dir); past it the oldest "
                    "are dropped and counted (default: 256MiB)",
                    &options.spool_max_bytes, 65536);
  flags.AddBool("compress", "Compress batches to the gateway with zstd", &options.compress);
  flags.AddString("key", "", "FILE", "This agent's CURVE key pair (flowgate keygen)",
                  &options.key_file);
  flags.AddString("gateway-key", "", "FILE",
                  "The gateway's CURVE public key (NAME.pub), shared by every --gateway",
                  &options.gateway_key_file);
  flags.AddBool("plaintext", "Talk to the gateway unencrypted and unauthenticated",
                &options.plaintext);
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
  flags.AddUint("queue-packets", "N",
                "Packets each DPI worker's queue holds; live capture drops (and counts) what "
                "arrives while it is full",
                &options.queue_packets, 1, 1'000'000);
  flags.AddDuration("update-interval", "Interval of flow_stats and agent_status",
                    &options.update_interval_ms);
  flags.AddDuration("delivery-timeout", "Wait this long at exit for the gateway's acknowledgements",
                    &options.delivery_timeout_ms);
  flags.AddMetricsListen(&options.metrics_listen);
  flags.AddLogLevel();
  flags.AddConfigFile();
  std::optional<int> exit_code = ParseMainFlags(flags, argc, argv, [&]() -> Status {
    if (options.capture_files.empty() && options.interfaces.empty()) {
      return Status::InvalidArgument("no capture given: use -r FILE or -i IFACE (see --help)");
    }
    if (options.update_interval_ms < 1000) {
      return Status::InvalidArgument("--update-interval must be at least 1s");
    }
    if (options.failover_after_ms == 0) {
      return Status::InvalidArgument("--failover-after must be more than 0");
    }
    // They travel in every batch and event, as protobuf strings that must be UTF-8.
    if (!IsValidUtf8(options.name)) return Status::InvalidArgument("--name is not UTF-8 text");
    if (!IsValidUtf8(options.site)) return Status::InvalidArgument("--site is not UTF-8 text");
    for (const agent::CaptureInterface& interface : options.interfaces) {
      if (!IsValidUtf8(interface.name)) {
        return Status::InvalidArgument("interface '" + ValidUtf8(interface.name) +
                                       "': its name is not UTF-8 text");
      }
    }
    if (!options.gateways.empty() && !options.plaintext &&
        (options.key_file.empty() || options.gateway_key_file.empty())) {
      return Status::InvalidArgument(
          "--gateway needs --key FILE and --gateway-key FILE (CURVE), or --plaintext");
    }
    return Status::Ok();
  });
  if (exit_code) return *exit_code;
  options.workers = static_cast<uint32_t>(workers);
  Status status = agent::RunAgent(options);
  if (!status.ok()) {
    std::fprintf(stderr, "flowgate-agent: %s\n", status.message().c_str());
    return 1;
  }
  return 0;
}
