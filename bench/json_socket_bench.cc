// The gateway's JSON socket: how fast encoded flow events reach 1 and 16 readers, beside
// encoding alone, and what a reader that never reads costs the others.
//
// Each run encodes every message (as the gateway's fan-out does) and publishes it to a real
// JsonSocketServer on a Unix socket; readers parse every frame with the strict reader. A
// run's rate is messages delivered to every reader divided by the time until the last one
// has them (messages a reader lost count against it). Figures are medians of --repeats runs.
// The machine is shared, so each run also reports the process's CPU time per message.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "api/json_socket_server.h"
#include "bench_report.h"
#include "flowgate/common/flags.h"
#include "flowgate/common/log.h"
#include "flowgate/common/netifyd_json.h"

namespace flowgate::bench {
namespace {

using Clock = std::chrono::steady_clock;
using gateway::Frame;
using gateway::JsonSocketServer;
using gateway::JsonSocketServerOptions;

// A flow event as an agent would send it, varied per message.
v1::Event SampleFlow(int n) {
  v1::Event event;
  v1::FlowEvent* flow = event.mutable_flow();
  flow->mutable_context()->set_interface("eth0");
  flow->mutable_context()->set_internal(true);
  v1::FlowMetadata* m = flow->mutable_flow();
  char digest[41];
  std::snprintf(digest, sizeof digest, "%040x", n);
  m->set_digest(digest);
  m->set_ip_version(4);
  m->set_ip_protocol(6);
  m->set_local_ip("192.168.1." + std::to_string(n % 250));
  m->set_other_ip("142.250.185." + std::to_string(n % 200));
  m->set_local_port(static_cast<uint32_t>(1024 + n % 60000));
  m->set_other_port(443);
  m->set_local_mac("02:00:00:00:00:01");
  m->set_other_mac("02:00:00:00:00:02");
  m->set_other_type(v1::OTHER_TYPE_REMOTE);
  m->set_local_origin(true);
  m->set_detected_protocol(91);
  m->set_detected_protocol_name("TLS");
  m->set_detected_application(124);
  m->set_detected_application_name("YouTube");
  m->set_detection_confidence("DPI");
  m->mutable_category()->set_application(17);
  m->mutable_category()->set_protocol(5);
  m->set_host_server_name("rr3---sn-4g5e6nsz.googlevideo.com");
  m->mutable_ssl()->set_version("0x0304");
  m->mutable_ssl()->set_client_sni("rr3---sn-4g5e6nsz.googlevideo.com");
  m->mutable_ssl()->set_client_ja3("cd08e31494f9531f560d64c695473da9");
  m->mutable_ssl()->set_alpn("h2");
  m->set_first_seen_at(1'700'000'000'000ULL + static_cast<uint64_t>(n));
  m->set_last_seen_at(1'700'000'000'000ULL + static_cast<uint64_t>(n));
  return event;
}

v1::AgentIdentity SampleAgent() {
  v1::AgentIdentity agent;
  agent.set_id("6f1c2d3e-4b5a-4c6d-8e7f-0123456789ab");
  agent.set_name("probe-17");
  agent.set_site("site-a");
  return agent;
}

int Connect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) std::abort();
  return fd;
}

constexpr std::string_view kEndMarker = "{\"type\":\"end\"}\n";

// Reads frames until the end marker (the newest frame, so never the one dropped), counting
// the messages before it. The strict reader checks every header, length and line end; the
// payloads are taken as views, as a reader that parses in place would.
void ReadFrames(int fd, std::atomic<size_t>* received) {
  NetifydFrameReader reader;
  std::string_view payload;
  std::vector<char> buffer(1 << 18);
  size_t count = 0;
  while (true) {
    ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n <= 0) break;
    if (!reader.Feed(std::string_view(buffer.data(), static_cast<size_t>(n))).ok()) std::abort();
    bool done = false;
    while (reader.Next(&payload)) {
      done = done || payload == kEndMarker;
      ++count;
    }
    if (done) break;
  }
  received->fetch_add(count - 2);  // neither the welcome frame nor the end marker
}

struct RunResult {
  double messages_per_s = 0;      // delivered to every reader
  double cpu_us_per_message = 0;  // process CPU (encode, server, readers) per published message
};

