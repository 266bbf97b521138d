// flowgate_e2e_bench: the whole fleet path with the real binaries, as a user runs it.
//
// One flowgate-gateway (temp RocksDB dir, plaintext agents on loopback, one Unix JSON
// socket, gRPC on loopback) takes N flowgate-agent processes (default 4) replaying the
// reference captures at full speed, with 4 JSON socket readers and 2 gRPC Subscribe
// clients attached. A fifth agent, the latency probe, replays a generated capture in real
// time: alone for --idle seconds first (5), then beside the others until they are done.
//
// How the agents are fed. Each load agent reads `-r FIFO`; the bench writes into it the
// Ethernet reference captures (shared/testdata/ndpi-4.2/pcap, classic pcap files; pcapng and
// other link types are left out) one after another, --passes times (20) or for --seconds
// (60), whichever ends first, as fast as the agent reads, with timestamps shifted so that
// time only moves forward and every file starts 400 s of packet time after the previous one
// ended (so its flows expire first, as on a link; longer gaps inside a file are cut to 400 s).
// Then the bench closes the FIFO: the agent sees the end of its "file", purges its flows and
// exits once the gateway has acknowledged everything, as it does for a real file. Full-speed
// agents outrun the gateway, so that drain is part of the load phase: the rates below are
// the gateway's while it is saturated.
//
// What "sent" and "stored" are. An agent does not report the number of events it sent at
// exit (its final agent_status is a snapshot taken before the last batches leave), so each
// agent also writes its stream to a second FIFO (--json-out) that the bench counts: every
// event the agent emitted, to the gateway and to --json-out alike. Stored is the gateway's own
// count, `events_applied` of each agent in ListAgents (what `flowgate agents` shows). The
// JSON copy costs the agents the encoding, which their CPU figure includes.
//
// What the latency is. Replayed reference packets carry old timestamps, so they cannot time
// anything. The probe agent reads a capture made by flowgate-trafficgen (DNS, TLS, HTTP, QUIC,
// SSH, NTP sessions) through a FIFO that the bench writes at the pace of its packet times, and
// each packet's pcap timestamp is rewritten to the wall clock (CLOCK_REALTIME) at the moment
// the bench writes it into the FIFO. A `flow` event is emitted when nDPI classifies the flow,
// on one of its packets, and carries `last_seen_at` = that packet's time (ms). The latency of
// a `flow` event is then (wall clock when a reader has the whole frame) - last_seen_at: pipe,
// decode, nDPI, the agent's batching (50 ms linger), ZeroMQ, the gateway's store commit, and
// the JSON fan-out to the socket (or the gRPC stream). Events are split by packet time into
// the idle phase and the load phase (under load, the probe's batches queue behind the other
// agents' backlog). Resolution is 1 ms (last_seen_at is whole ms, truncated: the figure may
// read up to 1 ms high). Other event types are not timed: flow_stats and flow_purge are
// emitted on timers, after their last packet.
//
// Figures (bench_report.h): sustained events/s stored and delivered (between 10% and 90% of
// the load phase, from 1 s samples), latency median and p99, CPU seconds per million events
// (agents: the load agents' CPU over the events they sent; gateway: its CPU over the events it
// stored, serving 4 readers and 2 subscribers included; from wait4 rusage), peak resident
// memory (VmHWM) of each, and the loss checks. Baseline: raw ZeroMQ DEALER->ROUTER over
// loopback with messages the size of the agents' batches (512 events of the run's mean size)
// and the agents' window of 64 unacknowledged messages, measured after the run.
//
// Usage: see --help. --smoke (1 agent, 4 passes, 1 s idle, no baseline) is for the ctest that
// keeps it from rotting.
// Exits 1 if an event was lost or a process failed.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include <nlohmann/json.hpp>

#include "../tests/support/gateway_process.h"
#include "../tests/support/ndpi_reference.h"
#include "../tests/support/netifyd_stream.h"
#include "../tests/support/pcap_file.h"
#include "../tests/support/process.h"
#include "../tests/support/temp_dir.h"
#include "bench_report.h"
#include "flowgate/common/flags.h"
#include "flowgate/common/netifyd_json.h"
#include "flowgate/v1/flowgate.grpc.pb.h"

