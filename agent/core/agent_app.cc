#include "core/agent_app.h"

#include <netinet/in.h>
#include <pcap/dlt.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>

#include "capture/packet_decoder.h"
#include "capture/packet_source.h"
#include "core/flow_table.h"
#include "core/local_networks.h"
#include "core/worker.h"
#include "export/gateway_client.h"
#include "export/json_stream_sink.h"
#include "flowgate/common/curve_keys.h"
#include "flowgate/common/identity.h"
#include "flowgate/common/log.h"
#include "flowgate/common/metrics.h"
#include "flowgate/common/netifyd_json.h"
#include "flowgate/common/thread_name.h"
#include "flowgate/common/utf8.h"

namespace flowgate::agent {
namespace {

// Reads the agent id kept in `state_dir`, making and saving one on first use.
Result<std::string> LoadOrCreateAgentId(const std::string& state_dir) {
  if (state_dir.empty()) return MakeUuid();
  std::error_code error;
  std::filesystem::create_directories(state_dir, error);
  if (error)
    return Status::IoError("cannot create state dir '" + state_dir + "': " + error.message());
  const std::string path = state_dir + "/agent-id";
  std::ifstream in(path);
  std::string id;
  if (in && std::getline(in, id) && id.size() == 36) return id;
  id = MakeUuid();
  std::ofstream out(path, std::ios::trunc);
  out << id << "\n";
  if (!out) return Status::IoError("cannot write '" + path + "'");
  return id;
}

// `now - before`, field by field over the counters of InterfaceStats.
v1::InterfaceStats CounterDelta(const v1::InterfaceStats& now, const v1::InterfaceStats& before) {
  v1::InterfaceStats delta;
  const google::protobuf::Descriptor* descriptor = now.GetDescriptor();
  const google::protobuf::Reflection* reflection = now.GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = descriptor->field(i);
    if (field->is_repeated() ||
        field->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_UINT64) {
      continue;
    }
    reflection->SetUInt64(&delta, field,
                          reflection->GetUInt64(now, field) - reflection->GetUInt64(before, field));
  }
  return delta;
}

// Capture counters as netifyd's `stats` reports them (per status interval), kept whole
// since start for the metrics endpoint.
class CaptureCounters {
 public:
  explicit CaptureCounters(int link_type) : ethernet_(link_type == DLT_EN10MB) {}

  void Count(const capture::DecodedPacket& p, uint32_t wire_length) {
    s_.set_raw(s_.raw() + 1);
    s_.set_wire_bytes(s_.wire_bytes() + wire_length);
    if (ethernet_) s_.set_ethernet(s_.ethernet() + 1);
    if (p.vlan_id != 0) s_.set_vlan(s_.vlan() + 1);
    s_.set_ip(s_.ip() + 1);
    (p.ip_version == 4 ? s_.set_ip4(s_.ip4() + 1) : s_.set_ip6(s_.ip6() + 1));
    s_.set_ip_bytes(s_.ip_bytes() + p.l3_length);
    if (p.is_fragment) s_.set_fragmented(s_.fragmented() + 1);
    if (p.tunnel_depth > 0) s_.set_tunneled(s_.tunneled() + 1);
    switch (p.ip_protocol) {
      case IPPROTO_TCP:
        s_.set_tcp(s_.tcp() + 1);
        break;
      case IPPROTO_UDP:
        s_.set_udp(s_.udp() + 1);
        break;
      case IPPROTO_ICMP:
      case IPPROTO_ICMPV6:
        s_.set_icmp(s_.icmp() + 1);
        break;
      default:
        s_.set_other(s_.other() + 1);
    }
  }

  void Discard(uint32_t wire_length) {
    s_.set_raw(s_.raw() + 1);
    s_.set_wire_bytes(s_.wire_bytes() + wire_length);
    s_.set_discarded(s_.discarded() + 1);
    s_.set_discarded_bytes(s_.discarded_bytes() + wire_length);
  }

  // Returns the interval's counters and starts a new interval.
  v1::InterfaceStats TakeInterval(const std::string& name) {
    v1::InterfaceStats out = CounterDelta(s_, reported_);
    out.set_name(name);
    reported_ = s_;
    return out;
  }

  // Everything counted since start.
  const v1::InterfaceStats& totals() const { return s_; }

 private:
  bool ethernet_;
  v1::InterfaceStats s_;         // since start
  v1::InterfaceStats reported_;  // s_ as of the last TakeInterval
};

// One capture (file or interface): its source, counters and state, shared by its capture
// thread and the status reporter.
struct Capture {
  std::string path;  // file path or interface name
  bool live = false;
  bool internal = true;
  std::unique_ptr<capture::PacketSource> source;  // owned by the capture thread once it runs
  std::string name;                               // the flows' `interface`

