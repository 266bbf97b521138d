#include "ingest/agent_listener.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <iterator>
#include <mutex>
#include <thread>
#include <zmq.hpp>

#include "flowgate/common/curve_keys.h"
#include "flowgate/common/envelope_codec.h"
#include "flowgate/common/log.h"
#include "flowgate/common/thread_name.h"

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
    const bool curve = !options_.curve_secret_key.empty();
    if (curve) {
      if (!CurveAvailable()) return Status::Unavailable("this libzmq is built without CURVE");
      FLOWGATE_RETURN_IF_ERROR(ReloadAllowList());
      // The ZAP handler must be bound before the first handshake, i.e. before bind().
      try {
        zap_.set(zmq::sockopt::linger, 0);
        zap_.bind("inproc://zeromq.zap.01");
      } catch (const zmq::error_t& e) {
        return Status::Internal(std::string("cannot start the ZAP handler: ") + e.what());
      }
      zap_thread_ = std::thread([this] {
        NameThisThread("ingest-zap");
        RunZap();
      });
    }
    try {
      socket_.set(zmq::sockopt::linger, 0);
      // libzmq drops the connection of a peer sending more than this, unseen by the
      // counters: up to twice the limit a frame is received, so it is counted and refused
      // with an answer (ACK_STATUS_TOO_LARGE) instead.
      socket_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(options_.max_frame_bytes) * 2);
      if (curve) {
        socket_.set(zmq::sockopt::curve_server, 1);
        socket_.set(zmq::sockopt::curve_secretkey, options_.curve_secret_key);
        socket_.set(zmq::sockopt::zap_domain, "flowgate");
      }
      socket_.bind(options_.endpoint);
      bound_ = socket_.get(zmq::sockopt::last_endpoint);
    } catch (const zmq::error_t& e) {
      return Status::InvalidArgument("cannot listen for agents on '" + options_.endpoint +
                                     "': " + e.what());
    }
    try {
      // Unique per listener: several may share a process (tests, benchmarks).
      const std::string wake_endpoint =
          "inproc://flowgate-ingest-wake-" + std::to_string(reinterpret_cast<uintptr_t>(this));
      wake_receiver_.bind(wake_endpoint);
      wake_sender_.connect(wake_endpoint);
    } catch (const zmq::error_t& e) {
      return Status::Internal(std::string("cannot set up the ingest threads: ") + e.what());
    }
    // The sockets were made on this thread; from here each is used by one thread only.
    store_thread_ = std::thread([this] {
      NameThisThread("ingest-prepare");
      RunPrepare();
    });
    commit_thread_ = std::thread([this] {
      NameThisThread("ingest-commit");
      RunCommit();
    });
    thread_ = std::thread([this] {
      NameThisThread("ingest-socket");
      Run();
    });
    return Status::Ok();
  }

  const std::string& bound_endpoint() const override { return bound_; }

  AgentListenerStats stats() const override {
    std::lock_guard lock(mutex_);
    return stats_;
  }

  void Stop() override {
    {
      std::lock_guard lock(pipeline_mutex_);
      stopping_ = true;
    }
    to_store_ready_.notify_all();
    to_commit_ready_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (store_thread_.joinable()) store_thread_.join();
    if (commit_thread_.joinable()) commit_thread_.join();
    if (zap_thread_.joinable()) zap_thread_.join();
  }

  Status ReloadAllowList() override {
    if (options_.curve_secret_key.empty()) return Status::Ok();
    Result<std::map<std::string, std::string>> allowed =
        ReadCurveAllowList(options_.allow_list_file);
    if (!allowed.ok()) {
      Log(LogLevel::kError, "gateway.ingest",
          "keeping the previous allow-list: " + allowed.status().message());
      return allowed.status();
    }
    std::lock_guard lock(mutex_);
    allowed_ = std::move(allowed).value();
    stats_.allow_list_size = allowed_.size();
    Log(LogLevel::kInfo, "gateway.ingest",
        "allow-list " + options_.allow_list_file + ": " + std::to_string(allowed_.size()) +
            " agent keys");
    return Status::Ok();
  }

 private:
  // The ZAP handler (libzmq's authentication protocol, RFC 27): libzmq asks it about every
  // CURVE handshake on this context; it answers 200 for a key on the allow-list (with the
  // key's name as the connection's User-Id) and 400 otherwise. Exceptions stay here.
  void RunZap() {
    while (!stopping_) {
      try {
        zmq::pollitem_t item{zap_.handle(), 0, ZMQ_POLLIN, 0};
        zmq::poll(&item, 1, std::chrono::milliseconds(50));
        if ((item.revents & ZMQ_POLLIN) != 0) AnswerZap();
      } catch (const zmq::error_t& e) {
        Log(LogLevel::kError, "gateway.ingest", std::string("ZAP handler: ") + e.what());
      }
    }
  }

  void AnswerZap() {
    std::vector<zmq::message_t> request;
    do {
      request.emplace_back();
      if (!zap_.recv(request.back(), zmq::recv_flags::none)) return;
    } while (request.back().more());
    // version, request id, domain, address, routing id, mechanism, credentials...
    if (request.size() < 6) return;
    const std::string mechanism = request[5].to_string();
    const std::string address = request[3].to_string();
    std::string key, name;
    if (mechanism == "CURVE" && request.size() >= 7 && request[6].size() == 32) {
      char z85[41];
      zmq_z85_encode(z85, static_cast<const uint8_t*>(request[6].data()), 32);
      key = z85;
    }
    uint64_t refused = 0;
    {
      std::lock_guard lock(mutex_);
      if (auto it = allowed_.find(key); !key.empty() && it != allowed_.end()) {
        name = it->second;
      } else {
        stats_.rejected_unauthorized += 1;
        refused = ++stats_.unauthorized_by_key[key.empty() ? mechanism : key];
      }
    }
    if (refused != 0 && (refused & (refused - 1)) == 0) {  // 1st, 2nd, 4th... per key
      Log(LogLevel::kWarning, "gateway.ingest",
          "refused an agent at " + address + ": key " + (key.empty() ? "(none)" : key) +
              " is not on the allow-list (" + std::to_string(refused) + " so far)");
    }
    const bool ok = refused == 0;
    zap_.send(zmq::str_buffer("1.0"), zmq::send_flags::sndmore);
    zap_.send(request[1], zmq::send_flags::sndmore);
    zap_.send(zmq::buffer(std::string(ok ? "200" : "400")), zmq::send_flags::sndmore);
    zap_.send(zmq::buffer(std::string(ok ? "OK" : "key not allowed")), zmq::send_flags::sndmore);
    zap_.send(zmq::buffer(name), zmq::send_flags::sndmore);
    zap_.send(zmq::str_buffer(""), zmq::send_flags::none);
  }

  // The socket thread: receives and decodes frames while the store and commit threads
  // prepare and write the previous ones, and sends the acknowledgements the commit thread
  // hands back.
  void Run() {
    while (!stopping_) {
      bool room;
      {
        std::lock_guard lock(pipeline_mutex_);
        room = frames_at_store_ < MaxFramesAtStore();
      }
      // Beyond the bound frames wait in ZeroMQ's queues (and then TCP's), which holds the
      // agents back until the store catches up.
      zmq::pollitem_t items[2] = {
          {wake_receiver_.handle(), 0, ZMQ_POLLIN, 0},
          {socket_.handle(), 0, static_cast<short>(room ? ZMQ_POLLIN : 0), 0}};
      try {
        zmq::poll(items, 2, std::chrono::milliseconds(50));
        if ((items[0].revents & ZMQ_POLLIN) != 0) SendAcknowledgements();
        if ((items[1].revents & ZMQ_POLLIN) != 0) ReceiveGroup();
      } catch (const zmq::error_t& e) {
        Log(LogLevel::kError, "gateway.ingest", std::string("ZeroMQ error: ") + e.what());
      }
    }
  }

  // The store thread: prepares what the socket thread decoded, the groups waiting as one
  // group (one write) of at most max_group_batches frames (unless write_all_waiting), and
  // hands it to the commit thread, which writes it while this thread prepares the next. It
  // is the store's only caller besides the commit thread.
  void RunPrepare() {
    while (true) {
      std::vector<Group> groups;
      {
        std::unique_lock lock(pipeline_mutex_);
        to_store_ready_.wait(lock, [this] { return stopping_ || !to_store_.empty(); });
        if (stopping_) return;  // unacknowledged batches are resent by their agents
        // Merging every waiting group would make one write of all the frames the socket
        // thread may hold, which then stops receiving until that write is done: the three
        // threads would take turns instead of overlapping.
        const size_t max_frames =
            options_.write_all_waiting ? MaxFramesAtStore() : options_.max_group_batches;
        size_t frames = 0, taken = 0;
        while (taken < to_store_.size() &&
               (taken == 0 || frames + to_store_[taken].received.size() <= max_frames)) {
          frames += to_store_[taken++].received.size();
        }
        std::move(to_store_.begin(), to_store_.begin() + static_cast<ptrdiff_t>(taken),
                  std::back_inserter(groups));
        to_store_.erase(to_store_.begin(), to_store_.begin() + static_cast<ptrdiff_t>(taken));
      }
      Group merged = std::move(groups.front());
      for (size_t g = 1; g < groups.size(); ++g) {
        const size_t offset = merged.items.size();
        for (Received& received : groups[g].received) {
          if (received.item != kNoItem) received.item += offset;
          merged.received.push_back(std::move(received));
        }
        for (storage::AppendItem& item : groups[g].items) merged.items.push_back(std::move(item));
      }
      PreparedGroup prepared{std::move(merged), nullptr};
      prepared.batch = PrepareGroup(prepared.group);
      std::unique_lock lock(pipeline_mutex_);
      // One group written, one waiting: the next is prepared on the state both leave.
      to_commit_ready_.wait(lock, [this] { return stopping_ || to_commit_.empty(); });
      if (stopping_) return;
      to_commit_.push_back(std::move(prepared));
      to_commit_ready_.notify_all();
    }
  }

  // The commit thread: writes each prepared group, in order, and hands it back to be
  // acknowledged.
  void RunCommit() {
    while (true) {
      PreparedGroup prepared;
      std::deque<PreparedGroup> abandoned;
      {
        std::unique_lock lock(pipeline_mutex_);
        to_commit_ready_.wait(lock, [this] { return stopping_ || !to_commit_.empty(); });
        if (stopping_) {
          abandoned.swap(to_commit_);
        } else {
          prepared = std::move(to_commit_.front());
          to_commit_.pop_front();
        }
      }
      // Groups prepared and never written end here, at once (the store counts them as
      // failed writes, their agents resend them): retention may be waiting for them.
      if (stopping_) return;
      to_commit_ready_.notify_all();
      const Status stored = CommitGroup(prepared);
      {
        std::lock_guard lock(pipeline_mutex_);
        frames_at_store_ -= prepared.group.received.size();
        acknowledge_.push_back(std::move(prepared.group));
      }
      // One byte wakes the socket thread; if its queue is full it is awake already.
      try {
        (void)wake_sender_.send(zmq::str_buffer("w"), zmq::send_flags::dontwait);
      } catch (const zmq::error_t& e) {
        Log(LogLevel::kError, "gateway.ingest", std::string("ZeroMQ error: ") + e.what());
      }
      BackOffWhileTheStoreFails(stored);
    }
  }

  // A store that cannot write (a ClickHouse server down, a full disk) fails every group at
  // once; its agents resend as soon as they hear so. Waiting a little longer after each
  // failure keeps that from becoming a busy loop of resends and log lines; the agents spool
  // meanwhile, and the first write that succeeds resets the wait.
  void BackOffWhileTheStoreFails(const Status& stored) {
    if (stored.ok()) {
      if (failed_writes_ != 0) {
        Log(LogLevel::kInfo, "gateway.ingest",
            "store writes again after " + std::to_string(failed_writes_) + " failed writes");
      }
      failed_writes_ = 0;
      return;
    }
    if (failed_writes_++ == 0) {
      Log(LogLevel::kError, "gateway.ingest",
          "store failed, withholding acknowledgements (agents spool and resend): " +
              stored.message());
    } else {
      store_failure_log_.Log(LogLevel::kError, "store still failing: " + stored.message());
    }
    const auto wait = std::chrono::milliseconds(std::min<uint64_t>(
        kMaxStoreBackoffMs, uint64_t{50} << std::min<uint64_t>(failed_writes_, 6)));
    // On the commit thread's own condition: a wake-up meant for the store thread must not be
    // taken here.
    std::unique_lock lock(pipeline_mutex_);
    to_commit_ready_.wait_for(lock, wait, [this] { return stopping_.load(); });
  }

  void Count(uint64_t AgentListenerStats::*counter, uint64_t n = 1) {
    std::lock_guard lock(mutex_);
    stats_.*counter += n;
  }

  // A frame received in a group: whom to answer, and (if it decoded) its store item, else
  // why it was refused.
  struct Received {
    zmq::message_t routing;
    std::string peer;
    std::string user;  // the allow-list name of its CURVE key
    v1::Ack ack;
    size_t item = kNoItem;
    DecodeResult decoded;
    v1::AgentIdentity agent;  // of a refused frame, as far as it parsed
  };
  static constexpr size_t kNoItem = SIZE_MAX;
  // Frames received together, stored with one write, then acknowledged in arrival order.
  struct Group {
    std::vector<Received> received;
    std::vector<storage::AppendItem> items;
  };
  // A group ends with the frames waiting or at options_.max_group_batches frames or these
  // bytes, whichever comes first.
  static constexpr size_t kMaxGroupBytes = 16u << 20;
  // A group on its way through the store: prepared, to be written.
  struct PreparedGroup {
    Group group;
    std::unique_ptr<storage::PreparedBatch> batch;
  };
  // Frames decoded and not yet stored: the socket thread stops receiving beyond this. Three
  // groups: one being written, one prepared meanwhile, one decoded meanwhile.
  size_t MaxFramesAtStore() const { return 3 * options_.max_group_batches; }

  // Takes every frame waiting (within the bounds), decodes them and queues them for the
  // store thread.
  void ReceiveGroup() {
    Group group;
    size_t bytes = 0;
    while (group.received.size() < options_.max_group_batches && bytes < kMaxGroupBytes) {
      Received received;
      zmq::message_t payload;
      if (!socket_.recv(received.routing, zmq::recv_flags::dontwait)) break;
      // An agent sends exactly one frame after the routing id; anything else is malformed.
      if (!received.routing.more() || !socket_.recv(payload, zmq::recv_flags::dontwait)) break;
      bool extra = payload.more();
      while (payload.more()) {
        zmq::message_t discard;
        if (!socket_.recv(discard, zmq::recv_flags::dontwait)) break;
        payload.rebuild(0);
        if (!discard.more()) break;
      }
      Count(&AgentListenerStats::frames_received);
      bytes += payload.size();
      received.peer = MessageProperty(payload, "Peer-Address");
      received.user = MessageProperty(payload, "User-Id");

      v1::Envelope envelope;
      EventWire wire;
      if (extra) {
        received.decoded = {RejectReason::kMalformed, "more than one frame in a message"};
      } else {
        received.decoded = DecodeEnvelope(
            std::string_view(static_cast<const char*>(payload.data()), payload.size()),
            options_.max_frame_bytes, &envelope, &wire);
      }
      received.ack.set_boot_id(envelope.agent().boot_id());
      received.ack.set_sequence(envelope.sequence());
      if (received.decoded.ok()) {
        received.item = group.items.size();
        storage::AppendItem& item = group.items.emplace_back();
        item.envelope = std::move(envelope);
        item.wire = std::move(wire);
      } else {
        received.agent = envelope.agent();
      }
      group.received.push_back(std::move(received));
    }
    if (group.received.empty()) return;
    {
      std::lock_guard lock(pipeline_mutex_);
      frames_at_store_ += group.received.size();
      to_store_.push_back(std::move(group));
    }
    to_store_ready_.notify_one();
  }

  // On the store thread: refuses (with their acknowledgements) the frames that did not
  // decode, then prepares the group's batches for one write.
  std::unique_ptr<storage::PreparedBatch> PrepareGroup(Group& group) {
    for (Received& received : group.received) {
      if (received.item == kNoItem) {
        Reject(&received.ack, received.decoded, received.agent, received.peer, received.user);
      } else {
        group.items[received.item].peer_address = received.peer;
      }
    }
    if (group.items.empty()) return nullptr;  // every frame refused: nothing to write
    const uint64_t now_ms = WallMs();
    for (storage::AppendItem& item : group.items) item.received_at_ms = now_ms;
    return store_.PrepareBatch(group.items, static_cast<bool>(on_stored_));
  }

  // On the commit thread: writes a prepared group (a failed write fails every batch of it)
  // and fills the acknowledgements of its batches.
  Status CommitGroup(PreparedGroup& prepared) {
    if (prepared.batch == nullptr) return Status::Ok();
    const Status written = store_.CommitBatch(std::move(prepared.batch), prepared.group.items);
    for (Received& received : prepared.group.received) {
      if (received.item != kNoItem) Apply(prepared.group.items[received.item], &received.ack);
    }
    return written;
  }

  // On the socket thread: sends the acknowledgements of every group the commit thread is
  // done with, in order. The groups are freed here too, off the store's threads.
  void SendAcknowledgements() {
    zmq::message_t wake;
    while (wake_receiver_.recv(wake, zmq::recv_flags::dontwait)) {
    }
    std::vector<Group> done;
    {
      std::lock_guard lock(pipeline_mutex_);
      done.swap(acknowledge_);
    }
    std::string bytes_out;
    for (Group& group : done) {
      for (Received& received : group.received) {
        received.ack.SerializeToString(&bytes_out);
        socket_.send(received.routing, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
        socket_.send(zmq::buffer(bytes_out), zmq::send_flags::dontwait);
      }
    }
  }

  // A property libzmq attached to a received message ("" when it has none, e.g. no
  // Peer-Address over inproc, no User-Id in plain text).
  static std::string MessageProperty(zmq::message_t& message, const char* property) {
    try {
      return message.gets(property);
    } catch (const zmq::error_t&) {
      return "";
    }
  }

  // Counts a refused frame by reason and by the agent it names (if it parsed that far; else
  // by the allow-list name of its CURVE key, else "unknown"), in the listener's stats and
  // the agent's registry record, logs it (sparingly: a hostile peer must not flood the
  // log) and fills the ack.
  void Reject(v1::Ack* ack, const DecodeResult& decoded, const v1::AgentIdentity& agent,
              const std::string& peer, const std::string& user = "") {
    static constexpr struct {
      RejectReason reason;
      v1::AckStatus status;
      uint64_t AgentListenerStats::*counter;
    } kReasons[] = {
        {RejectReason::kMalformed, v1::ACK_STATUS_MALFORMED,
         &AgentListenerStats::rejected_malformed},
        {RejectReason::kUnsupportedVersion, v1::ACK_STATUS_UNSUPPORTED_VERSION,
         &AgentListenerStats::rejected_version},
        {RejectReason::kTooLarge, v1::ACK_STATUS_TOO_LARGE,
         &AgentListenerStats::rejected_too_large},
    };
    const std::string who =
        !agent.id().empty() ? agent.id() : (!user.empty() ? "key:" + user : "unknown");
    const std::string reason = RejectReasonName(decoded.reason);
    uint64_t count = 0;
    {
      std::lock_guard lock(mutex_);
      for (const auto& r : kReasons) {
        if (r.reason != decoded.reason) continue;
        stats_.*r.counter += 1;
        ack->set_status(r.status);
      }
      count = ++stats_.rejected_by_agent[who][reason];
    }
    ack->set_error(decoded.error);
    Status recorded = store_.RecordRejection(agent, reason, peer, WallMs());
    if (!recorded.ok()) Log(LogLevel::kError, "gateway.ingest", recorded.message());
    if ((count & (count - 1)) == 0) {  // the 1st, 2nd, 4th, 8th... of each kind
      Log(LogLevel::kWarning, "gateway.ingest",
          "refused a batch from agent " + who + (peer.empty() ? "" : " at " + peer) + " (" +
              reason + ", " + std::to_string(count) + " so far): " + decoded.error);
    }
  }

  // Counts and acknowledges what the store made of one batch of a group (refused ones were
  // answered when it was prepared), and hands its stored events on.
  void Apply(storage::AppendItem& item, v1::Ack* ack) {
    const v1::Envelope& envelope = item.envelope;
    const std::vector<v1::StoredEvent>& stored = item.stored;
    const Result<storage::AppendResult>& result = item.result;
    if (!result.ok() && result.status().code() == StatusCode::kInvalidArgument) {
      // DecodeEnvelope refuses what the store would; this only guards against the two
      // drifting apart (a resend would be refused again, so it must not be invited).
      Count(&AgentListenerStats::rejected_malformed);
      ack->set_status(v1::ACK_STATUS_MALFORMED);
      ack->set_error(result.status().message());
      return;
    }
    if (!result.ok()) {
      // Logged once per failed write by the commit thread, not per batch.
      Count(&AgentListenerStats::store_failures);
      ack->set_status(v1::ACK_STATUS_UNAVAILABLE);
      ack->set_error("store failed: " + result.status().message());
      return;
    }
    if (result->outcome == storage::AppendOutcome::kDuplicate) {
      Count(&AgentListenerStats::batches_duplicate);
      ack->set_status(v1::ACK_STATUS_DUPLICATE);
      return;
    }
    if (result->outcome == storage::AppendOutcome::kOutOfOrder) {
      // Normal after a reconnect (batches in flight behind a lost one); the agent resends
      // from the expected sequence, so this is counted, not logged.
      Count(&AgentListenerStats::batches_out_of_order);
      ack->set_status(v1::ACK_STATUS_OUT_OF_ORDER);
      ack->set_expected_sequence(result->expected_sequence);
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
      // The envelope keeps its (emptied) events when they moved to `stored`.
      stats_.events_stored += static_cast<uint64_t>(envelope.events_size());
    }
    ack->set_status(v1::ACK_STATUS_STORED);
    if (on_stored_) on_stored_(stored);
  }

  const AgentListenerOptions options_;
  storage::FlowStore& store_;
  const StoredCallback on_stored_;
  zmq::context_t context_{1};
  zmq::socket_t socket_;
  zmq::socket_t zap_{context_, zmq::socket_type::rep};  // ZAP handler thread only
  std::thread zap_thread_;
  std::map<std::string, std::string> allowed_;  // key -> name; guarded by mutex_
  std::string bound_;
  // Wakes the socket thread when acknowledgements are due (commit thread -> socket thread).
  zmq::socket_t wake_receiver_{context_, zmq::socket_type::pair};
  zmq::socket_t wake_sender_{context_, zmq::socket_type::pair};
  std::thread thread_;         // the socket thread
  std::thread store_thread_;   // prepares each group of batches for the store
  std::thread commit_thread_;  // writes them
  std::atomic<bool> stopping_{false};
  // Between the threads, guarded by pipeline_mutex_: groups to prepare, in arrival order,
  // prepared groups to write, and written groups to acknowledge.
  std::mutex pipeline_mutex_;
  std::condition_variable to_store_ready_;
  std::vector<Group> to_store_;
  std::condition_variable to_commit_ready_;
  std::deque<PreparedGroup> to_commit_;  // prepared groups, in order
  // Commit thread only: writes failed in a row, and their log beyond the first.
  uint64_t failed_writes_ = 0;
  static constexpr uint64_t kMaxStoreBackoffMs = 2000;
  LogLimiter store_failure_log_{"gateway.ingest", "store failure lines", 1};
  std::vector<Group> acknowledge_;
  size_t frames_at_store_ = 0;
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