namespace flowgate::bench {
namespace {

using Clock = std::chrono::steady_clock;
using testing::BackgroundProcess;
using testing::BinaryPath;
using testing::GatewayProcess;
using testing::PcapFileHeader;
using testing::PcapRecord;
using testing::ReadEthernetPcap;
using testing::SetRecordTime;
using testing::TempDir;
using testing::TestdataDir;

constexpr char kProbeName[] = "e2e-latency-probe";
constexpr uint64_t kFileGapUs = 400'000'000;  // beyond the agent's 300 s TCP idle timeout
constexpr size_t kPipeBytes = 1u << 20;
constexpr uint32_t kAgentBatchEvents = 512;    // GatewayClientOptions::batch_max_events
constexpr uint32_t kAgentUnackedBatches = 64;  // GatewayClientOptions::max_unacked_batches

struct Options {
  int agents = 4;
  int seconds = 60;      // replay at most this long...
  int passes = 20;       // ...and at most this many passes over the captures per agent
  int idle_seconds = 5;  // the probe alone first
  int readers = 4;
  int subscribers = 2;
  bool smoke = false;
  bool verbose = false;  // print the agents' logs
};

double WallMsNow() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// One pass over the reference captures, laid end to end; pass k is written with every
// timestamp moved k * span_us later.
struct ReplayPass {
  std::string bytes;
  std::vector<size_t> record_offsets;
  std::vector<uint64_t> record_times_us;
  uint64_t span_us = 0;
  size_t files = 0;
};

ReplayPass LoadReferencePass(const std::string& pcap_dir) {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(pcap_dir)) {
    if (entry.path().extension() == ".pcap") files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  ReplayPass pass;
  const uint64_t epoch_us = 1'600'000'000'000'000;  // 2020: any fixed time will do
  uint64_t cursor_us = 0;
  for (const std::string& file : files) {
    std::optional<std::vector<PcapRecord>> records = ReadEthernetPcap(file);
    if (!records || records->empty()) continue;
    ++pass.files;
    // Gaps longer than kFileGapUs (a few captures hold stray packets days apart) are cut to
    // it, which expires the same flows; a packet older than the one before keeps its time.
    uint64_t previous_us = records->front().time_us;
    uint64_t t = cursor_us;
    for (const PcapRecord& r : *records) {
      t += r.time_us > previous_us ? std::min(r.time_us - previous_us, kFileGapUs) : 0;
      previous_us = std::max(previous_us, r.time_us);
      pass.record_offsets.push_back(pass.bytes.size());
      pass.record_times_us.push_back(epoch_us + t);
      pass.bytes += r.bytes;
    }
    const uint64_t last_us = t;
    cursor_us = last_us + kFileGapUs;
  }
  pass.span_us = cursor_us;
  return pass;
}

// ---- FIFOs between the bench and the agents.

// The bench's end of a FIFO that an agent reads as its capture. Opened read-write so that
// neither side waits for the other to open; non-blocking so that a writer never hangs on an
// agent that died (Write gives up at `deadline`).
class CaptureFifo {
 public:
  explicit CaptureFifo(const std::string& path) : path_(path) {
    if (::mkfifo(path.c_str(), 0600) != 0) throw std::runtime_error("mkfifo " + path);
    fd_ = ::open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd_ < 0) throw std::runtime_error("open " + path);
    ::fcntl(fd_, F_SETPIPE_SZ, static_cast<int>(kPipeBytes));
  }
  ~CaptureFifo() { Close(); }
  CaptureFifo(const CaptureFifo&) = delete;
  CaptureFifo& operator=(const CaptureFifo&) = delete;

  const std::string& path() const { return path_; }
  // Writes all of `data`; false if `give_up` passed first.
  bool Write(std::string_view data, Clock::time_point give_up) {
    while (!data.empty()) {
      const ssize_t n = ::write(fd_, data.data(), data.size());
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno != EAGAIN && errno != EINTR) return false;
      if (Clock::now() >= give_up) return false;
      pollfd p{fd_, POLLOUT, 0};
      ::poll(&p, 1, 100);
    }
    return true;
  }
  // The agent reads to the end of what was written, then sees the end of the file. Waits
  // first until the agent has taken what the pipe holds (or stopped taking it for 10 s): a
  // pipe whose last end closes drops its bytes, and the agent may not have opened it yet.
  void Close() {
    if (fd_ < 0) return;
    int pending = 0, before = -1;
    auto progress_at = Clock::now();
    while (::ioctl(fd_, FIONREAD, &pending) == 0 && pending > 0 &&
           Clock::now() - progress_at < std::chrono::seconds(10)) {
      if (pending != before) progress_at = Clock::now();
      before = pending;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // bounded drain wait
    }
    ::close(fd_);
    fd_ = -1;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

// Counts the netifyd frames an agent writes to its --json-out FIFO: the events it emitted.
class SentCounter {
 public:
  explicit SentCounter(const std::string& path) {
    if (::mkfifo(path.c_str(), 0600) != 0) throw std::runtime_error("mkfifo " + path);
    // Non-blocking open of the read end succeeds at once; the agent's open for writing then
    // does too. Linux reports POLLHUP only once a writer has come and gone.
    fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd_ < 0) throw std::runtime_error("open " + path);
    ::fcntl(fd_, F_SETPIPE_SZ, static_cast<int>(kPipeBytes));
    thread_ = std::thread([this] { Run(); });
  }
  ~SentCounter() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  SentCounter(const SentCounter&) = delete;
  SentCounter& operator=(const SentCounter&) = delete;

  // Waits (bounded) for the agent's end of stream; the count, or nullopt if it never came.
  std::optional<uint64_t> Total(std::chrono::seconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!done_ && Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (!done_ || !error_.empty()) return std::nullopt;
    return frames_.load();
  }
  const std::string& error() const { return error_; }

 private:
  void Run() {
    std::vector<char> buffer(kPipeBytes);
    NetifydFrameReader reader;
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const ssize_t n = ::read(fd_, buffer.data(), buffer.size());
      if (n < 0) continue;  // EAGAIN
      if (n == 0) break;    // the agent closed its end
      if (!reader.Feed(std::string_view(buffer.data(), static_cast<size_t>(n))).ok()) {
        error_ = "bad framing in the agent's --json-out";
        break;
      }
      std::string_view payload;
      uint64_t count = 0;
      while (reader.Next(&payload)) ++count;
      frames_ += count;
    }
    done_ = true;
  }