  std::mutex mutex;  // guards everything below
  std::optional<CaptureCounters> counters;
  uint64_t kernel_dropped_reported = 0;
  // The current handle's kernel drops as last sampled by the capture thread: only that
  // thread touches the pcap handle (pcap_stats is not safe beside a running pcap_next_ex).
  uint64_t kernel_dropped = 0;
  uint64_t kernel_dropped_closed = 0;  // by the handles closed before the current one
  uint64_t queue_dropped = 0;          // since the last status
  uint64_t queue_dropped_total = 0;
  uint64_t packets = 0;                      // read from the source, whole run
  uint64_t file_offset = 0, file_bytes = 0;  // files: sampled by the capture thread
  std::string state;                         // live: "up" or "down"
  std::string last_error;
  uint32_t reopens = 0;
  capture::PacketSource* running = nullptr;  // for Interrupt() from the signal thread
};

uint64_t SteadyMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// Serialises the workers' emissions into the one sink.
class LockedSink final : public EventSink {
 public:
  explicit LockedSink(std::unique_ptr<EventSink> sink) : sink_(std::move(sink)) {}
  void Emit(const v1::Event& event) override {
    std::lock_guard lock(mutex_);
    sink_->Emit(event);
  }
  Status Flush(uint64_t timeout_ms) override {
    std::lock_guard lock(mutex_);
    return sink_->Flush(timeout_ms);
  }
  // Flushes `part`, one of the wrapped sinks, without waiting; a failure is kept by the
  // part and reported by the final Flush().
  void FlushPart(EventSink& part) {
    std::lock_guard lock(mutex_);
    part.Flush(0).IgnoreError();
  }

 private:
  std::mutex mutex_;
  std::unique_ptr<EventSink> sink_;
};

class Agent {
 public:
  Agent(const AgentOptions& options, std::string agent_id) : options_(options) {
    identity_.set_id(std::move(agent_id));
    identity_.set_name(options.name.empty() ? HostName() : options.name);
    identity_.set_site(options.site);
    identity_.set_version(FlowgateVersion());
    identity_.set_boot_id(MakeUuid());
    identity_.set_hostname(HostName());
  }

