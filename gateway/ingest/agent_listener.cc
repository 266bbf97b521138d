#include "ingest/agent_listener.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <zmq.hpp>

#include "flowgate/common/log.h"

namespace flowgate::gateway {
namespace {

uint64_t WallMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

class ZmqAgentListener final : public AgentListener {
 public:
  ZmqAgentListener(AgentListenerOptions options, storage::FlowStore& store,
                   StoredCallback on_stored)
      : options_(std::move(options)),
        store_(store),
        on_stored_(std::move(on_stored)),
        socket_(context_, zmq::socket_type::router) {}

  ~ZmqAgentListener() override { Stop(); }

  Status Bind() {
    try {
      socket_.set(zmq::sockopt::linger, 0);
      socket_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(options_.max_frame_bytes) + 1);
      socket_.bind(options_.endpoint);
      bound_ = socket_.get(zmq::sockopt::last_endpoint);
    } catch (const zmq::error_t& e) {
      return Status::InvalidArgument("cannot listen for agents on '" + options_.endpoint +
                                     "': " + e.what());
    }
    // The socket was made on this thread and is used only by the listener thread from here.
    thread_ = std::thread([this] { Run(); });
    return Status::Ok();
  }

  const std::string& bound_endpoint() const override { return bound_; }

  AgentListenerStats stats() const override {
    std::lock_guard lock(mutex_);
    return stats_;
  }

  void Stop() override {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Run() {
    while (!stopping_) {
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      try {
        zmq::poll(&item, 1, std::chrono::milliseconds(50));
        if ((item.revents & ZMQ_POLLIN) != 0) ReceiveOne();
      } catch (const zmq::error_t& e) {
        Log(LogLevel::kError, "gateway.ingest", std::string("ZeroMQ error: ") + e.what());
      }
    }
  }

  void Count(uint64_t AgentListenerStats::*counter, uint64_t n = 1) {
    std::lock_guard lock(mutex_);
    stats_.*counter += n;
  }

  void ReceiveOne() {
    zmq::message_t routing, payload;
    if (!socket_.recv(routing, zmq::recv_flags::dontwait)) return;
    // An agent sends exactly one frame after the routing id; anything else is malformed.
    if (!routing.more() || !socket_.recv(payload, zmq::recv_flags::dontwait)) return;
    bool extra = payload.more();
    while (payload.more()) {
      zmq::message_t discard;
      if (!socket_.recv(discard, zmq::recv_flags::dontwait)) break;
      payload.rebuild(0);
      if (!discard.more()) break;
    }
    Count(&AgentListenerStats::frames_received);

    v1::Ack ack;
    v1::Envelope envelope;
    if (extra) {
      Reject(&ack, v1::ACK_STATUS_MALFORMED, "more than one frame in a message",
             &AgentListenerStats::rejected_malformed);
    } else if (payload.size() > options_.max_frame_bytes) {
      Reject(&ack, v1::ACK_STATUS_TOO_LARGE,
             "batch of " + std::to_string(payload.size()) + " bytes is over the limit of " +
                 std::to_string(options_.max_frame_bytes),
             &AgentListenerStats::rejected_too_large);
    } else if (!envelope.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
      Reject(&ack, v1::ACK_STATUS_MALFORMED, "batch does not parse as a flowgate envelope",
             &AgentListenerStats::rejected_malformed);
    } else if (envelope.version() != v1::PROTOCOL_VERSION_1) {
      Reject(&ack, v1::ACK_STATUS_UNSUPPORTED_VERSION,
             "protocol version " + std::to_string(envelope.version()) +
                 " is not supported (this gateway speaks 1)",
             &AgentListenerStats::rejected_version);
    } else {
      Apply(envelope, &ack);
    }
    ack.set_boot_id(envelope.agent().boot_id());
    ack.set_sequence(envelope.sequence());
    std::string bytes = ack.SerializeAsString();
    socket_.send(routing, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    socket_.send(zmq::buffer(bytes), zmq::send_flags::dontwait);
  }

  void Reject(v1::Ack* ack, v1::AckStatus status, const std::string& why,
              uint64_t AgentListenerStats::*counter) {
    Count(counter);
    ack->set_status(status);
    ack->set_error(why);
    Log(LogLevel::kWarning, "gateway.ingest", "refused a batch: " + why);
  }

  void Apply(const v1::Envelope& envelope, v1::Ack* ack) {
    std::vector<v1::StoredEvent> stored;
    Result<storage::AppendResult> result = store_.Append(envelope, WallMs(), &stored);
    if (!result.ok()) {
      if (result.status().code() == StatusCode::kInvalidArgument) {
        Reject(ack, v1::ACK_STATUS_MALFORMED, result.status().message(),
               &AgentListenerStats::rejected_malformed);
      } else {
        Count(&AgentListenerStats::store_failures);
        ack->set_status(v1::ACK_STATUS_UNAVAILABLE);
        ack->set_error("store failed: " + result.status().message());
        Log(LogLevel::kError, "gateway.ingest", ack->error());
      }
      return;
    }
    if (result->outcome == storage::AppendOutcome::kDuplicate) {
      Count(&AgentListenerStats::batches_duplicate);
      ack->set_status(v1::ACK_STATUS_DUPLICATE);
      return;
    }
    if (result->missing_before > 0) {
      Log(LogLevel::kWarning, "gateway.ingest",
          "agent " + envelope.agent().name() + " (" + envelope.agent().id() + ") skipped " +
              std::to_string(result->missing_before) + " batches before sequence " +
              std::to_string(envelope.sequence()));
    }
    {
      std::lock_guard lock(mutex_);
      stats_.batches_stored += 1;
      stats_.events_stored += stored.size();
    }
    ack->set_status(v1::ACK_STATUS_STORED);
    if (on_stored_) on_stored_(stored);
  }

  const AgentListenerOptions options_;
  storage::FlowStore& store_;
  const StoredCallback on_stored_;
  zmq::context_t context_{1};
  zmq::socket_t socket_;
  std::string bound_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;
  AgentListenerStats stats_;  // guarded by mutex_
};

}  // namespace

Result<std::unique_ptr<AgentListener>> AgentListener::Create(AgentListenerOptions options,
                                                             storage::FlowStore& store,
                                                             StoredCallback on_stored) {
  auto listener =
      std::make_unique<ZmqAgentListener>(std::move(options), store, std::move(on_stored));
  FLOWGATE_RETURN_IF_ERROR(listener->Bind());
  return std::unique_ptr<AgentListener>(std::move(listener));
}

}  // namespace flowgate::gateway