  int fd_ = -1;
  std::atomic<bool> stop_{false}, done_{false};
  std::atomic<uint64_t> frames_{0};
  std::string error_;  // written before done_
  std::thread thread_;
};

// ---- readers of the gateway's output.

// Latencies of the probe's `flow` events, kept with their packet time so that the run can
// tell the events of its idle phase from those under load.
class LatencySamples {
 public:
  void Add(double packet_ms, double delivered_ms) {
    std::lock_guard lock(mutex_);
    samples_.emplace_back(packet_ms, delivered_ms - packet_ms);
  }
  // The latencies (ms) of the events whose packet time is in [from_ms, to_ms).
  std::vector<double> Between(double from_ms, double to_ms) {
    std::lock_guard lock(mutex_);
    std::vector<double> latencies;
    for (const auto& [packet_ms, latency_ms] : samples_) {
      if (packet_ms >= from_ms && packet_ms < to_ms) latencies.push_back(latency_ms);
    }
    return latencies;
  }

 private:
  std::mutex mutex_;
  std::vector<std::pair<double, double>> samples_;
};

// One client of the JSON socket: counts the frames of agents' events (they carry an "agent"
// object, the gateway's own hello/status/definitions do not) and times the probe's flows.
class SocketReader {
 public:
  SocketReader(const std::string& path, LatencySamples& latencies)
      : fd_(testing::ConnectUnixSocket(path)), latencies_(latencies) {
    if (fd_ < 0) throw std::runtime_error("cannot connect to " + path);
    thread_ = std::thread([this] { Run(); });
  }
  ~SocketReader() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  SocketReader(const SocketReader&) = delete;
  SocketReader& operator=(const SocketReader&) = delete;

  bool greeted() const { return frames_ > 0; }
  uint64_t agent_events() const { return agent_events_; }
  const std::string& error() const { return error_; }

 private:
  void Run() {
    std::vector<char> buffer(256 * 1024);
    NetifydFrameReader reader;
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const ssize_t n = ::read(fd_, buffer.data(), buffer.size());
      if (n <= 0) break;
      const double now_ms = WallMsNow();
      if (!reader.Feed(std::string_view(buffer.data(), static_cast<size_t>(n))).ok()) {
        error_ = "bad framing on the JSON socket";
        break;
      }
      std::string_view payload;
      uint64_t frames = 0, agent_events = 0;
      while (reader.Next(&payload)) {
        ++frames;
        if (payload.substr(0, 9) != "{\"agent\":") continue;
        ++agent_events;
        if (payload.find(kProbeName) == std::string_view::npos) continue;
        const nlohmann::json message = nlohmann::json::parse(payload, nullptr, false);
        if (message.value("type", "") != "flow") continue;
        latencies_.Add(message["flow"].value("last_seen_at", 0.0), now_ms);
      }
      frames_ += frames;
      agent_events_ += agent_events;
    }
  }

  int fd_;
  LatencySamples& latencies_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> frames_{0}, agent_events_{0};
  std::string error_;
  std::thread thread_;
};

// One gRPC Subscribe stream from now on: counts agents' events and times the probe's flows.
class Subscriber {
 public:
  Subscriber(v1::FlowService::Stub& stub, LatencySamples& latencies) : latencies_(latencies) {
    v1::SubscribeRequest request;
    request.set_from_now(true);
    stream_ = stub.Subscribe(&context_, request);
    thread_ = std::thread([this] { Run(); });
  }
  ~Subscriber() {
    context_.TryCancel();
    thread_.join();
  }
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  bool started() const { return started_; }
  uint64_t agent_events() const { return agent_events_; }
  uint64_t dropped() const { return dropped_; }
  // Mean serialized size of an agent event received (for the ZeroMQ baseline).
  double mean_event_bytes() const {
    return agent_events_ == 0 ? 0 : static_cast<double>(event_bytes_) / agent_events_;
  }

 private:
  void Run() {
    v1::SubscribeResponse response;
    while (stream_->Read(&response)) {
      started_ = true;
      const double now_ms = WallMsNow();
      uint64_t events = 0, bytes = 0;
      for (const v1::StoredEvent& stored : response.events()) {
        if (stored.agent().name().rfind("e2e-", 0) != 0) continue;
        ++events;
        bytes += stored.event().ByteSizeLong();
        if (stored.agent().name() == kProbeName && stored.event().has_flow()) {
          latencies_.Add(static_cast<double>(stored.event().flow().flow().last_seen_at()), now_ms);
        }
      }
      dropped_ += response.dropped();
      event_bytes_ += bytes;
      agent_events_ += events;
    }
    stream_->Finish().IgnoreError();
  }

