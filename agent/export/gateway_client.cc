#include "export/gateway_client.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "flowgate/common/envelope_codec.h"
#include "flowgate/common/log.h"
#include "flowgate/common/thread_name.h"
#include "flowgate/v1/transport.pb.h"

namespace flowgate::agent {
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

constexpr char kSpoolSuffix[] = ".batch";
constexpr int kZstdLevel = 1;  // fast: the agent's CPU belongs to capture and DPI
constexpr size_t kMaxLatencies = 1u << 20;

uint64_t WallMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

struct PendingBatch {
  std::string boot_id;
  uint64_t sequence = 0;
  std::string bytes;  // the serialized Envelope, without its resend floor
  uint32_t events = 0;
  bool restored = false;        // left in the spool by an earlier run
  Clock::time_point sent_at{};  // epoch = due now (never sent, or to be resent)
  bool in_flight = false;
  bool sent_once = false;
};

using BatchKey = std::pair<std::string, uint64_t>;  // (boot id, sequence)

void ConfigureDealer(zmq::socket_t& socket, const GatewayClientOptions& options) {
  socket.set(zmq::sockopt::linger, 0);
  // Only queue messages on a completed connection, so that an absent gateway shows up
  // as "not sent" here rather than as messages piling up inside libzmq.
  socket.set(zmq::sockopt::immediate, 1);
  socket.set(zmq::sockopt::sndhwm, static_cast<int>(options.max_unacked_batches) * 2);
  socket.set(zmq::sockopt::reconnect_ivl, 100);
  socket.set(zmq::sockopt::reconnect_ivl_max, 2000);
  if (!options.curve_server_key.empty()) {
    socket.set(zmq::sockopt::curve_serverkey, options.curve_server_key);
    socket.set(zmq::sockopt::curve_publickey, options.curve_public_key);
    socket.set(zmq::sockopt::curve_secretkey, options.curve_secret_key);
  }
}

// The connection to one gateway: a DEALER, and the monitor that reports its connects.
// Throws zmq::error_t (a malformed endpoint).
struct GatewayConnection {
  GatewayConnection(zmq::context_t& context, const GatewayClientOptions& options,
                    const std::string& endpoint, const std::string& monitor_endpoint)
      : socket(context, zmq::socket_type::dealer), monitor(context, zmq::socket_type::pair) {
    ConfigureDealer(socket, options);
    // A reconnect means batches in flight on the old connection may be lost: the monitor
    // tells us so that they are resent at once rather than after the ack timeout.
    if (zmq_socket_monitor(socket.handle(), monitor_endpoint.c_str(), ZMQ_EVENT_CONNECTED) != 0) {
      throw zmq::error_t();
    }
    monitor.connect(monitor_endpoint);
    socket.connect(endpoint);
  }

  zmq::socket_t socket;
  zmq::socket_t monitor;
};

}  // namespace

class GatewayClient::Impl {
 public:
  explicit Impl(GatewayClientOptions options) : options_(std::move(options)) {
    endpoints_.push_back(options_.endpoint);
    endpoints_.insert(endpoints_.end(), options_.fallback_endpoints.begin(),
                      options_.fallback_endpoints.end());
    stats_.gateway = options_.endpoint;
  }

  ~Impl() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    space_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  Status Start() {
    FLOWGATE_RETURN_IF_ERROR(RestoreSpool());
    std::promise<Status> started;
    std::future<Status> result = started.get_future();
    thread_ = std::thread([this, &started] {
      NameThisThread("delivery");
      Run(&started);
    });
    Status status = result.get();
    if (!status.ok()) thread_.join();
    return status;
  }

  void Emit(const v1::Event& event) {
    // Serialized here, outside the lock, once: the queue holds wire bytes, not messages.
    std::string field;
    AppendEnvelopeEventField(event, &field);
    std::unique_lock lock(mutex_);
    if (queued_.size() >= options_.max_queued_events) {
      if (!options_.block_when_full) {
        ++stats_.queue_dropped;
        return;
      }
      space_.wait(lock, [&] { return stopping_ || queued_.size() < options_.max_queued_events; });
      if (stopping_) return;
    }
    if (queued_.empty()) oldest_queued_at_ = Clock::now();
    queued_.push_back(std::move(field));
    ++emitted_;
  }

