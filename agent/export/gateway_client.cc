#include "export/gateway_client.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <thread>
#include <zmq.hpp>

#include "flowgate/common/log.h"
#include "flowgate/v1/transport.pb.h"

namespace flowgate::agent {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t WallMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

struct PendingBatch {
  std::string bytes;  // the serialized Envelope
  uint32_t events = 0;
  Clock::time_point sent_at{};  // epoch = not sent yet (no connection)
  bool sent_once = false;
};

}  // namespace

class GatewayClient::Impl {
 public:
  explicit Impl(GatewayClientOptions options) : options_(std::move(options)) {}

  ~Impl() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    space_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  Status Start() {
    std::promise<Status> started;
    std::future<Status> result = started.get_future();
    thread_ = std::thread([this, &started] { Run(&started); });
    Status status = result.get();
    if (!status.ok()) thread_.join();
    return status;
  }

  void Emit(const v1::Event& event) {
    std::unique_lock lock(mutex_);
    if (queue_.size() >= options_.max_queued_events) {
      if (!options_.block_when_full) {
        ++stats_.queue_dropped;
        return;
      }
      space_.wait(lock, [&] { return stopping_ || queue_.size() < options_.max_queued_events; });
      if (stopping_) return;
    }
    if (queue_.empty()) oldest_queued_at_ = Clock::now();
    queue_.push_back(event);
    ++emitted_;
  }