  Status Run() {
    for (const std::string& text : options_.local_networks) {
      Result<IpNetwork> network = ParseIpNetwork(text);
      if (!network.ok())
        return Status::InvalidArgument("--local-net: " + network.status().message());
      local_networks_.Add(*network);
    }
    if (options_.json_out.empty() && options_.gateways.empty()) {
      return Status::InvalidArgument(
          "nothing to send to: give --json-out PATH|- or --gateway tcp://HOST:PORT");
    }
    if (options_.capture_files.empty() && options_.interfaces.empty()) {
      return Status::InvalidArgument("no capture given: use -r FILE or -i IFACE");
    }
    if (options_.capture_files.size() + options_.interfaces.size() > 256) {
      return Status::InvalidArgument("at most 256 captures");
    }
    FLOWGATE_RETURN_IF_ERROR(OpenCaptures());
    const uint32_t worker_count = std::max<uint32_t>(1, options_.workers);
    std::vector<std::unique_ptr<classify::NdpiModule>> modules;
    for (uint32_t i = 0; i < worker_count; ++i) {
      Result<std::unique_ptr<classify::NdpiModule>> ndpi =
          classify::NdpiModule::Create(options_.classifier);
      if (!ndpi.ok()) return ndpi.status();
      modules.push_back(std::move(ndpi).value());
    }
    FLOWGATE_RETURN_IF_ERROR(OpenSinks());

    v1::Event hello;
    hello.mutable_agent_hello()->set_agent_version(FlowgateVersion());
    hello.mutable_agent_hello()->set_build_version(std::string("flowgate ") + FlowgateVersion());
    hello.mutable_agent_hello()->set_json_version(kNetifydJsonVersion);
    sink_->Emit(hello);

    WorkerOptions worker_options;
    worker_options.table.agent_id = identity_.id();
    for (const auto& c : captures_)
      worker_options.table.interfaces.push_back({c->name, c->internal});
    worker_options.table.idle_timeout_ms = options_.idle_timeout_ms;
    worker_options.table.tcp_idle_timeout_ms = options_.tcp_idle_timeout_ms;
    // The limit is shared out: every (worker, capture) table holds its part.
    const uint64_t tables = uint64_t{worker_count} * captures_.size();
    worker_options.table.max_flows =
        std::max<uint64_t>(1, (options_.max_flows + tables - 1) / tables);
    worker_options.update_interval_ms = options_.update_interval_ms;
    worker_options.queue_capacity = static_cast<size_t>(options_.queue_packets);
    worker_options.live = !options_.interfaces.empty();
    for (auto& module : modules) {
      workers_.push_back(
          std::make_unique<Worker>(worker_options, local_networks_, std::move(module), *sink_));
    }

    if (!options_.metrics_listen.empty()) {
      Result<std::unique_ptr<MetricsServer>> metrics =
          MetricsServer::Start(options_.metrics_listen, [this] { return RenderMetrics(); });
      if (!metrics.ok()) return metrics.status();
      metrics_ = std::move(metrics).value();
      Log(LogLevel::kInfo, "agent", "metrics at http://" + metrics_->bound_address() + "/metrics");
    }

    std::vector<std::thread> worker_threads, capture_threads;
    for (size_t i = 0; i < workers_.size(); ++i) {
      worker_threads.emplace_back([&w = *workers_[i], i] {
        NameThisThread("worker-" + std::to_string(i));
        w.Run();
      });
    }
    for (size_t i = 0; i < captures_.size(); ++i) {
      capture_threads.emplace_back([this, i] {
        NameThisThread("capture-" + std::to_string(i));
        Status status = CaptureLoop(*captures_[i], static_cast<uint8_t>(i));
        {
          std::lock_guard lock(captures_[i]->mutex);
          captures_[i]->running = nullptr;  // done: nothing to interrupt or report on
        }
        if (!status.ok()) {
          Log(LogLevel::kError, "agent", status.message());
          std::lock_guard lock(error_mutex_);
          if (first_error_.ok()) first_error_ = status;
        }
        captures_running_.fetch_sub(1);
      });
    }
    Supervise();
    for (auto& thread : capture_threads) thread.join();
    for (auto& worker : workers_) worker->queue().Close();
    for (auto& thread : worker_threads) thread.join();

    EmitStatus(/*final=*/true);
    const v1::FlowTableStats flows = TableStats();
    uint64_t packets = 0;
    for (const auto& c : captures_) {
      std::lock_guard lock(c->mutex);
      packets += c->packets;
    }
    Log(LogLevel::kInfo, "agent",
        "read " + std::to_string(packets) + " packets from " + CaptureNames() + ", " +
            std::to_string(flows.created()) + " flows, " + std::to_string(discarded_.load()) +
            " packets not decoded");
    Status delivered = sink_->Flush(options_.delivery_timeout_ms);
    if (gateway_client_ != nullptr) {
      const GatewayClientStats t = gateway_client_->stats();
      Log(delivered.ok() && t.batches_rejected == 0 ? LogLevel::kInfo : LogLevel::kWarning, "agent",
          "events for the gateway: " + std::to_string(t.events_acked) + " acknowledged, " +
              std::to_string(t.events_dropped) + " dropped from a full spool, " +
              std::to_string(t.queue_dropped) + " dropped from a full send queue, " +
              std::to_string(t.events_sent) + " sent at least once, " +
              std::to_string(t.batches_rejected) + " batches refused by the gateway" +
              (options_.gateways.size() > 1
                   ? ", " + std::to_string(t.failovers) + " failovers, last to " + t.gateway
                   : std::string()));
      // Capture files are read to be delivered whole, often by a script: a run that lost
      // part of them must not end like one that did not. Reading files, the agent waits for
      // room rather than dropping, so what it can lose is what the gateway refused. (A live
      // agent reports its losses in agent_status and its metrics as they happen, and being
      // stopped is no failure.)
      if (delivered.ok() && t.batches_rejected != 0 && options_.interfaces.empty()) {
        delivered = Status::DataLoss(
            std::to_string(t.events_rejected) + " events in " + std::to_string(t.batches_rejected) +
            " batches were refused by the gateway and are lost (last: " + t.last_rejection + ")");
      }
    }
    std::lock_guard lock(error_mutex_);
    return first_error_.ok() ? delivered : first_error_;
  }