  LatencySamples& latencies_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> stream_;
  std::atomic<bool> started_{false};
  std::atomic<uint64_t> agent_events_{0}, dropped_{0}, event_bytes_{0};
  std::thread thread_;
};

// ---- processes.

// VmHWM of a running process in KiB, or 0 once it is gone.
uint64_t PeakRssKib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10);
  }
  return 0;
}

double CpuSeconds(const rusage& usage) {
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// Waits for `process` to exit after `signal` (0: it ends by itself); returns its exit code
// and adds its CPU seconds. The bench reaps one child at a time, so the growth of
// RUSAGE_CHILDREN across the wait is this process's own usage.
int Reap(BackgroundProcess& process, int signal, double* cpu_seconds) {
  rusage before{}, after{};
  ::getrusage(RUSAGE_CHILDREN, &before);
  const int code = process.StopWith(signal, std::chrono::seconds(180));
  ::getrusage(RUSAGE_CHILDREN, &after);
  *cpu_seconds += CpuSeconds(after) - CpuSeconds(before);
  return code;
}

// Stops the gateway (SIGTERM) and adds its CPU seconds, as Reap does for an agent.
int ReapGateway(GatewayProcess& gateway, double* cpu_seconds) {
  rusage before{}, after{};
  ::getrusage(RUSAGE_CHILDREN, &before);
  const int code = gateway.Stop();
  ::getrusage(RUSAGE_CHILDREN, &after);
  *cpu_seconds += CpuSeconds(after) - CpuSeconds(before);
  return code;
}

struct Agent {
  std::string name;
  std::unique_ptr<CaptureFifo> capture;
  std::unique_ptr<SentCounter> sent;
  std::unique_ptr<BackgroundProcess> process;
  std::atomic<uint64_t> peak_rss_kib{0};
  double cpu_seconds = 0;
  int exit_code = -1;
  std::thread writer;
};

std::unique_ptr<BackgroundProcess> StartAgent(const Agent& agent, const std::string& endpoint,
                                              const std::string& json_out) {
  return std::make_unique<BackgroundProcess>(std::vector<std::string>{
      BinaryPath("flowgate-agent"), "-r", agent.capture->path(), "--gateway", endpoint,
      "--plaintext", "--name", agent.name, "--site", "e2e", "--json-out", json_out,
      // Full-speed replay runs ahead of the gateway: the backlog drains after the replay,
      // which may take longer than the default 30 s wait at exit.
      "--delivery-timeout", "600s"});
}

// ---- the ZeroMQ baseline.

// Messages of `bytes` from a DEALER to a ROUTER on loopback, each answered with a small ack,
// at most `window` unanswered (the agent's protocol without the store): messages per second.
double RawZmqMessagesPerSecond(size_t bytes, uint32_t window, double seconds) {
  zmq::context_t context;
  zmq::socket_t router(context, zmq::socket_type::router);
  router.bind("tcp://127.0.0.1:*");
  const std::string endpoint = router.get(zmq::sockopt::last_endpoint);
  std::atomic<bool> stop{false};
  std::thread server([&] {
    zmq::message_t identity, body;
    const std::string ack(16, 'a');
    router.set(zmq::sockopt::rcvtimeo, 100);
    while (!stop) {
      if (!router.recv(identity)) continue;
      (void)router.recv(body);
      router.send(identity, zmq::send_flags::sndmore);
      router.send(zmq::buffer(ack));
    }
  });
  zmq::socket_t dealer(context, zmq::socket_type::dealer);
  dealer.connect(endpoint);
  const std::string payload(bytes, 'x');
  uint64_t sent = 0, acked = 0;
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration<double>(seconds);
  zmq::message_t ack;
  while (Clock::now() < end) {
    while (sent - acked < window) {
      dealer.send(zmq::buffer(payload));
      ++sent;
    }
    if (dealer.recv(ack)) ++acked;
  }
  const double elapsed = SecondsSince(start);
  while (acked < sent && dealer.recv(ack)) ++acked;
  stop = true;
  server.join();
  return static_cast<double>(acked) / elapsed;
}

// ---- the run.

struct Sample {
  double t;  // seconds since the agents started
  uint64_t stored;
  std::vector<uint64_t> socket, grpc;
};

// Events applied by the gateway from the bench's agents, by agent name (ListAgents).
std::optional<std::vector<std::pair<std::string, uint64_t>>> StoredByAgent(
    v1::FlowService::Stub& stub) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ListAgentsResponse response;
  if (!stub.ListAgents(&context, {}, &response).ok()) return std::nullopt;
  std::vector<std::pair<std::string, uint64_t>> stored;
  for (const v1::AgentRecord& a : response.agents()) {
    if (a.identity().name().rfind("e2e-", 0) == 0)
      stored.emplace_back(a.identity().name(), a.events_applied());
  }
  return stored;
}

uint64_t Sum(const std::vector<std::pair<std::string, uint64_t>>& v) {
  uint64_t total = 0;
  for (const auto& [name, n] : v) total += n;
  return total;
}

