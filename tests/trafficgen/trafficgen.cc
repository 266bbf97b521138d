// flowgate-trafficgen: writes a pcap of synthetic but realistic sessions (DNS, TLS, HTTP,
// NTP, SSH, QUIC) that nDPI 4.2 classifies by name. The demo's agents replay it and tests use
// it as input, so the same flags always produce the same bytes.
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include "capture_plan.h"
#include "flowgate/common/flags.h"
#include "pcap_writer.h"

namespace flowgate::trafficgen {
namespace {

constexpr char kProgram[] = "flowgate-trafficgen";

// Accepts a dotted quad, optionally with "/24"; the host part is ignored.
Result<uint32_t> ParseClientNetwork(std::string_view text) {
  const Status bad =
      Status::InvalidArgument("--client-net takes an IPv4 /24 network such as 192.168.1.0, not '" +
                              std::string(text) + "'");
  std::string_view address = text;
  if (const size_t slash = text.find('/'); slash != std::string_view::npos) {
    if (text.substr(slash + 1) != "24") return bad;
    address = text.substr(0, slash);
  }
  uint32_t value = 0;
  for (int octet = 0; octet < 4; ++octet) {
    const size_t dot = address.find('.');
    if ((octet < 3) == (dot == std::string_view::npos)) return bad;
    Result<uint64_t> part = ParseUint(address.substr(0, dot));
    if (!part.ok() || *part > 255) return bad;
    value = (value << 8) | static_cast<uint32_t>(*part);
    address = octet < 3 ? address.substr(dot + 1) : std::string_view();
  }
  return value;
}

int Fail(const Status& status) {
  std::fprintf(stderr, "%s: %s\n", kProgram, status.message().c_str());
  return 2;
}

int Run(int argc, char** argv) {
  CaptureOptions options;
  std::string out_path;
  std::string client_net = "192.168.1.0";
  FlagParser flags(std::string{kProgram}, std::string{kProgram} + " --out FILE [options]",
                   "Writes a pcap (Ethernet, microsecond timestamps) of synthetic DNS, TLS,\n"
                   "HTTP, NTP, SSH and QUIC sessions that nDPI classifies by name.\n"
                   "The same flags always produce the same file.");
  flags.AddString("out", "o", "FILE", "Capture to write; '-' writes to standard output", &out_path);
  flags.AddUint("sessions", "N", "Number of sessions", &options.sessions, 1, kMaxSessions);
  flags.AddUint("seed", "N", "Seed for every random choice", &options.seed, 0, UINT64_MAX);
  flags.AddUint("start-ms", "MS", "First packet's time, ms since the Unix epoch", &options.start_ms,
                0, 4102444800000);  // up to the year 2100
  flags.AddDuration("duration", "Interval over which sessions start", &options.duration_ms);
  flags.AddString("client-net", "", "CIDR", "Clients' /24: hosts .10-.60, resolver .1",
                  &client_net);

  Result<uint32_t> network = Status::InvalidArgument("unset");
  std::optional<int> exit_code = ParseMainFlags(flags, argc, argv, [&]() -> Status {
    if (out_path.empty()) return Status::InvalidArgument("--out FILE is required");
    network = ParseClientNetwork(client_net);
    return network.ok() ? Status::Ok() : network.status();
  });
  if (exit_code) return *exit_code;
  options.client_network = *network;

  Result<PcapWriter> writer = PcapWriter::Open(out_path);
  if (!writer.ok()) return Fail(writer.status());
  for (const TimedFrame& frame : GenerateCapture(options)) {
    if (Status s = writer->Write(frame.time_us, frame.frame); !s.ok()) return Fail(s);
  }
  if (Status s = writer->Close(); !s.ok()) return Fail(s);
  return 0;
}

}  // namespace
}  // namespace flowgate::trafficgen

int main(int argc, char** argv) {
  try {
    return flowgate::trafficgen::Run(argc, argv);
  } catch (const std::exception& e) {  // only a broken OpenSSL throws; see quic_packets.cc
    return flowgate::trafficgen::Fail(flowgate::Status::Internal(e.what()));
  }
}