 private:
  Status OpenCaptures() {
    for (const std::string& path : options_.capture_files) {
      auto c = std::make_unique<Capture>();
      c->path = path;
      Result<std::unique_ptr<capture::PacketSource>> source =
          capture::OpenCaptureFile(path, options_.capture);
      if (!source.ok()) return source.status();
      c->source = std::move(source).value();
      c->name = ValidUtf8(c->source->name());  // a file name may be any bytes
      c->counters.emplace(c->source->link_type());
      captures_.push_back(std::move(c));
    }
    for (const CaptureInterface& interface : options_.interfaces) {
      auto c = std::make_unique<Capture>();
      c->path = c->name = interface.name;
      c->live = true;
      c->internal = interface.internal;
      Result<std::unique_ptr<capture::PacketSource>> source =
          capture::OpenLiveCapture(interface.name, options_.capture);
      if (!source.ok()) return source.status();
      c->source = std::move(source).value();
      c->counters.emplace(c->source->link_type());
      c->state = "up";
      // The interface's own networks are local, as netifyd takes them.
      for (const std::string& text : capture::InterfaceNetworks(interface.name)) {
        Result<IpNetwork> network = ParseIpNetwork(text);
        if (network.ok()) local_networks_.Add(*network);
      }
      Log(LogLevel::kInfo, "agent", "capturing on " + interface.name);
      captures_.push_back(std::move(c));
    }
    captures_running_ = static_cast<int>(captures_.size());
    return Status::Ok();
  }

  Status OpenSinks() {
    std::vector<std::unique_ptr<EventSink>> sinks;
    if (!options_.json_out.empty()) {
      auto json = JsonStreamSink::Open(options_.json_out);
      if (!json.ok()) return json.status();
      json_sink_ = json->get();
      sinks.push_back(std::move(json).value());
    }
    if (!options_.gateways.empty()) {
      GatewayClientOptions client_options;
      client_options.endpoint = options_.gateways.front();
      client_options.fallback_endpoints.assign(options_.gateways.begin() + 1,
                                               options_.gateways.end());
      client_options.failover_after_ms = static_cast<uint32_t>(
          std::min<uint64_t>(options_.failover_after_ms, std::numeric_limits<uint32_t>::max()));
      client_options.identity = identity_;
      // A file loses nothing by waiting; live capture must not stall behind the gateway.
      client_options.block_when_full = options_.interfaces.empty();
      if (!options_.state_dir.empty()) client_options.spool_dir = options_.state_dir + "/spool";
      client_options.spool_max_bytes = options_.spool_max_bytes;
      client_options.compress = options_.compress;
      if (!options_.plaintext) {
        Result<CurveKeyPair> pair = ReadCurveKeyPair(options_.key_file);
        if (!pair.ok()) return pair.status();
        Result<std::string> server = ReadCurvePublicKey(options_.gateway_key_file);
        if (!server.ok()) return server.status();
        client_options.curve_public_key = pair->public_key;
        client_options.curve_secret_key = pair->secret_key;
        client_options.curve_server_key = *server;
      }
      auto client = GatewayClient::Create(std::move(client_options));
      if (!client.ok()) return client.status();
      gateway_client_ = client->get();
      sinks.push_back(std::move(client).value());
    }
    sink_ = std::make_unique<LockedSink>(std::make_unique<FanOutSink>(std::move(sinks)));
    return Status::Ok();
  }

  // Copies what the source counts for the status reporter and the progress log: a live
  // handle's kernel drops, a file's read position. Called by the capture thread only,
  // between reads (only that thread may touch the pcap handle).
  static void SampleSourceCounters(Capture& c) {
    if (c.source == nullptr) return;
    const capture::CaptureCounters counters = c.source->counters();
    std::lock_guard lock(c.mutex);
    if (c.live) {
      c.kernel_dropped = counters.kernel_dropped;
    } else {
      c.file_offset = counters.file_offset;
      c.file_bytes = counters.file_bytes;
    }
  }