  Status Flush(uint64_t timeout_ms) {
    std::unique_lock lock(mutex_);
    const uint64_t target = emitted_;
    flush_requested_ = true;
    bool done = drained_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                                  [&] { return acked_or_rejected_ >= target || !failure_.ok(); });
    flush_requested_ = false;
    if (!failure_.ok()) return failure_;
    if (done) return Status::Ok();
    return Status::DeadlineExceeded("gateway " + options_.endpoint + " did not acknowledge " +
                                    std::to_string(target - acked_or_rejected_) + " of " +
                                    std::to_string(target) + " events within " +
                                    (timeout_ms % 1000 == 0
                                         ? std::to_string(timeout_ms / 1000) + "s"
                                         : std::to_string(timeout_ms) + "ms") +
                                    " (is it running and reachable?)");
  }

  GatewayClientStats stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }

 private:
  void Run(std::promise<Status>* started) {
    zmq::context_t context(1);
    zmq::socket_t socket(context, zmq::socket_type::dealer);
    try {
      socket.set(zmq::sockopt::linger, 0);
      // Only queue messages on a completed connection, so that an absent gateway shows up
      // as "not sent" here rather than as messages piling up inside libzmq.
      socket.set(zmq::sockopt::immediate, 1);
      socket.set(zmq::sockopt::sndhwm, static_cast<int>(options_.max_unacked_batches) * 2);
      socket.set(zmq::sockopt::reconnect_ivl, 100);
      socket.set(zmq::sockopt::reconnect_ivl_max, 2000);
      socket.connect(options_.endpoint);
    } catch (const zmq::error_t& e) {
      started->set_value(
          Status::InvalidArgument("bad gateway address '" + options_.endpoint + "': " + e.what()));
      return;
    }
    started->set_value(Status::Ok());
    try {
      Loop(socket);
    } catch (const std::exception& e) {
      std::lock_guard lock(mutex_);
      failure_ = Status::IoError("gateway connection failed: " + std::string(e.what()));
      drained_.notify_all();
    }
  }

  void Loop(zmq::socket_t& socket) {
    while (true) {
      {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
      }
      zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(5));
      if ((item.revents & ZMQ_POLLIN) != 0) ReadAcks(socket);
      MakeBatches();
      SendDue(socket);
    }
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
      auto it = unacked_.find(ack.sequence());
      if (it == unacked_.end() || ack.boot_id() != options_.identity.boot_id()) continue;
      switch (ack.status()) {
        case v1::ACK_STATUS_STORED:
        case v1::ACK_STATUS_DUPLICATE:
          Settle(it, false);
          break;
        case v1::ACK_STATUS_UNAVAILABLE:
          it->second.sent_at = Clock::time_point{};  // resend on the next pass
          break;
        default:
          Log(LogLevel::kError, "agent.transport",
              "gateway rejected batch " + std::to_string(ack.sequence()) + ": " + ack.error());
          Settle(it, true);
      }
    }
  }

  void Settle(std::map<uint64_t, PendingBatch>::iterator it, bool rejected) {
    std::lock_guard lock(mutex_);
    (rejected ? stats_.batches_rejected : stats_.batches_acked) += 1;
    if (!rejected) stats_.events_acked += it->second.events;
    acked_or_rejected_ += it->second.events;
    unacked_.erase(it);
    stats_.unacked_batches = unacked_.size();
    drained_.notify_all();
  }

  // Moves queued events into envelopes while the window has room and a batch is due.
  void MakeBatches() {
    while (true) {
      std::unique_lock lock(mutex_);
      if (queue_.empty() || unacked_.size() >= options_.max_unacked_batches) return;
      const bool full = queue_.size() >= options_.batch_max_events;
      const bool waited =
          Clock::now() - oldest_queued_at_ >= std::chrono::milliseconds(options_.batch_linger_ms);
      if (!full && !waited && !flush_requested_) return;
      v1::Envelope envelope;
      envelope.set_version(v1::PROTOCOL_VERSION_1);
      *envelope.mutable_agent() = options_.identity;
      envelope.set_sequence(++last_sequence_);
      size_t bytes = 0;
      while (!queue_.empty() &&
             static_cast<uint32_t>(envelope.events_size()) < options_.batch_max_events &&
             (bytes < options_.batch_max_bytes || envelope.events_size() == 0)) {
        bytes += queue_.front().ByteSizeLong();
        *envelope.add_events() = std::move(queue_.front());
        queue_.pop_front();
      }
      oldest_queued_at_ = Clock::now();
      lock.unlock();
      space_.notify_all();
      envelope.set_sent_at(WallMs());
      PendingBatch batch;
      batch.events = static_cast<uint32_t>(envelope.events_size());
      envelope.SerializeToString(&batch.bytes);
      unacked_.emplace(envelope.sequence(), std::move(batch));
      std::lock_guard stats_lock(mutex_);
      stats_.unacked_batches = unacked_.size();
    }
  }

  void SendDue(zmq::socket_t& socket) {
    const auto now = Clock::now();
    for (auto& [sequence, batch] : unacked_) {
      const bool never_sent = batch.sent_at == Clock::time_point{};
      if (!never_sent && now - batch.sent_at < std::chrono::milliseconds(options_.ack_timeout_ms)) {
        continue;
      }
      zmq::message_t message(batch.bytes.data(), batch.bytes.size());
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
    }
  }

  const GatewayClientOptions options_;
  std::thread thread_;

  mutable std::mutex mutex_;
  std::condition_variable space_;    // queue_ has room, or stopping_
  std::condition_variable drained_;  // acked_or_rejected_ moved, or failure_
  std::deque<v1::Event> queue_;      // guarded by mutex_
  Clock::time_point oldest_queued_at_{};
  uint64_t emitted_ = 0;            // guarded by mutex_
  uint64_t acked_or_rejected_ = 0;  // events settled; guarded by mutex_
  bool flush_requested_ = false;    // guarded by mutex_
  bool stopping_ = false;           // guarded by mutex_
  Status failure_;                  // guarded by mutex_
  GatewayClientStats stats_;        // guarded by mutex_

  // Delivery thread only.
  uint64_t last_sequence_ = 0;
  std::map<uint64_t, PendingBatch> unacked_;
};

Result<std::unique_ptr<GatewayClient>> GatewayClient::Create(GatewayClientOptions options) {
  if (options.endpoint.empty()) return Status::InvalidArgument("gateway address is empty");
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

}  // namespace flowgate::agent