  Status Flush(uint64_t timeout_ms) {
    std::unique_lock lock(mutex_);
    const uint64_t target = emitted_;
    flush_requested_ = true;
    bool done = drained_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
      return (acked_or_rejected_ >= target && restored_left_ == 0) || !failure_.ok();
    });
    flush_requested_ = false;
    if (!failure_.ok()) return failure_;
    if (done) return Status::Ok();
    std::string gateways = "gateway " + options_.endpoint;
    if (endpoints_.size() > 1) {
      gateways = "gateways " + options_.endpoint;
      for (const std::string& fallback : options_.fallback_endpoints) gateways += ", " + fallback;
    }
    return Status::DeadlineExceeded(
        gateways + " did not acknowledge " + std::to_string(target - acked_or_rejected_) + " of " +
        std::to_string(target) + " events within " +
        (timeout_ms % 1000 == 0 ? std::to_string(timeout_ms / 1000) + "s"
                                : std::to_string(timeout_ms) + "ms") +
        " (is it running and reachable?)");
  }

  GatewayClientStats stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }

  std::vector<uint32_t> TakeAckLatenciesUs() {
    std::lock_guard lock(mutex_);
    return std::exchange(ack_latencies_us_, {});
  }

 private:
  // ---- the spool: one file per batch, named by a counter so that names sort oldest first.

  std::string SpoolPath(uint64_t order) const {
    char name[32];
    std::snprintf(name, sizeof(name), "%020llu", static_cast<unsigned long long>(order));
    return options_.spool_dir + "/" + name + kSpoolSuffix;
  }

  // Loads the batches an earlier run left behind. A file that does not parse (it cannot be
  // half-written: files are renamed into place) is removed and counted.
  Status RestoreSpool() {
    if (options_.spool_dir.empty()) return Status::Ok();
    std::error_code error;
    fs::create_directories(options_.spool_dir, error);
    if (error) {
      return Status::IoError("cannot create spool dir '" + options_.spool_dir +
                             "': " + error.message());
    }
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(options_.spool_dir, error)) {
      if (entry.path().extension() == kSpoolSuffix) {
        files.push_back(entry.path());
      } else if (entry.path().extension() == ".tmp") {
        fs::remove(entry.path(), error);  // a write cut short by a crash
      }
    }
    if (error) {
      return Status::IoError("cannot read spool dir '" + options_.spool_dir +
                             "': " + error.message());
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& path : files) {
      std::ifstream in(path, std::ios::binary | std::ios::ate);
      std::string bytes(static_cast<size_t>(std::max<std::streamoff>(in.tellg(), 0)), '\0');
      in.seekg(0);
      in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      v1::Envelope envelope;
      const uint64_t order = std::strtoull(path.stem().c_str(), nullptr, 10);
      if (!in || !envelope.ParseFromString(bytes) || envelope.sequence() == 0 || order == 0) {
        Log(LogLevel::kWarning, "agent.transport",
            "removing unreadable spool file " + path.string());
        fs::remove(path, error);
        ++stats_.spool_errors;
        continue;
      }
      PendingBatch batch;
      batch.boot_id = envelope.agent().boot_id();
      batch.sequence = envelope.sequence();
      batch.events = static_cast<uint32_t>(envelope.events_size());
      if (envelope.compression() != v1::COMPRESSION_NONE) {
        v1::Envelope plain;
        if (DecodeEnvelope(bytes, bytes.size() * 1024, &plain).ok()) {
          batch.events = static_cast<uint32_t>(plain.events_size());
        }
      }
      batch.bytes = std::move(bytes);
      batch.restored = true;
      next_order_ = std::max(next_order_, order + 1);
      restored_left_ += 1;
      ++stats_.spool_restored;
      Hold(order, std::move(batch));
    }
    if (!files.empty()) {
      Log(LogLevel::kInfo, "agent.transport",
          "resending " + std::to_string(stats_.spool_restored) + " batches from spool " +
              options_.spool_dir);
    }
    return Status::Ok();
  }

  // Writes a new batch's file (write, then rename, so a crash never leaves half a batch).
  void WriteSpoolFile(uint64_t order, const std::string& bytes) {
    if (options_.spool_dir.empty()) return;
    const std::string path = SpoolPath(order);
    const std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      if (out) {
        out.close();
        std::error_code error;
        fs::rename(tmp, path, error);
        if (!error) return;
      }
    }
    std::lock_guard lock(mutex_);
    if (stats_.spool_errors++ == 0) {
      Log(LogLevel::kError, "agent.transport", "cannot write spool file " + path);
    }
  }

  void RemoveSpoolFile(uint64_t order) {
    if (options_.spool_dir.empty()) return;
    std::error_code error;
    if (!fs::remove(SpoolPath(order), error) || error) {
      std::lock_guard lock(mutex_);
      ++stats_.spool_errors;
    }
  }

  // Called with mutex_ held or before the thread starts.
  void Hold(uint64_t order, PendingBatch batch) {
    index_[{batch.boot_id, batch.sequence}] = order;
    held_sequences_[batch.boot_id].insert(batch.sequence);
    spool_bytes_ += batch.bytes.size();
    spool_.emplace(order, std::move(batch));
    stats_.spool_bytes = spool_bytes_;
    stats_.spool_batches = spool_.size();
  }

  // Forgets a batch (acknowledged, refused, or dropped for room). Delivery thread.
  void Release(std::map<uint64_t, PendingBatch>::iterator it, bool acked, bool rejected) {
    const PendingBatch& batch = it->second;
    RemoveSpoolFile(it->first);
    std::lock_guard lock(mutex_);
    if (acked) {
      ++stats_.batches_acked;
      stats_.events_acked += batch.events;
      if (batch.in_flight && ack_latencies_us_.size() < kMaxLatencies) {
        ack_latencies_us_.push_back(static_cast<uint32_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - batch.sent_at)
                .count()));
      }
    } else if (rejected) {
      ++stats_.batches_rejected;
      stats_.events_rejected += batch.events;
    } else {
      stats_.events_dropped += batch.events;
    }
    if (batch.restored) {
      restored_left_ -= 1;
    } else {
      acked_or_rejected_ += batch.events;
    }
    if (batch.in_flight) --in_flight_;
    index_.erase({batch.boot_id, batch.sequence});
    auto held = held_sequences_.find(batch.boot_id);
    held->second.erase(batch.sequence);
    if (held->second.empty()) held_sequences_.erase(held);
    spool_bytes_ -= batch.bytes.size();
    spool_.erase(it);
    stats_.spool_bytes = spool_bytes_;
    stats_.spool_batches = spool_.size();
    stats_.unacked_batches = in_flight_;
    drained_.notify_all();
  }

  // ---- the delivery thread.

  void Run(std::promise<Status>* started) {
    zmq::context_t context(1);
    std::optional<GatewayConnection> connection;
    // The fallbacks are checked by a throwaway socket each, so that a typo fails at start
    // rather than at the first failover.
    for (size_t i = 0; i < endpoints_.size(); ++i) {
      try {
        if (i == 0) {
          connection.emplace(context, options_, endpoints_[0], MonitorEndpoint());
        } else {
          zmq::socket_t probe(context, zmq::socket_type::dealer);
          ConfigureDealer(probe, options_);
          probe.connect(endpoints_[i]);
        }
      } catch (const zmq::error_t& e) {
        started->set_value(
            Status::InvalidArgument("bad gateway address '" + endpoints_[i] + "': " + e.what()));
        return;
      }
    }
    started->set_value(Status::Ok());
    waiting_since_ = Clock::now();
    try {
      Loop(context, connection);
    } catch (const std::exception& e) {
      std::lock_guard lock(mutex_);
      failure_ = Status::IoError("gateway connection failed: " + std::string(e.what()));
      drained_.notify_all();
    }
  }

  // Each connection's monitor gets an address of its own: an old one's may not be released
  // yet when the next connection binds it.
  std::string MonitorEndpoint() {
    return "inproc://gateway-client-monitor-" + std::to_string(reinterpret_cast<uintptr_t>(this)) +
           "-" + std::to_string(monitors_++);
  }

  void Loop(zmq::context_t& context, std::optional<GatewayConnection>& connection) {
    while (true) {
      {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
      }
      zmq::socket_t& socket = connection->socket;
      zmq::socket_t& monitor = connection->monitor;
      zmq::pollitem_t items[] = {{socket.handle(), 0, ZMQ_POLLIN, 0},
                                 {monitor.handle(), 0, ZMQ_POLLIN, 0}};
      zmq::poll(items, 2, std::chrono::milliseconds(5));
      if ((items[1].revents & ZMQ_POLLIN) != 0) OnMonitorEvent(monitor);
      if ((items[0].revents & ZMQ_POLLIN) != 0) ReadAcks(socket);
      MakeBatches();
      SendDue(socket);
      if (FailoverDue()) FailOver(context, connection);
    }
  }

  // True when there is another gateway to try and the current one has acknowledged
  // nothing for failover_after_ms while batches waited.
  bool FailoverDue() {
    if (endpoints_.size() < 2) return false;
    const auto now = Clock::now();
    if (spool_.empty()) {
      waiting_since_ = now;  // nothing outstanding, so nothing to wait for
      return false;
    }
    return now - waiting_since_ >= std::chrono::milliseconds(options_.failover_after_ms);
  }

  // Leaves the current gateway for the next in the list and makes every held batch due
  // again there, oldest first (SendDue walks the spool in order), with its original boot
  // id and sequence.
  void FailOver(zmq::context_t& context, std::optional<GatewayConnection>& connection) {
    ReadAcks(connection->socket);  // what arrived already need not be sent again
    if (!FailoverDue()) return;
    const std::string& from = endpoints_[current_];
    current_ = (current_ + 1) % endpoints_.size();
    const std::string& to = endpoints_[current_];
    const std::string message =
        "failing over from gateway " + from + " to " + to + ": no acknowledgement for " +
        std::to_string(options_.failover_after_ms) + "ms while " + std::to_string(spool_.size()) +
        " batches waited (" + std::to_string(in_flight_) + " sent); resending them all";
    connection.reset();
    connection.emplace(context, options_, to, MonitorEndpoint());
    connections_ = 0;
    waiting_since_ = Clock::now();
    {
      std::lock_guard lock(mutex_);
      for (auto& [order, batch] : spool_) ResendSoon(batch);
      ++stats_.failovers;
      stats_.gateway = to;
      stats_.unacked_batches = in_flight_;
    }
    // Logged once the stats say so, for whoever acts on the log line.
    Log(LogLevel::kWarning, "agent.transport", message);
  }

  void OnMonitorEvent(zmq::socket_t& monitor) {
    zmq::message_t frame;
    while (monitor.recv(frame, zmq::recv_flags::dontwait)) {
      if (frame.more()) continue;  // the event frame; the address frame ends the message
      if (connections_++ == 0) continue;
      Log(LogLevel::kInfo, "agent.transport",
          "reconnected to " + endpoints_[current_] + "; resending unacknowledged batches");
      std::lock_guard lock(mutex_);
      for (auto& [order, batch] : spool_) {
        if (batch.in_flight) ResendSoon(batch);
      }
    }
  }

  // Called with mutex_ held.
  void ResendSoon(PendingBatch& batch) {
    if (batch.in_flight) --in_flight_;
    batch.in_flight = false;
    batch.sent_at = Clock::time_point{};
  }

  void ReadAcks(zmq::socket_t& socket) {
    zmq::message_t message;
    while (socket.recv(message, zmq::recv_flags::dontwait)) {
      v1::Ack ack;
      if (!ack.ParseFromArray(message.data(), static_cast<int>(message.size()))) {
        Log(LogLevel::kWarning, "agent.transport",
            "gateway sent an acknowledgement that does not parse");
        continue;
      }
      // Any answer shows the gateway is there, but one whose store fails is as good as gone.
      if (ack.status() != v1::ACK_STATUS_UNAVAILABLE) waiting_since_ = Clock::now();
      auto key = index_.find({ack.boot_id(), ack.sequence()});
      if (key == index_.end()) continue;  // settled already (a duplicate ack)
      auto it = spool_.find(key->second);
      switch (ack.status()) {
        case v1::ACK_STATUS_STORED:
        case v1::ACK_STATUS_DUPLICATE:
          Release(it, true, false);
          break;
        case v1::ACK_STATUS_UNAVAILABLE: {
          std::lock_guard lock(mutex_);
          ResendSoon(it->second);
          break;
        }
        case v1::ACK_STATUS_OUT_OF_ORDER:
          OnOutOfOrder(it->second, ack.expected_sequence());
          break;
        default: {
          const std::string reason =
              ack.error().empty() ? v1::AckStatus_Name(ack.status()) : ack.error();
          Log(LogLevel::kError, "agent.transport",
              "gateway rejected batch " + std::to_string(ack.sequence()) + ": " + reason);
          {
            std::lock_guard lock(mutex_);
            stats_.last_rejection = reason;
          }
          Release(it, false, true);
        }
      }
    }
  }

  // `batch` arrived while the gateway still waited for `expected` of the same boot. If
  // `expected` was sent before `batch` and is not acknowledged, it was lost on the way (a
  // reconnect in between): resend it now, then `batch`. Otherwise `expected` is on its way
  // and `batch` is resent once the ack timeout passes.
  void OnOutOfOrder(PendingBatch& batch, uint64_t expected) {
    std::lock_guard lock(mutex_);
    ++stats_.batches_out_of_order;
    const Clock::time_point batch_sent = batch.sent_at;
    ResendSoon(batch);
    auto key = index_.find({batch.boot_id, expected});
    if (key == index_.end()) return;
    PendingBatch& missing = spool_.at(key->second);
    if (missing.in_flight && missing.sent_at <= batch_sent) ResendSoon(missing);
  }

  // Moves queued events into envelopes while a batch is due and the spool has room (or
  // makes room by dropping the oldest batches, counted, when the client may drop).
  void MakeBatches() {
    while (true) {
      std::unique_lock lock(mutex_);
      if (queued_.empty()) return;
      const bool full = queued_.size() >= options_.batch_max_events;
      const bool waited =
          Clock::now() - oldest_queued_at_ >= std::chrono::milliseconds(options_.batch_linger_ms);
      if (!full && !waited && !flush_requested_) return;
      if (options_.block_when_full && spool_bytes_ >= options_.spool_max_bytes) return;
      size_t events = 0, bytes = 0;
      while (events < queued_.size() && events < options_.batch_max_events &&
             (bytes < options_.batch_max_bytes || events == 0)) {
        bytes += queued_[events++].size();
      }
      std::vector<std::string> fields;  // moved out: the copying happens outside the lock
      fields.reserve(events);
      for (size_t i = 0; i < events; ++i) {
        fields.push_back(std::move(queued_.front()));
        queued_.pop_front();
      }
      oldest_queued_at_ = Clock::now();
      lock.unlock();
      space_.notify_all();
      const auto append_fields = [&fields, bytes](std::string* out) {
        out->reserve(out->size() + bytes);
        for (const std::string& field : fields) *out += field;
      };
      v1::Envelope header;
      header.set_version(v1::PROTOCOL_VERSION_1);
      *header.mutable_agent() = options_.identity;
      header.set_sequence(++last_sequence_);
      PendingBatch batch;
      batch.boot_id = options_.identity.boot_id();
      batch.sequence = header.sequence();
      batch.events = static_cast<uint32_t>(events);
      bool compressed = false;
      if (options_.compress) {  // only compression needs the fields joined on their own
        std::string joined;
        append_fields(&joined);
        compressed = CompressEventFields(kZstdLevel, joined, &header);
      }
      header.set_sent_at(WallMs());
      header.SerializeToString(&batch.bytes);
      if (!compressed) append_fields(&batch.bytes);  // straight after the header's bytes
      MakeRoom(batch.bytes.size());
      const uint64_t order = next_order_++;
      WriteSpoolFile(order, batch.bytes);
      lock.lock();
      Hold(order, std::move(batch));
    }
  }

  // Drops the oldest batches until `incoming` more bytes fit the spool limit. Their events
  // are counted as dropped; the resend floor then tells the gateway to skip them. A client
  // that blocks when full (capture files) never drops: MakeBatches stops once the spool
  // reaches its limit, so the spool exceeds it by at most the one batch just made.
  void MakeRoom(size_t incoming) {
    if (options_.block_when_full) return;
    while (!spool_.empty() && spool_bytes_ + incoming > options_.spool_max_bytes) {
      auto oldest = spool_.begin();
      {
        std::lock_guard lock(mutex_);
        if (stats_.events_dropped == 0) {
          Log(LogLevel::kWarning, "agent.transport",
              "spool is full (" + std::to_string(options_.spool_max_bytes) +
                  " bytes): dropping the oldest batches");
        }
      }
      Release(oldest, false, false);
    }
  }

  void SendDue(zmq::socket_t& socket) {
    const auto now = Clock::now();
    const auto timeout = std::chrono::milliseconds(options_.ack_timeout_ms);
    for (auto& [order, batch] : spool_) {
      if (batch.in_flight && now - batch.sent_at >= timeout) {
        std::lock_guard lock(mutex_);
        ResendSoon(batch);
      }
      if (batch.in_flight) continue;
      if (in_flight_ >= options_.max_unacked_batches) return;
      // The floor is appended as a second serialized Envelope: protobuf merges
      // concatenated messages (the last value of a field wins), so the spooled bytes need
      // not be re-encoded for each send.
      v1::Envelope floor;
      floor.set_resend_floor(*held_sequences_.at(batch.boot_id).begin());
      const size_t floor_size = floor.ByteSizeLong();
      zmq::message_t message(batch.bytes.size() + floor_size);  // one copy of the batch
      auto* out = static_cast<uint8_t*>(message.data());
      std::memcpy(out, batch.bytes.data(), batch.bytes.size());
      floor.SerializeWithCachedSizesToArray(out + batch.bytes.size());
      if (!socket.send(message, zmq::send_flags::dontwait)) return;  // no connection yet
      std::lock_guard lock(mutex_);
      if (batch.sent_once) {
        ++stats_.batches_resent;
      } else {
        ++stats_.batches_sent;
        stats_.events_sent += batch.events;
      }
      batch.sent_once = true;
      batch.sent_at = now;
      batch.in_flight = true;
      ++in_flight_;
      stats_.unacked_batches = in_flight_;
    }
  }

  const GatewayClientOptions options_;
  std::thread thread_;

  mutable std::mutex mutex_;
  std::condition_variable space_;    // the queue has room, or stopping_
  std::condition_variable drained_;  // acked_or_rejected_ moved, or failure_
  // Events waiting for a batch, each as an Envelope `events` field
  // (AppendEnvelopeEventField): a batch is its header followed by a run of them.
  std::deque<std::string> queued_;  // guarded by mutex_
  Clock::time_point oldest_queued_at_{};
  uint64_t emitted_ = 0;                    // guarded by mutex_
  uint64_t acked_or_rejected_ = 0;          // events settled (or dropped); guarded by mutex_
  uint64_t restored_left_ = 0;              // restored batches not settled yet; guarded by mutex_
  bool flush_requested_ = false;            // guarded by mutex_
  bool stopping_ = false;                   // guarded by mutex_
  Status failure_;                          // guarded by mutex_
  GatewayClientStats stats_;                // guarded by mutex_
  std::vector<uint32_t> ack_latencies_us_;  // guarded by mutex_

  // The spool: written by the delivery thread (and by Start before it runs); the mutex is
  // taken for changes only so that stats() and Flush() see consistent counters.
  uint64_t last_sequence_ = 0;
  uint64_t next_order_ = 1;
  uint64_t connections_ = 0;            // of the current connection
  std::vector<std::string> endpoints_;  // options_.endpoint, then the fallbacks
  size_t current_ = 0;                  // index in endpoints_ of the gateway talked to
  uint64_t monitors_ = 0;
  // Since when the current gateway has owed an answer: its last ack, the connection to it,
  // or the moment the spool was last empty.
  Clock::time_point waiting_since_{};
  uint64_t in_flight_ = 0;
  uint64_t spool_bytes_ = 0;
  std::map<uint64_t, PendingBatch> spool_;                    // by order: oldest first
  std::map<BatchKey, uint64_t> index_;                        // (boot, sequence) -> order
  std::map<std::string, std::set<uint64_t>> held_sequences_;  // boot -> sequences held
};