  // The capture thread: read, decode, count, hand each packet to its flow's worker.
  Status CaptureLoop(Capture& c, uint8_t index) {
    // Samples the source's counters at least this often while packets flow, and at every
    // idle poll.
    constexpr uint64_t kDropSampleMs = 500;
    constexpr uint32_t kPacketsPerClockCheck = 1024;
    CaptureScratch scratch;
    capture::RawPacket raw;
    uint64_t first_packet_us = 0, replay_start_ms = 0;
    uint64_t backoff_ms = kMinReopenBackoffMs;
    uint64_t next_drop_sample_ms = 0;
    uint32_t packets_since_clock_check = 0;
    {
      std::lock_guard lock(c.mutex);
      c.running = c.source.get();
    }
    if (stop_.load()) c.source->Interrupt();
    while (true) {
      // Paced replay already reads the clock for every packet.
      const bool paced = !c.live && options_.replay_speed > 0;
      if (++packets_since_clock_check >= kPacketsPerClockCheck || next_drop_sample_ms == 0 ||
          paced) {
        packets_since_clock_check = 0;
        if (SteadyMs() >= next_drop_sample_ms) {
          SampleSourceCounters(c);
          next_drop_sample_ms = SteadyMs() + kDropSampleMs;
        }
      }
      Result<bool> more = c.source->Next(&raw);
      if (!more.ok()) {
        if (!c.live) return more.status();
        if (!Reopen(c, more.status(), &backoff_ms)) return Status::Ok();
        continue;
      }
      if (!*more) {
        if (!c.live) return Status::Ok();  // end of file
        SampleSourceCounters(c);
        if (!stop_.load()) continue;  // nothing now
        // Stopping: take what the kernel already holds, then end.
        c.source->SetNonBlocking();
        while (true) {
          Result<bool> rest = c.source->Next(&raw);
          if (!rest.ok() || !*rest) break;
          HandleRaw(c, index, raw, &scratch);
        }
        SampleSourceCounters(c);  // for the final status
        return Status::Ok();
      }
      if (!c.live && stop_.load()) return Status::Ok();
      if (!c.live && options_.replay_speed > 0) {
        // Packet time, scaled: wait until this packet is due.
        if (first_packet_us == 0) {
          first_packet_us = std::max<uint64_t>(raw.timestamp_us, 1);
          replay_start_ms = SteadyMs();
        }
        const double due_ms =
            static_cast<double>(raw.timestamp_us - std::min(raw.timestamp_us, first_packet_us)) /
            1000.0 / options_.replay_speed;
        const auto due = static_cast<uint64_t>(due_ms) + replay_start_ms;
        while (!stop_.load() && SteadyMs() < due) {
          std::this_thread::sleep_for(std::chrono::milliseconds(
              std::min<uint64_t>(due - SteadyMs(), 50)));  // pacing, not synchronisation
        }
      }
      HandleRaw(c, index, raw, &scratch);
    }
  }

  // What a capture thread reuses from packet to packet.
  struct CaptureScratch {
    capture::FragmentTracker fragments;
    capture::DecodedPacket packet;
    QueuedPacket staged;  // filled outside the worker queue's lock, then swapped in
  };

  void HandleRaw(Capture& c, uint8_t index, const capture::RawPacket& raw,
                 CaptureScratch* scratch) {
    const capture::DecodedPacket& packet = scratch->packet;
    const capture::DecodeError error =
        capture::DecodePacket(c.source->link_type(), raw.data, raw.captured_length,
                              &scratch->fragments, &scratch->packet);
    {
      std::lock_guard lock(c.mutex);
      ++c.packets;
      if (error != capture::DecodeError::kNone) {
        c.counters->Discard(raw.wire_length);
        discarded_.fetch_add(1);
        return;
      }
      c.counters->Count(packet, raw.wire_length);
    }
    // Keyed as interface 0: a worker keeps one flow table per interface, so the interface
    // tells no flows of one table apart (and a flow's worker need not depend on it).
    const PacketFlow flow = PacketFlow::Of(packet, 0);
    Worker& worker = *workers_[flow.hash % workers_.size()];
    scratch->staged.Assign(packet, flow, raw.timestamp_us, raw.wire_length, index);
    if (!worker.queue().Push(&scratch->staged, /*block=*/!c.live)) {
      std::lock_guard lock(c.mutex);
      ++c.queue_dropped;
      ++c.queue_dropped_total;
    }
  }

  // An interface went down: report it, then try again with growing pauses until it is back
  // or the agent stops. Returns false when stopping.
  bool Reopen(Capture& c, const Status& why, uint64_t* backoff_ms) {
    {
      std::lock_guard lock(c.mutex);
      c.state = "down";
      c.last_error = why.message();
      c.running = nullptr;
    }
    Log(LogLevel::kWarning, "agent", why.message() + "; reopening");
    c.source.reset();
    while (!stop_.load()) {
      const uint64_t until = SteadyMs() + *backoff_ms;
      while (!stop_.load() && SteadyMs() < until) {
        std::unique_lock lock(stop_mutex_);
        stop_cv_.wait_for(lock, std::chrono::milliseconds(until - std::min(until, SteadyMs())));
      }
      if (stop_.load()) break;
      *backoff_ms = std::min(*backoff_ms * 2, kMaxReopenBackoffMs);
      Result<std::unique_ptr<capture::PacketSource>> source =
          capture::OpenLiveCapture(c.path, options_.capture);
      if (!source.ok()) {
        std::lock_guard lock(c.mutex);
        c.last_error = source.status().message();
        continue;
      }
      std::lock_guard lock(c.mutex);
      c.source = std::move(source).value();
      c.running = c.source.get();
      c.state = "up";
      ++c.reopens;
      c.kernel_dropped_closed += c.kernel_dropped;
      c.kernel_dropped = c.kernel_dropped_reported = 0;  // a new handle counts from zero
      *backoff_ms = kMinReopenBackoffMs;
      Log(LogLevel::kInfo, "agent", "capturing on " + c.path + " again");
      return true;
    }
    return false;
  }