// The rate of `count(sample)` between the samples nearest to 10% and 90% of the load phase.
template <typename Count>
double SustainedRate(const std::vector<Sample>& samples, double load_seconds, Count count) {
  if (samples.size() < 2) return 0;
  auto nearest = [&](double t) {
    return *std::min_element(samples.begin(), samples.end(), [&](const Sample& a, const Sample& b) {
      return std::abs(a.t - t) < std::abs(b.t - t);
    });
  };
  const Sample& a = nearest(0.1 * load_seconds);
  const Sample& b = nearest(0.9 * load_seconds);
  return b.t > a.t ? static_cast<double>(count(b) - count(a)) / (b.t - a.t) : 0;
}

double MedianOf(const std::vector<uint64_t>& v) {
  return Median(std::vector<double>(v.begin(), v.end()));
}

Figure Plain(const std::string& name, double value, const std::string& unit,
             bool higher_is_better) {
  Figure figure;
  figure.name = name;
  figure.value = value;
  figure.unit = unit;
  figure.higher_is_better = higher_is_better;
  return figure;
}

// A rate compared with the rate it follows from.
Figure Compared(const std::string& name, double value, const std::string& baseline,
                double baseline_value) {
  Figure figure = Plain(name, value, "events/s", true);
  figure.baseline = baseline;
  figure.baseline_value = baseline_value;
  return figure;
}

// A count of events that must be zero.
Figure Checked(const std::string& name, double value) {
  Figure figure = Plain(name, value, "events", false);
  figure.target = 0.0;
  return figure;
}

void ReportLatency(const std::string& prefix, std::vector<double> latencies) {
  if (latencies.empty()) return;
  Report(Plain(prefix + "_median_ms", Median(latencies), "ms", false));
  Report(Plain(prefix + "_p99_ms", Percentile(std::move(latencies), 99), "ms", false));
}