Result<std::unique_ptr<GatewayClient>> GatewayClient::Create(GatewayClientOptions options) {
  if (options.endpoint.empty()) return Status::InvalidArgument("gateway address is empty");
  for (const std::string& fallback : options.fallback_endpoints) {
    if (fallback.empty()) return Status::InvalidArgument("fallback gateway address is empty");
  }
  if (!options.fallback_endpoints.empty() && options.failover_after_ms == 0) {
    return Status::InvalidArgument("failover time is zero");
  }
  if (options.identity.id().empty() || options.identity.boot_id().empty()) {
    return Status::InvalidArgument("agent identity lacks an id or boot id");
  }
  auto impl = std::make_unique<Impl>(std::move(options));
  FLOWGATE_RETURN_IF_ERROR(impl->Start());
  return std::unique_ptr<GatewayClient>(new GatewayClient(std::move(impl)));
}

GatewayClient::GatewayClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GatewayClient::~GatewayClient() = default;
void GatewayClient::Emit(const v1::Event& event) { impl_->Emit(event); }
Status GatewayClient::Flush(uint64_t timeout_ms) { return impl_->Flush(timeout_ms); }
GatewayClientStats GatewayClient::stats() const { return impl_->stats(); }
std::vector<uint32_t> GatewayClient::TakeAckLatenciesUs() { return impl_->TakeAckLatenciesUs(); }

}  // namespace flowgate::agent