  // The calling thread's loop while captures run: agent_status each interval, and the
  // signals that stop the agent.
  void Supervise() {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    const bool live = !options_.interfaces.empty();
    uint64_t next_status_ms = SteadyMs() + options_.update_interval_ms;
    uint64_t next_progress_ms = SteadyMs() + kProgressIntervalMs;
    while (captures_running_.load() > 0) {
      const timespec tick{0, 100'000'000};
      const int signal = sigtimedwait(&signals, nullptr, &tick);
      if ((signal == SIGINT || signal == SIGTERM) && !stop_.load()) {
        Log(LogLevel::kInfo, "agent", "stopping (signal " + std::to_string(signal) + ")");
        Stop();
      }
      if (live && SteadyMs() >= next_status_ms) {
        EmitStatus(/*final=*/false);
        FlushJson();
        next_status_ms = SteadyMs() + options_.update_interval_ms;
      }
      if (!live && SteadyMs() >= next_progress_ms) {
        LogFileProgress();
        next_progress_ms = SteadyMs() + kProgressIntervalMs;
      }
    }
  }

  // Reading large capture files takes a while: say how far each one got.
  void LogFileProgress() const {
    const uint64_t flows = TableStats().created();
    for (const auto& c : captures_) {
      std::lock_guard lock(c->mutex);
      if (c->live || c->running == nullptr) continue;
      std::string where = std::to_string(c->packets) + " packets";
      if (c->file_bytes > 0) {
        const uint64_t at = std::min(c->file_offset, c->file_bytes);
        where = std::to_string(at * 100 / c->file_bytes) + "% of " +
                std::to_string((c->file_bytes + 1023) >> 10) + " KiB, " + where;
      }
      Log(LogLevel::kInfo, "agent",
          "reading " + c->name + ": " + where + ", " + std::to_string(flows) + " flows so far");
    }
  }

  // A live JSON stream is written out every interval, so that a reader following the file
  // sees it as it happens rather than in 64 KiB chunks.
  void FlushJson() {
    if (json_sink_ == nullptr) return;
    sink_->FlushPart(*json_sink_);
  }

  void Stop() {
    {
      std::lock_guard lock(stop_mutex_);
      stop_.store(true);
    }
    stop_cv_.notify_all();
    for (auto& c : captures_) {
      std::lock_guard lock(c->mutex);
      if (c->running != nullptr) c->running->Interrupt();
    }
  }

  v1::FlowTableStats TableStats() const {
    v1::FlowTableStats total;
    for (const auto& worker : workers_) {
      const v1::FlowTableStats s = worker->Stats();
      total.set_active(total.active() + s.active());
      total.set_created(total.created() + s.created());
      total.set_purged(total.purged() + s.purged());
      total.set_evicted(total.evicted() + s.evicted());
      total.set_detected(total.detected() + s.detected());
      total.set_guessed(total.guessed() + s.guessed());
      total.set_ndpi_state_bytes(total.ndpi_state_bytes() + s.ndpi_state_bytes());
    }
    return total;
  }