int Run(const Options& options) {
  ::signal(SIGPIPE, SIG_IGN);
  TempDir dir;
  const std::string pcap_dir = TestdataDir() + "/ndpi-4.2/pcap";
  const ReplayPass pass = LoadReferencePass(pcap_dir);
  if (pass.files == 0) {
    std::fprintf(stderr, "e2e: no Ethernet pcap files in %s\n", pcap_dir.c_str());
    return 1;
  }

  // The probe's capture: 20 sessions a second for the idle phase, the replay and a drain as
  // long again; the probe stops when the load agents are done.
  const std::string probe_pcap = dir.Sub("probe.pcap");
  const int probe_seconds = options.idle_seconds + 2 * options.seconds;
  const int probe_sessions = 20 * probe_seconds;
  const testing::CommandResult generated =
      testing::RunCommand({BinaryPath("flowgate-trafficgen"), "--out", probe_pcap, "--sessions",
                           std::to_string(probe_sessions), "--seed", "8", "--client-net",
                           "10.88.0.0", "--duration", std::to_string(probe_seconds) + "s"});
  const std::optional<std::vector<PcapRecord>> probe_records = ReadEthernetPcap(probe_pcap);
  if (generated.exit_code != 0 || !probe_records || probe_records->empty()) {
    std::fprintf(stderr, "e2e: flowgate-trafficgen failed: %s\n", generated.err.c_str());
    return 1;
  }

  const std::string socket_path = dir.Sub("flowgate.sock");
  // Readers on a 2-core machine shared with 4 agents fall behind in bursts; a slow reader
  // loses its oldest frames past --json-client-buffer (as netifyd's socket does), which
  // e2e_socket_events_missed counts. 64 MiB absorbs the bursts of this run.
  GatewayProcess gateway({"--data-dir", dir.Sub("data"), "--json-socket", socket_path,
                          "--grpc-listen", "127.0.0.1:0", "--json-client-buffer", "64MiB"});
  if (!gateway.ready()) {
    std::fprintf(stderr, "e2e: the gateway did not start:\n%s\n", gateway.log().c_str());
    return 1;
  }
  const std::string log = gateway.log();
  const size_t grpc_at = log.find("gRPC listening on ");
  if (grpc_at == std::string::npos) {
    std::fprintf(stderr, "e2e: no gRPC address in the gateway's log:\n%s\n", log.c_str());
    return 1;
  }
  const size_t address_at = grpc_at + std::strlen("gRPC listening on ");
  const std::string grpc_address =
      log.substr(address_at, log.find_first_of(" \n", address_at) - address_at);
  auto stub = v1::FlowService::NewStub(
      grpc::CreateChannel(grpc_address, grpc::InsecureChannelCredentials()));

  LatencySamples socket_latency, grpc_latency;
  std::vector<std::unique_ptr<SocketReader>> readers;
  for (int i = 0; i < options.readers; ++i)
    readers.push_back(std::make_unique<SocketReader>(socket_path, socket_latency));
  std::vector<std::unique_ptr<Subscriber>> subscribers;
  for (int i = 0; i < options.subscribers; ++i)
    subscribers.push_back(std::make_unique<Subscriber>(*stub, grpc_latency));
  // Every reader has its greeting and every stream its first message before any agent runs.
  const auto attach_deadline = Clock::now() + std::chrono::seconds(20);
  auto attached = [&] {
    for (const auto& r : readers)
      if (!r->greeted()) return false;
    for (const auto& s : subscribers)
      if (!s->started()) return false;
    return true;
  };
  while (!attached() && Clock::now() < attach_deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // bounded wait for the streams
  if (!attached()) {
    std::fprintf(stderr, "e2e: readers or subscribers did not attach\n");
    return 1;
  }

  // Agents 0..N-1 replay the reference captures; the last one is the probe.
  std::vector<std::unique_ptr<Agent>> agents;
  for (int i = 0; i <= options.agents; ++i) {
    auto agent = std::make_unique<Agent>();
    agent->name = i < options.agents ? "e2e-agent-" + std::to_string(i + 1) : kProbeName;
    agent->capture = std::make_unique<CaptureFifo>(dir.Sub(agent->name + ".pcap"));
    agent->sent = std::make_unique<SentCounter>(dir.Sub(agent->name + ".json"));
    agents.push_back(std::move(agent));
  }
  Agent& probe = *agents.back();
  const auto give_up = Clock::now() + std::chrono::seconds(probe_seconds + 600);

  // Phase 1: the probe alone (its latency with an idle gateway).
  probe.process = StartAgent(probe, gateway.endpoint(), dir.Sub(probe.name + ".json"));
  std::atomic<bool> load_done{false};
  probe.writer = std::thread([&] {
    bool ok = probe.capture->Write(PcapFileHeader(), give_up);
    const uint64_t first_us = probe_records->front().time_us;
    const auto probe_start = Clock::now();
    for (const PcapRecord& r : *probe_records) {
      if (!ok || load_done) break;
      std::this_thread::sleep_until(probe_start +
                                    std::chrono::microseconds(r.time_us - first_us));  // pacing
      std::string bytes = r.bytes;
      SetRecordTime(bytes.data(), static_cast<uint64_t>(WallMsNow() * 1000));
      ok = probe.capture->Write(bytes, give_up);
    }
    probe.capture->Close();
  });
  const double idle_from_ms = WallMsNow();
  std::this_thread::sleep_for(std::chrono::seconds(options.idle_seconds));  // the idle phase

  // Phase 2: the load agents at full speed, until --passes or --seconds, then until the
  // gateway has acknowledged everything.
  const double load_from_ms = WallMsNow();
  const auto start = Clock::now();
  const auto replay_end = start + std::chrono::seconds(options.seconds);
  std::atomic<uint64_t> passes{0};
  for (int i = 0; i < options.agents; ++i) {
    Agent& agent = *agents[i];
    agent.process = StartAgent(agent, gateway.endpoint(), dir.Sub(agent.name + ".json"));
    agent.writer = std::thread([&] {
      std::string bytes = pass.bytes;
      bool ok = agent.capture->Write(PcapFileHeader(), give_up);
      for (int k = 0; ok && k < options.passes && Clock::now() < replay_end; ++k) {
        for (size_t r = 0; r < pass.record_offsets.size(); ++r)
          SetRecordTime(bytes.data() + pass.record_offsets[r],
                        pass.record_times_us[r] + static_cast<uint64_t>(k) * pass.span_us);
        ok = agent.capture->Write(bytes, give_up);
        if (ok) ++passes;
      }
      agent.capture->Close();
    });
  }

  // Samples every second until the agents are done: stored, delivered, memory.
  std::vector<Sample> samples;
  std::atomic<bool> agents_done{false};
  std::thread monitor([&] {
    while (!agents_done) {
      Sample s;
      s.t = SecondsSince(start);
      if (auto stored = StoredByAgent(*stub)) s.stored = Sum(*stored);
      for (const auto& r : readers) s.socket.push_back(r->agent_events());
      for (const auto& sub : subscribers) s.grpc.push_back(sub->agent_events());
      samples.push_back(std::move(s));
      for (auto& agent : agents) {
        const uint64_t rss = PeakRssKib(agent->process->pid());
        if (rss > agent->peak_rss_kib) agent->peak_rss_kib = rss;
      }
      std::this_thread::sleep_until(Clock::now() + std::chrono::seconds(1));  // sampling period
    }
  });

  for (int i = 0; i < options.agents; ++i) {
    agents[i]->writer.join();
    agents[i]->exit_code = Reap(*agents[i]->process, 0, &agents[i]->cpu_seconds);
  }
  const double load_seconds = SecondsSince(start);
  const double load_to_ms = WallMsNow();
  load_done = true;
  probe.writer.join();
  probe.exit_code = Reap(*probe.process, 0, &probe.cpu_seconds);
  agents_done = true;
  monitor.join();

  // Everything is acknowledged, hence stored; the readers get the rest of the stream.
  const std::optional<std::vector<std::pair<std::string, uint64_t>>> stored = StoredByAgent(*stub);
  const uint64_t stored_total = stored ? Sum(*stored) : 0;
  const auto drain_deadline = Clock::now() + std::chrono::seconds(60);
  auto drained = [&] {
    for (const auto& r : readers)
      if (r->agent_events() < stored_total) return false;
    for (const auto& s : subscribers)
      if (s->agent_events() + s->dropped() < stored_total) return false;
    return true;
  };
  while (!drained() && Clock::now() < drain_deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // bounded wait for the readers

  const uint64_t gateway_peak_kib = PeakRssKib(gateway.pid());
  std::vector<uint64_t> socket_counts, grpc_counts, grpc_dropped;
  for (const auto& r : readers) socket_counts.push_back(r->agent_events());
  for (const auto& s : subscribers) {
    grpc_counts.push_back(s->agent_events());
    grpc_dropped.push_back(s->dropped());
  }
  const double mean_event_bytes = subscribers.empty() ? 0 : subscribers[0]->mean_event_bytes();
  subscribers.clear();
  readers.clear();
  double gateway_cpu = 0;
  const int gateway_exit = ReapGateway(gateway, &gateway_cpu);

  // ---- the loss check, per agent.
  bool ok = stored.has_value() && gateway_exit == 0;
  uint64_t sent_total = 0, load_sent = 0;
  double load_cpu = 0, agent_peak_kib = 0;
  std::fprintf(stderr, "e2e: %-20s %12s %12s %s\n", "agent", "sent", "stored", "check");
  for (size_t i = 0; i < agents.size(); ++i) {
    Agent& agent = *agents[i];
    const std::optional<uint64_t> sent = agent.sent->Total(std::chrono::seconds(10));
    uint64_t agent_stored = 0;
    if (stored) {
      for (const auto& [name, n] : *stored)
        if (name == agent.name) agent_stored = n;
    }
    const bool agent_ok = agent.exit_code == 0 && sent && *sent == agent_stored;
    ok = ok && agent_ok;
    std::fprintf(
        stderr, "e2e: %-20s %12llu %12llu %s%s\n", agent.name.c_str(),
        static_cast<unsigned long long>(sent.value_or(0)),
        static_cast<unsigned long long>(agent_stored), agent_ok ? "ok" : "LOST",
        agent.exit_code == 0 ? "" : (" (exit " + std::to_string(agent.exit_code) + ")").c_str());
    if (options.verbose || !agent_ok)
      std::fprintf(stderr, "%s", agent.process->stderr_text().c_str());
    sent_total += sent.value_or(0);
    if (i + 1 < agents.size()) {
      load_sent += sent.value_or(0);
      load_cpu += agent.cpu_seconds;
      agent_peak_kib = std::max(agent_peak_kib, static_cast<double>(agent.peak_rss_kib));
    }
  }
  std::fprintf(stderr,
               "e2e: %d agents (%llu passes over %zu captures written in all) + probe; all "
               "acknowledged %.1f s after the load started; sent %llu, stored %llu: %s\n",
               options.agents, static_cast<unsigned long long>(passes.load()), pass.files,
               load_seconds, static_cast<unsigned long long>(sent_total),
               static_cast<unsigned long long>(stored_total),
               ok ? "nothing lost" : "EVENTS LOST OR A PROCESS FAILED");
  std::fprintf(stderr, "e2e: socket readers got");
  for (uint64_t c : socket_counts)
    std::fprintf(stderr, " %llu", static_cast<unsigned long long>(c));
  std::fprintf(stderr, "; gRPC subscribers got");
  for (size_t i = 0; i < grpc_counts.size(); ++i)
    std::fprintf(stderr, " %llu (+%llu dropped)", static_cast<unsigned long long>(grpc_counts[i]),
                 static_cast<unsigned long long>(grpc_dropped[i]));
  std::fprintf(stderr, "\n");

  // ---- figures.
  const double stored_rate =
      SustainedRate(samples, load_seconds, [](const Sample& s) { return s.stored; });
  const double socket_rate = SustainedRate(samples, load_seconds, [](const Sample& s) {
    return static_cast<uint64_t>(MedianOf(s.socket));
  });
  const double grpc_rate = SustainedRate(samples, load_seconds, [](const Sample& s) {
    return s.grpc.empty() ? uint64_t{0} : static_cast<uint64_t>(MedianOf(s.grpc));
  });
  uint64_t min_socket = stored_total, min_grpc = stored_total;
  for (uint64_t c : socket_counts) min_socket = std::min(min_socket, c);
  for (uint64_t c : grpc_counts) min_grpc = std::min(min_grpc, c);

  Report(Checked("e2e_events_lost",
                 static_cast<double>(sent_total) - static_cast<double>(stored_total)));
  Report(Checked("e2e_socket_events_missed", static_cast<double>(stored_total - min_socket)));
  Report(Checked("e2e_grpc_events_missed", static_cast<double>(stored_total - min_grpc)));

  double zmq_events_per_s = 0;
  if (!options.smoke && mean_event_bytes > 0) {
    const size_t batch_bytes = static_cast<size_t>(mean_event_bytes * kAgentBatchEvents);
    zmq_events_per_s =
        RawZmqMessagesPerSecond(batch_bytes, kAgentUnackedBatches, 3.0) * kAgentBatchEvents;
    std::fprintf(stderr, "e2e: baseline: raw ZeroMQ with %zu-byte messages (%u events of %.0f B)\n",
                 batch_bytes, kAgentBatchEvents, mean_event_bytes);
    Report(Plain("e2e_zmq_raw_events_per_s", zmq_events_per_s, "events/s", true));
  }
  Figure stored_figure = Plain("e2e_stored_events_per_s", stored_rate, "events/s", true);
  if (zmq_events_per_s > 0) {
    stored_figure.baseline = "e2e_zmq_raw_events_per_s";
    stored_figure.baseline_value = zmq_events_per_s;
  }
  Report(stored_figure);
  Report(Compared("e2e_socket_delivered_events_per_s", socket_rate, "e2e_stored_events_per_s",
                  stored_rate));
  Report(Compared("e2e_grpc_delivered_events_per_s", grpc_rate, "e2e_stored_events_per_s",
                  stored_rate));

  const std::vector<double> socket_idle = socket_latency.Between(idle_from_ms, load_from_ms);
  const std::vector<double> socket_loaded = socket_latency.Between(load_from_ms, load_to_ms);
  const std::vector<double> grpc_idle = grpc_latency.Between(idle_from_ms, load_from_ms);
  const std::vector<double> grpc_loaded = grpc_latency.Between(load_from_ms, load_to_ms);
  ReportLatency("e2e_socket_latency_idle", socket_idle);
  ReportLatency("e2e_socket_latency_loaded", socket_loaded);
  ReportLatency("e2e_grpc_latency_idle", grpc_idle);
  ReportLatency("e2e_grpc_latency_loaded", grpc_loaded);
  std::fprintf(stderr,
               "e2e: latency samples (probe flow events): socket %zu idle, %zu loaded; gRPC %zu "
               "idle, %zu loaded\n",
               socket_idle.size(), socket_loaded.size(), grpc_idle.size(), grpc_loaded.size());
  if (load_sent > 0) {
    Report(Plain("e2e_agent_cpu_s_per_million_events",
                 load_cpu / static_cast<double>(load_sent) * 1e6, "s", false));
  }
  if (stored_total > 0) {
    Report(Plain("e2e_gateway_cpu_s_per_million_events",
                 gateway_cpu / static_cast<double>(stored_total) * 1e6, "s", false));
  }
  Report(Plain("e2e_agent_peak_rss_mib", agent_peak_kib / 1024, "MiB", false));
  Report(Plain("e2e_gateway_peak_rss_mib", static_cast<double>(gateway_peak_kib) / 1024, "MiB",
               false));
  rusage self{};
  ::getrusage(RUSAGE_SELF, &self);
  std::fprintf(stderr,
               "e2e: CPU: load agents %.1f s, gateway %.1f s, this bench (feeding, readers, "
               "subscribers) %.1f s\n",
               load_cpu, gateway_cpu, CpuSeconds(self));
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace flowgate::bench

int main(int argc, char** argv) {
  using flowgate::FlagParser;
  flowgate::bench::Options options;
  uint64_t agents = 4, passes = 20, seconds = 60, idle_seconds = 5;
  FlagParser flags(
      "flowgate_e2e_bench",
      "flowgate_e2e_bench [--agents N] [--passes P] [--seconds S] [--idle S] [--smoke] "
      "[--verbose]",
      "The whole fleet path with the real binaries (issue 8): one flowgate-gateway, N agents\n"
      "replaying the reference captures at full speed, 4 JSON socket readers and 2 gRPC\n"
      "subscribers, and a probe agent in real time for latency. Prints events/s stored and\n"
      "delivered, latency, CPU per million events, memory and the loss checks as JSON lines\n"
      "(bench/bench_report.h); exits 1 if an event was lost or a process failed.");
  flags.AddUint("agents", "N", "Load agents", &agents, 1, 64);
  flags.AddUint("passes", "P", "Passes over the captures per agent, at most", &passes, 1, 10'000);
  flags.AddUint("seconds", "S", "Seconds of replay, at most", &seconds, 2, 86'400);
  flags.AddUint("idle", "S", "Seconds of the probe alone before the load", &idle_seconds, 0, 3600);
  flags.AddSwitch("smoke", "", "1 agent, 4 passes, 1 s idle, no baseline (for the ctest)",
                  [&] { options.smoke = true; });
  flags.AddSwitch("verbose", "", "Print the agents' logs", [&] { options.verbose = true; });
  if (std::optional<int> exit_code = flowgate::ParseMainFlags(flags, argc, argv)) {
    return *exit_code;
  }
  options.agents = static_cast<int>(agents);
  options.passes = static_cast<int>(passes);
  options.seconds = static_cast<int>(seconds);
  options.idle_seconds = static_cast<int>(idle_seconds);
  if (options.smoke) {
    options.agents = 1;
    options.seconds = 2;
    options.passes = 4;
    options.idle_seconds = 1;
  }
  return flowgate::bench::Run(options);
}