// Encodes and publishes `messages` to `readers` reading clients (plus `stalled` clients that
// never read).
RunResult Run(int messages, int readers, int stalled, size_t reader_buffer) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("flowgate-json-bench-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "s.sock").string();
  JsonSocketServerOptions options;
  options.unix_paths = {path};
  options.client_buffer_bytes = reader_buffer;
  auto welcome = std::make_shared<const std::string>(FrameNetifydPayload("{\"type\":\"x\"}\n"));
  options.welcome_frames = [welcome] { return std::vector<Frame>{welcome}; };
  auto server = JsonSocketServer::Create(std::move(options));
  if (!server.ok()) {
    std::fprintf(stderr, "json bench: %s\n", server.status().message().c_str());
    std::exit(1);
  }
  std::vector<int> fds;
  for (int i = 0; i < readers + stalled; ++i) fds.push_back(Connect(path));
  while ((*server)->stats().clients_connected < fds.size()) std::this_thread::yield();

  std::vector<v1::Event> events;
  for (int n = 0; n < 1000; ++n) events.push_back(SampleFlow(n));
  const v1::AgentIdentity agent = SampleAgent();
  std::atomic<size_t> received{0};
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  const double cpu_start = ProcessCpuSeconds();
  for (int i = 0; i < readers; ++i) {
    threads.emplace_back(ReadFrames, fds[static_cast<size_t>(i)], &received);
  }
  for (int n = 0; n < messages; ++n) {
    (*server)->Publish(std::make_shared<const std::string>(
        EncodeNetifydFrame(events[static_cast<size_t>(n % 1000)], &agent)));
  }
  (*server)->Publish(std::make_shared<const std::string>(FrameNetifydPayload(kEndMarker)));
  for (std::thread& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu_seconds = ProcessCpuSeconds() - cpu_start;
  const size_t expected = static_cast<size_t>(messages) * static_cast<size_t>(readers);
  if (received.load() != expected) {
    std::fprintf(stderr, "json bench: %d reader(s) got %zu of %zu messages\n", readers,
                 received.load(), expected);
  }
  (*server)->Stop();
  for (int fd : fds) ::close(fd);
  std::filesystem::remove_all(dir);
  return RunResult{static_cast<double>(received.load()) / readers / seconds,
                   cpu_seconds * 1e6 / messages};
}

RunResult EncodeOnly(int messages) {
  std::vector<v1::Event> events;
  for (int n = 0; n < 1000; ++n) events.push_back(SampleFlow(n));
  const v1::AgentIdentity agent = SampleAgent();
  size_t bytes = 0;
  const auto start = Clock::now();
  const double cpu_start = ProcessCpuSeconds();
  for (int n = 0; n < messages; ++n) {
    bytes += EncodeNetifydFrame(events[static_cast<size_t>(n % 1000)], &agent).size();
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu_seconds = ProcessCpuSeconds() - cpu_start;
  if (bytes == 0) std::abort();
  return RunResult{messages / seconds, cpu_seconds * 1e6 / messages};
}

int Main(int argc, char** argv) {
  uint64_t messages_flag = 200'000, repeats_flag = 5;
  FlagParser flag_parser(
      "flowgate_json_bench", "flowgate_json_bench [--messages N] [--repeats N]",
      "The gateway's JSON socket (issue 6): encoded flow events delivered to 1 and to 16\n"
      "readers over a Unix socket, beside encoding alone, and what a reader that never reads\n"
      "costs another. Prints one JSON object per figure on stdout (bench/bench_report.h).");
  flag_parser.AddUint("messages", "N", "Messages per run (16 readers get a quarter)",
                      &messages_flag, 1000, 100'000'000);
  flag_parser.AddUint("repeats", "N", "Runs per figure (the median is reported)", &repeats_flag, 1,
                      1000);
  if (std::optional<int> exit_code = ParseMainFlags(flag_parser, argc, argv)) {
    return *exit_code;
  }
  const int messages = static_cast<int>(messages_flag), repeats = static_cast<int>(repeats_flag);
  SetLogLevel(LogLevel::kWarning);
  constexpr size_t kNoDrops = 1ull << 30;  // readers here must not lose anything
  std::vector<double> encode, encode_cpu, one, sixteen, one_alone, one_with_stalled, one_cpu,
      sixteen_cpu;
  for (int r = 0; r < repeats; ++r) {
    const RunResult encode_run = EncodeOnly(messages);
    encode.push_back(encode_run.messages_per_s);
    encode_cpu.push_back(encode_run.cpu_us_per_message);
    const RunResult one_run = Run(messages, 1, 0, kNoDrops);
    one.push_back(one_run.messages_per_s);
    one_cpu.push_back(one_run.cpu_us_per_message);
    const RunResult sixteen_run = Run(messages / 4, 16, 0, kNoDrops);
    sixteen.push_back(sixteen_run.messages_per_s);
    sixteen_cpu.push_back(sixteen_run.cpu_us_per_message);
    // The stalled client has the default 4 MiB buffer; the reader must keep its pace.
    one_alone.push_back(Run(messages, 1, 0, 4u << 20).messages_per_s);
    one_with_stalled.push_back(Run(messages, 1, 1, 4u << 20).messages_per_s);
  }
  const double encode_rate = Median(encode);
  Report({"json_encode_only_messages_per_s", encode_rate, "messages/s", true, std::nullopt, "", 0,
          std::nullopt});
  Report({"json_socket_1_client_messages_per_s", Median(one), "messages/s", true, 500'000.0,
          "json_encode_only_messages_per_s", encode_rate, std::nullopt});
  Report({"json_socket_16_clients_messages_per_s", Median(sixteen), "messages/s", true,
          std::nullopt, "json_encode_only_messages_per_s", encode_rate, std::nullopt});
  Report({"json_socket_reader_with_stalled_client_messages_per_s", Median(one_with_stalled),
          "messages/s", true, std::nullopt, "json_socket_reader_alone_messages_per_s",
          Median(one_alone), 0.9});
  const double encode_cpu_us = Median(encode_cpu);
  Report({"json_encode_only_cpu_us_per_message", encode_cpu_us, "us", false, std::nullopt, "", 0,
          std::nullopt});
  Report({"json_socket_1_client_cpu_us_per_message", Median(one_cpu), "us", false, std::nullopt,
          "json_encode_only_cpu_us_per_message", encode_cpu_us, std::nullopt});
  Report({"json_socket_16_clients_cpu_us_per_message", Median(sixteen_cpu), "us", false,
          std::nullopt, "json_encode_only_cpu_us_per_message", encode_cpu_us, std::nullopt});
  return 0;
}

}  // namespace
}  // namespace flowgate::bench

int main(int argc, char** argv) { return flowgate::bench::Main(argc, argv); }