  // Scrapes run on the metrics server's thread: everything read here is either fixed once
  // the agent runs (the vectors) or guarded (each capture's mutex, the workers' and the
  // gateway client's stats).
  std::string RenderMetrics() const {
    PrometheusText out;
    AppendProcessMetrics(
        "flowgate_agent",
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count(), out);
    out.Family("flowgate_agent_identity", MetricType::kGauge,
               "The agent's id, name, site and boot id (always 1)");
    out.Sample(1, {{"agent_id", identity_.id()},
                   {"name", identity_.name()},
                   {"site", identity_.site()},
                   {"boot_id", identity_.boot_id()}});
    AppendCaptureMetrics(out);

    const v1::FlowTableStats flows = TableStats();
    out.Gauge("flowgate_agent_flows_active", "Flows in the flow tables now", flows.active());
    out.Counter("flowgate_agent_flows_created_total", "Flows seen", flows.created());
    out.Counter("flowgate_agent_flows_purged_total", "Flows ended (closed, expired, evicted)",
                flows.purged());
    out.Counter("flowgate_agent_flows_evicted_total",
                "Flows ended early because the table was full (--max-flows)", flows.evicted());
    out.Counter("flowgate_agent_flows_detected_total", "Flows nDPI classified", flows.detected());
    out.Counter("flowgate_agent_flows_guessed_total",
                "Flows nDPI gave up on with a guess (packet limit reached)", flows.guessed());
    out.Gauge("flowgate_agent_ndpi_state_bytes", "Memory held by nDPI per-flow state now",
              flows.ndpi_state_bytes());
    out.Family("flowgate_agent_worker_queue_packets", MetricType::kGauge,
               "Packets waiting in a worker's queue now");
    for (size_t i = 0; i < workers_.size(); ++i) {
      out.Sample(workers_[i]->queue().depth(), {{"worker", std::to_string(i)}});
    }
    out.Gauge("flowgate_agent_worker_queue_capacity_packets",
              "Packets a worker's queue holds at most",
              workers_.empty() ? 0 : workers_.front()->queue().capacity());

    if (gateway_client_ != nullptr) {
      const GatewayClientStats t = gateway_client_->stats();
      out.Counter("flowgate_agent_batches_sent_total", "Batches sent to the gateway (resends too)",
                  t.batches_sent);
      out.Counter("flowgate_agent_batches_acked_total", "Batches the gateway made durable",
                  t.batches_acked);
      out.Counter("flowgate_agent_batches_resent_total", "Batches sent again (timeout, reconnect)",
                  t.batches_resent);
      out.Counter("flowgate_agent_batches_rejected_total", "Batches the gateway refused",
                  t.batches_rejected);
      out.Counter("flowgate_agent_events_sent_total", "Events put into batches", t.events_sent);
      out.Counter("flowgate_agent_events_acked_total", "Events the gateway made durable",
                  t.events_acked);
      out.Family("flowgate_agent_events_dropped_total", MetricType::kCounter,
                 "Events lost before the gateway had them, by reason");
      out.Sample(t.events_dropped, {{"reason", "spool_full"}});
      out.Sample(t.queue_dropped, {{"reason", "send_queue_full"}});
      out.Gauge("flowgate_agent_unacked_batches", "Batches sent and not yet acknowledged",
                t.unacked_batches);
      out.Gauge("flowgate_agent_spool_bytes", "Bytes of batches held until acknowledged",
                t.spool_bytes);
      out.Gauge("flowgate_agent_spool_batches", "Batches held until acknowledged", t.spool_batches);
      out.Gauge("flowgate_agent_spool_max_bytes", "Spool size at which the oldest batches go",
                static_cast<double>(options_.spool_max_bytes));
      out.Counter("flowgate_agent_spool_errors_total",
                  "Spool files that could not be written, read or removed", t.spool_errors);
      out.Counter("flowgate_agent_gateway_failovers_total",
                  "Moves to the next --gateway after the current one acknowledged nothing",
                  t.failovers);
      out.Family("flowgate_agent_gateway", MetricType::kGauge,
                 "The gateway the agent talks to now (always 1)");
      out.Sample(1, {{"endpoint", t.gateway}});
    }
    return out.text();
  }

  void AppendCaptureMetrics(PrometheusText& out) const {
    struct Sampled {
      std::string name;
      v1::InterfaceStats totals;
      uint64_t kernel_dropped = 0, queue_dropped = 0, reopens = 0;
      bool live = false, up = false;
    };
    std::vector<Sampled> captures;
    for (const auto& c : captures_) {
      std::lock_guard lock(c->mutex);
      captures.push_back({c->name, c->counters->totals(),
                          c->kernel_dropped_closed + c->kernel_dropped, c->queue_dropped_total,
                          c->reopens, c->live, c->state == "up"});
    }
    const auto per_capture = [&](const char* name, MetricType type, const char* help,
                                 const std::function<double(const Sampled&)>& value) {
      out.Family(name, type, help);
      for (const Sampled& c : captures) out.Sample(value(c), {{"interface", c.name}});
    };
    per_capture("flowgate_agent_capture_packets_total", MetricType::kCounter,
                "Packets read from the capture",
                [](const Sampled& c) { return static_cast<double>(c.totals.raw()); });
    per_capture("flowgate_agent_capture_bytes_total", MetricType::kCounter,
                "Bytes on the wire of the packets read",
                [](const Sampled& c) { return static_cast<double>(c.totals.wire_bytes()); });
    per_capture("flowgate_agent_capture_discarded_packets_total", MetricType::kCounter,
                "Packets that did not decode (truncated, hostile, unknown link type)",
                [](const Sampled& c) { return static_cast<double>(c.totals.discarded()); });
    out.Family("flowgate_agent_capture_dropped_packets_total", MetricType::kCounter,
               "Packets lost before classification, by where: the kernel (pcap) or the "
               "agent's worker queues");
    for (const Sampled& c : captures) {
      out.Sample(c.kernel_dropped, {{"interface", c.name}, {"reason", "kernel"}});
      out.Sample(c.queue_dropped, {{"interface", c.name}, {"reason", "queue"}});
    }
    out.Family("flowgate_agent_interface_up", MetricType::kGauge,
               "1 while a live capture is open, 0 while it is reopened with backoff");
    for (const Sampled& c : captures) {
      if (c.live) out.Sample(c.up ? 1 : 0, {{"interface", c.name}});
    }
    out.Family("flowgate_agent_interface_reopens_total", MetricType::kCounter,
               "Times a live capture was reopened after it went down");
    for (const Sampled& c : captures) {
      if (c.live) out.Sample(static_cast<double>(c.reopens), {{"interface", c.name}});
    }
  }

  std::string CaptureNames() const {
    std::string names;
    for (const auto& c : captures_) names += (names.empty() ? "" : ", ") + c->name;
    return names;
  }

  void EmitStatus(bool final) {
    const ProcessUsage usage = CurrentProcessUsage();
    const v1::FlowTableStats flows = TableStats();
    v1::Event event;
    v1::AgentStatus* s = event.mutable_agent_status();
    const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
    FillProcessStatus(usage, previous_usage_, static_cast<int64_t>(now_s),
                      static_cast<uint32_t>(options_.update_interval_ms / 1000),
                      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                                std::chrono::steady_clock::now() - started_)
                                                .count()),
                      s);
    s->set_final(final);
    if (gateway_client_ != nullptr) {
      const GatewayClientStats t = gateway_client_->stats();
      v1::TransportStats* transport = s->mutable_transport();
      transport->set_batches_sent(t.batches_sent);
      transport->set_batches_acked(t.batches_acked);
      transport->set_batches_resent(t.batches_resent);
      transport->set_events_sent(t.events_sent);
      transport->set_events_dropped(t.events_dropped);
      transport->set_spool_bytes(t.spool_bytes);
      transport->set_spool_batches(t.spool_batches);
      transport->set_queue_dropped(t.queue_dropped);
    }
    s->set_flow_count(flows.active());
    s->set_flow_count_prev(previous_flow_count_);
    *s->mutable_flows() = flows;
    for (const auto& c : captures_) {
      std::lock_guard lock(c->mutex);
      v1::InterfaceStats stats = c->counters->TakeInterval(c->name);
      const uint64_t dropped = c->kernel_dropped;  // sampled by the capture thread
      stats.set_capture_dropped(dropped - std::min(dropped, c->kernel_dropped_reported));
      c->kernel_dropped_reported = dropped;
      stats.set_queue_dropped(c->queue_dropped);
      c->queue_dropped = 0;
      *s->add_stats() = std::move(stats);
      if (c->live) {
        v1::InterfaceInfo* info = s->add_interfaces();
        info->set_name(c->name);
        info->set_role(c->internal ? "LAN" : "WAN");
        info->set_mac(capture::InterfaceMac(c->name));
        for (const std::string& network : capture::InterfaceNetworks(c->name)) {
          info->add_addr(network.substr(0, network.find('/')));
        }
        info->set_state(c->state);
        info->set_reopens(c->reopens);
        info->set_last_error(ValidUtf8(c->last_error));  // libpcap's text, whatever it holds
      }
    }
    previous_usage_ = usage;
    previous_flow_count_ = flows.active();
    sink_->Emit(event);
  }

  static constexpr uint64_t kMinReopenBackoffMs = 250;
  static constexpr uint64_t kProgressIntervalMs = 10'000;
  static constexpr uint64_t kMaxReopenBackoffMs = 30'000;

  const AgentOptions& options_;
  v1::AgentIdentity identity_;
  LocalNetworks local_networks_;
  std::unique_ptr<LockedSink> sink_;
  EventSink* json_sink_ = nullptr;           // the --json-out part of sink_, if any
  GatewayClient* gateway_client_ = nullptr;  // the --gateway part of sink_, if any
  std::vector<std::unique_ptr<Capture>> captures_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<int> captures_running_{0};
  std::atomic<uint64_t> discarded_{0};
  std::atomic<bool> stop_{false};
  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
  std::mutex error_mutex_;
  Status first_error_;
  ProcessUsage previous_usage_;
  uint64_t previous_flow_count_ = 0;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  // Last member: stopped first, while everything a scrape reads still exists.
  std::unique_ptr<MetricsServer> metrics_;
};

}  // namespace

Status RunAgent(const AgentOptions& options) {
  Result<std::string> id = LoadOrCreateAgentId(options.state_dir);
  if (!id.ok()) return id.status();
  // SIGINT and SIGTERM are taken with sigtimedwait() by the supervising thread: blocked here,
  // before any thread starts, so that every thread inherits the mask.
  sigset_t signals, previous;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, &previous);
  Status status;
  {
    Agent agent(options, *id);
    status = agent.Run();
  }
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  return status;
}

}  // namespace flowgate::agent
