// The netifyd-compatible JSON socket server. One thread owns every socket and runs a
// poll(2) loop. Publish() appends the frame once to a shared log under `mu_`; each client
// sends the log from its own position, in large gathered writes made without `mu_`, so
// neither the publisher nor the other clients ever wait on a client's socket. A client
// whose position falls out of the last client_buffer_bytes of the log has lost those
// frames (counted per client). See json_socket_server.h for the contract and
// shared/design/netifyd-socket.md for the wire format.
#include "api/json_socket_server.h"

#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include "flowgate/common/flags.h"
#include "flowgate/common/inet_address.h"
#include "flowgate/common/log.h"
#include "flowgate/common/thread_name.h"

namespace flowgate::gateway {
namespace {

constexpr std::string_view kComponent = "json-socket";
constexpr int kListenBacklog = 128;
// Frames gathered into one sendmsg(): enough to fill a Unix socket's buffer with typical
// flow messages in one call (IOV_MAX is 1024).
constexpr size_t kMaxIov = 512;
// Bytes written to one client per poll round, so one fast reader cannot starve the others.
constexpr size_t kMaxWriteBytesPerRound = 1u << 20;
// While frames keep coming, the server thread sleeps at most kBatchInterval and Publish()
// wakes it early only once kBatchWakeBytes are waiting: frames go out in large writes, and
// the publisher makes one wake-up syscall per batch rather than per frame. After a quiet
// interval the thread sleeps until the next frame, which then goes out at once.
constexpr auto kBatchInterval = std::chrono::milliseconds(1);
constexpr size_t kBatchWakeBytes = 64u << 10;
// Per-client log lines (connect, disconnect, buffer full) let through per second; the rest
// are counted and reported in one line, so a connection flood cannot flood the log.
constexpr int kClientLogLinesPerSecond = 20;
constexpr uint64_t kNoSeq = UINT64_MAX;
// Log frames Publish() frees per call; see FreeUnneeded().
constexpr size_t kFreesPerPublish = 4;
// Accepts per listener per round, so a connection storm cannot starve existing clients.
constexpr int kMaxAcceptsPerRound = 64;
// After running out of descriptors the listener stays readable; pausing accepts keeps
// the loop from spinning until a client leaves.
constexpr auto kAcceptPause = std::chrono::milliseconds(100);
// How long Stop() lets clients take their queued frames before it closes them.
constexpr auto kStopDrain = std::chrono::seconds(2);
// Bytes a kicked client may have sent that we still read, so close() sends a FIN rather
// than a reset (a reset could make the peer lose frames it has not read yet).
constexpr size_t kMaxDrainBytes = 64u << 10;

std::string ErrnoText(int err) { return std::generic_category().message(err); }

// Owns one file descriptor.
// A group name or number as a gid; fails naming the group.
Result<gid_t> ResolveGroup(const std::string& group) {
  if (Result<uint64_t> number = ParseUint(group); number.ok()) return static_cast<gid_t>(*number);
  std::vector<char> buffer(16384);
  struct group entry {};
  struct group* found = nullptr;
  if (getgrnam_r(group.c_str(), &entry, buffer.data(), buffer.size(), &found) != 0 ||
      found == nullptr) {
    return Status::InvalidArgument("json socket group '" + group + "' does not exist");
  }
  return found->gr_gid;
}

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(std::exchange(other.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

struct Listener {
  UniqueFd fd;
  bool is_unix = false;
  std::string name;  // the socket path, or the bound TCP address
  // Identity of the socket file we created, so Stop() never removes a file that another
  // process has put in its place since.
  dev_t dev = 0;
  ino_t ino = 0;
};

using Clock = std::chrono::steady_clock;

// Fields are guarded by the server's `mu_` unless marked otherwise.
struct Client {
  uint64_t id = 0;
  std::string peer;
  UniqueFd fd;
  // Frames for this client alone, sent before any shared frame: its welcome frames (never
  // dropped: readers need them), or a shared frame that a write left half sent (moved here
  // so that it is finished before anything else, whatever happens to the shared log).
  std::deque<Frame> own;
  size_t own_offset = 0;  // bytes of own.front() already written
  size_t own_bytes = 0;   // bytes in `own` not yet written
  uint64_t next_seq = 0;  // the next shared frame to send
  uint64_t frames_sent = 0;
  uint64_t frames_dropped = 0;
  bool drop_logged = false;
  bool writable = true;  // server thread only: false from a full socket until POLLOUT
};

class JsonSocketServerImpl final : public JsonSocketServer {
 public:
  explicit JsonSocketServerImpl(JsonSocketServerOptions options) : options_(std::move(options)) {}
  ~JsonSocketServerImpl() override { Stop(); }

  Status Start();

  void Publish(Frame frame) override;
  void Stop() override;
  JsonSocketServerStats stats() const override;
  std::vector<JsonClientStats> client_stats() const override;
  std::vector<std::string> tcp_bound_addresses() const override { return tcp_bound_; }

 private:
  // Every published frame is kept once in a shared log, whatever the number of clients;
  // each client sends it from its own position (next_seq). `start` is the number of bytes
  // published before the frame, so the bytes from any frame to the end are one subtraction.
  struct LogEntry {
    Frame frame;
    uint64_t start;
  };
  enum class WakeMode {
    kAwake,        // the server thread will look at the log without being woken
    kWakeOnBytes,  // it sleeps briefly; wake it once kBatchWakeBytes are waiting
    kWakeOnFirst,  // it sleeps until woken; wake it for the next frame
  };

  Status ListenUnix(const std::string& path);
  Status ListenTcp(const std::string& address);
  void Wake();
  void Run();
  void AcceptClients(const Listener& listener);
  // Handles poll events for one client; returns the reason to disconnect it, or empty.
  std::string Service(Client& client, short revents, bool* kicked);
  // Writes queued frames until the socket is full or the round's budget is spent; returns
  // the reason to disconnect the client, or empty. Sets *sent when bytes went out.
  std::string WriteSome(Client& client, bool* sent);
  void Disconnect(uint64_t id, const std::string& reason, bool kicked);

  // The helpers below need `mu_`.
  // Shared frames the window has pushed out before `client` sent them, not yet counted.
  uint64_t PendingDrops(const Client& client) const {
    return window_first_seq_ > client.next_seq ? window_first_seq_ - client.next_seq : 0;
  }
  // Counts those frames as dropped and moves the client past them.
  void AccountDrops(Client& client);
  bool HasPending(const Client& client) const {
    return !client.own.empty() || std::max(client.next_seq, window_first_seq_) < end_seq_;
  }
  size_t QueuedBytes(const Client& client) const;
  // Marks `written` bytes of the client's frames as sent.
  void Consume(Client& client, size_t written);
  // Frees log frames that no client will send, at most `limit` of them.
  void FreeUnneeded(size_t limit);

  const JsonSocketServerOptions options_;
  // Fixed once Start() returns; read by the server thread without locking.
  std::vector<Listener> listeners_;
  std::vector<std::string> tcp_bound_;
  UniqueFd wake_fd_;
  std::thread thread_;
  // Server thread only.
  Clock::time_point accept_paused_until_{};
  LogLimiter client_log_{std::string(kComponent), "client lines", kClientLogLinesPerSecond};

  std::mutex stop_mu_;  // serialises Stop(); held while joining
  bool stopped_ = false;

  mutable std::mutex mu_;  // guards everything below
  // Set by Stop(): the server sends what is queued until then, then closes.
  std::optional<Clock::time_point> drain_deadline_;
  std::vector<std::unique_ptr<Client>> clients_;
  uint64_t next_client_id_ = 0;
  JsonSocketServerStats totals_;  // clients_connected is derived from clients_
  std::deque<LogEntry> log_;
  uint64_t log_first_seq_ = 0;    // of log_.front()
  uint64_t end_seq_ = 0;          // of the next frame published
  uint64_t published_bytes_ = 0;  // bytes of the frames appended to the log so far
  // Frames before this one are outside every client's buffer: a client that has not sent
  // them has lost them. The frames from here to the end fit in client_buffer_bytes, which
  // is what bounds each client's queue.
  uint64_t window_first_seq_ = 0;
  // No client's next_seq is lower (as of the server thread's last round).
  uint64_t min_client_seq_ = 0;
  // The server thread is writing frames from here on without holding `mu_`.
  uint64_t pinned_seq_ = kNoSeq;
  // It is writing to a client without `mu_`. Stats wait for the write to be counted, so
  // that a reader that has a frame also sees it counted as sent.
  bool writing_ = false;
  mutable std::condition_variable write_done_;
  WakeMode wake_mode_ = WakeMode::kAwake;
  uint64_t wake_at_bytes_ = 0;  // kWakeOnBytes: wake once published_bytes_ gets here
};

Status JsonSocketServerImpl::Start() {
  wake_fd_.Reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake_fd_.valid()) return Status::IoError("json socket: eventfd: " + ErrnoText(errno));
  for (const std::string& path : options_.unix_paths) {
    FLOWGATE_RETURN_IF_ERROR(ListenUnix(path));
  }
  for (const std::string& address : options_.tcp_addresses) {
    FLOWGATE_RETURN_IF_ERROR(ListenTcp(address));
  }
  try {
    thread_ = std::thread([this] { Run(); });
  } catch (const std::system_error& e) {
    return Status::Internal(std::string("json socket: cannot start thread: ") + e.what());
  }
  for (const Listener& listener : listeners_) {
    Log(LogLevel::kInfo, kComponent,
        "listening on " + std::string(listener.is_unix ? "unix:" : "tcp:") + listener.name);
  }
  return Status::Ok();
}

Status JsonSocketServerImpl::ListenUnix(const std::string& path) {
  sockaddr_un addr{};
  if (path.empty()) return Status::InvalidArgument("json socket path is empty");
  if (path.size() >= sizeof(addr.sun_path)) {
    return Status::InvalidArgument("json socket path " + path + " is too long (max " +
                                   std::to_string(sizeof(addr.sun_path) - 1) + " bytes)");
  }
  for (const Listener& other : listeners_) {
    if (other.is_unix && other.name == path) {
      return Status::InvalidArgument("json socket path " + path + " is listed twice");
    }
  }
  const size_t slash = path.rfind('/');
  const std::string parent =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  struct stat st {};
  if (stat(parent.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::NotFound("json socket " + path + ": directory " + parent + " does not exist");
  }
  const auto fail = [&path](const char* what) {
    return Status::IoError("json socket " + path + ": " + what + ": " + ErrnoText(errno));
  };
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, path.size());
  const auto* sa = reinterpret_cast<const sockaddr*>(&addr);

  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Status::AlreadyExists("json socket " + path +
                                   " exists and is not a socket; refusing to replace it");
    }
    // A socket file outlives a crashed owner; only one nobody accepts on may be replaced.
    UniqueFd probe(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!probe.valid()) return fail("socket");
    if (connect(probe.get(), sa, sizeof addr) == 0 || errno == EAGAIN || errno == EINPROGRESS) {
      return Status::AlreadyExists("json socket " + path + " is in use by another process");
    }
    if (errno == ECONNREFUSED) {
      Log(LogLevel::kInfo, kComponent, "replacing stale socket " + path);
      if (unlink(path.c_str()) != 0 && errno != ENOENT) return fail("cannot remove stale socket");
    } else if (errno != ENOENT) {
      return fail("cannot check whether it is in use");
    }
  } else if (errno != ENOENT) {
    return fail("lstat");
  }

  Listener listener;
  listener.is_unix = true;
  listener.name = path;
  listener.fd.Reset(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!listener.fd.valid()) return fail("socket");
  if (bind(listener.fd.get(), sa, sizeof addr) != 0) return fail("cannot bind");
  // Recorded before anything else can fail, so that cleanup removes the file.
  if (lstat(path.c_str(), &st) == 0) {
    listener.dev = st.st_dev;
    listener.ino = st.st_ino;
  }
  listeners_.push_back(std::move(listener));
  // chmod before listen(): until listen() nobody can connect, so no client slips in while
  // the umask's permissions apply.
  if (chmod(path.c_str(), static_cast<mode_t>(options_.unix_mode)) != 0) return fail("chmod");
  if (!options_.unix_group.empty()) {
    Result<gid_t> gid = ResolveGroup(options_.unix_group);
    if (!gid.ok()) return gid.status();
    if (chown(path.c_str(), static_cast<uid_t>(-1), *gid) != 0) return fail("chown");
  }
  if (listen(listeners_.back().fd.get(), kListenBacklog) != 0) return fail("listen");
  return Status::Ok();
}

Status JsonSocketServerImpl::ListenTcp(const std::string& address) {
  Result<InetAddress> parsed = ParseInetAddress(address, "json socket TCP address");
  if (!parsed.ok()) return parsed.status();
  InetAddress& addr = parsed.value();
  const int family = addr.storage.ss_family;
  const auto fail = [&address](const char* what) {
    return Status::IoError("json socket TCP address " + address + ": " + what + ": " +
                           ErrnoText(errno));
  };
  Listener listener;
  listener.fd.Reset(socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!listener.fd.valid()) return fail("socket");
  const int one = 1;
  // Lets a restarted gateway rebind while old connections sit in TIME_WAIT.
  setsockopt(listener.fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // "[::]:7150" and "0.0.0.0:7150" may then both be listed without clashing.
  if (family == AF_INET6)
    setsockopt(listener.fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(listener.fd.get(), addr.get(), addr.length) != 0) return fail("cannot bind");
  if (listen(listener.fd.get(), kListenBacklog) != 0) return fail("listen");
  InetAddress bound;
  bound.length = sizeof bound.storage;
  if (getsockname(listener.fd.get(), bound.get(), &bound.length) != 0) return fail("getsockname");
  listener.name = FormatInetAddress(bound.storage);
  tcp_bound_.push_back(listener.name);
  listeners_.push_back(std::move(listener));
  return Status::Ok();
}

void JsonSocketServerImpl::Wake() {
  const uint64_t one = 1;
  if (write(wake_fd_.get(), &one, sizeof one) < 0) {
    // EAGAIN: the counter is saturated, so a wake-up is pending anyway.
  }
}

void JsonSocketServerImpl::Publish(Frame frame) {
  if (!frame || frame->empty()) return;
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (drain_deadline_) return;
    ++totals_.frames_published;
    if (clients_.empty()) return;  // nobody to send it to
    const size_t size = frame->size();
    log_.push_back(LogEntry{std::move(frame), published_bytes_});
    published_bytes_ += size;
    ++end_seq_;
    // Frames freed because every client had sent them need no window bookkeeping.
    window_first_seq_ = std::max(window_first_seq_, log_first_seq_);
    while (window_first_seq_ < end_seq_ &&
           published_bytes_ - log_[window_first_seq_ - log_first_seq_].start >
               options_.client_buffer_bytes) {
      ++window_first_seq_;
    }
    // A few frames per call, so that the publisher frees about as many as it allocates:
    // its allocator then reuses the memory at once instead of taking the slow path.
    FreeUnneeded(kFreesPerPublish);
    switch (wake_mode_) {
      case WakeMode::kAwake:
        break;
      case WakeMode::kWakeOnBytes:
        wake = published_bytes_ >= wake_at_bytes_;
        break;
      case WakeMode::kWakeOnFirst:
        wake = true;
        break;
    }
    if (wake) wake_mode_ = WakeMode::kAwake;
  }
  if (wake) Wake();
}

void JsonSocketServerImpl::AccountDrops(Client& client) {
  const uint64_t dropped = PendingDrops(client);
  if (dropped == 0) return;
  client.next_seq += dropped;
  client.frames_dropped += dropped;
  totals_.frames_dropped += dropped;
}

size_t JsonSocketServerImpl::QueuedBytes(const Client& client) const {
  const uint64_t from = std::max(client.next_seq, window_first_seq_);
  const uint64_t shared =
      from >= end_seq_ ? 0 : published_bytes_ - log_[from - log_first_seq_].start;
  return client.own_bytes + static_cast<size_t>(shared);
}

void JsonSocketServerImpl::FreeUnneeded(size_t limit) {
  const uint64_t free_below = std::min(std::max(window_first_seq_, min_client_seq_), pinned_seq_);
  for (size_t i = 0; i < limit && log_first_seq_ < free_below && !log_.empty(); ++i) {
    log_.pop_front();
    ++log_first_seq_;
  }
}

void JsonSocketServerImpl::Consume(Client& client, size_t written) {
  size_t left = written;
  while (left > 0 && !client.own.empty()) {
    const size_t remaining = client.own.front()->size() - client.own_offset;
    if (left < remaining) {
      client.own_offset += left;
      client.own_bytes -= left;
      return;
    }
    left -= remaining;
    client.own_bytes -= remaining;
    client.own.pop_front();
    client.own_offset = 0;
    ++client.frames_sent;
  }
  while (left > 0) {
    const Frame& frame = log_[client.next_seq - log_first_seq_].frame;
    ++client.next_seq;
    if (left < frame->size()) {
      client.own.push_back(frame);
      client.own_offset = left;
      client.own_bytes = frame->size() - left;
      return;
    }
    left -= frame->size();
    ++client.frames_sent;
  }
}

void JsonSocketServerImpl::Stop() {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  {
    // Stop in two steps: no new frames and no new clients, then give readers a moment to
    // take what is queued, so that a clean shutdown ends every stream on a whole frame.
    std::lock_guard<std::mutex> lock(mu_);
    drain_deadline_ = Clock::now() + kStopDrain;
  }
  if (thread_.joinable()) {
    Wake();
    thread_.join();
  }
  client_log_.Flush(Clock::now() + std::chrono::seconds(1));  // the thread is gone: report now
  std::vector<std::unique_ptr<Client>> clients;
  {
    std::lock_guard<std::mutex> lock(mu_);
    clients.swap(clients_);
    totals_.clients_disconnected += clients.size();
  }
  clients.clear();
  for (Listener& listener : listeners_) {
    struct stat st {};
    if (listener.is_unix && lstat(listener.name.c_str(), &st) == 0 && st.st_dev == listener.dev &&
        st.st_ino == listener.ino) {
      unlink(listener.name.c_str());
    }
  }
  const bool had_listeners = !listeners_.empty();
  listeners_.clear();
  if (had_listeners) Log(LogLevel::kInfo, kComponent, "stopped");
}

JsonSocketServerStats JsonSocketServerImpl::stats() const {
  std::unique_lock<std::mutex> lock(mu_);
  write_done_.wait(lock, [this] { return !writing_; });
  JsonSocketServerStats stats = totals_;
  stats.clients_connected = clients_.size();
  for (const auto& client : clients_) stats.frames_dropped += PendingDrops(*client);
  return stats;
}

std::vector<JsonClientStats> JsonSocketServerImpl::client_stats() const {
  std::unique_lock<std::mutex> lock(mu_);
  write_done_.wait(lock, [this] { return !writing_; });
  std::vector<JsonClientStats> result;
  result.reserve(clients_.size());
  for (const auto& client : clients_) {
    result.push_back(JsonClientStats{client->id, client->peer, client->frames_sent,
                                     client->frames_dropped + PendingDrops(*client),
                                     QueuedBytes(*client)});
  }
  return result;
}

void JsonSocketServerImpl::Run() {
  NameThisThread("json-socket");
  std::vector<pollfd> fds;
  std::vector<Client*> polled;  // polled[i] belongs to fds[1 + listeners + i]
  std::vector<std::string> drop_messages;
  uint64_t published_seen = 0;
  bool sent_last_round = false;
  while (true) {
    fds.clear();
    polled.clear();
    drop_messages.clear();
    const auto now = Clock::now();
    client_log_.Flush(now);
    const bool accepting_now = now >= accept_paused_until_;
    fds.push_back({wake_fd_.get(), POLLIN, 0});
    std::optional<Clock::time_point> wake_at;
    bool any_ready = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      const bool draining = drain_deadline_.has_value();
      const bool accepting = accepting_now && !draining;
      for (const Listener& listener : listeners_) {
        // A paused listener stays in the set, without events, to keep indices simple.
        fds.push_back({listener.fd.get(), static_cast<short>(accepting ? POLLIN : 0), 0});
      }
      bool any_pending = false;
      uint64_t min_seq = end_seq_;
      for (const auto& client : clients_) {
        AccountDrops(*client);
        if (client->frames_dropped > 0 && !client->drop_logged) {
          client->drop_logged = true;
          drop_messages.push_back("client " + std::to_string(client->id) + " (" + client->peer +
                                  ") buffer full: dropping frames");
        }
        const bool pending = HasPending(*client);
        any_pending = any_pending || pending;
        any_ready = any_ready || (pending && client->writable);
        min_seq = std::min(min_seq, client->next_seq);
        const short events = pending && !client->writable ? (POLLIN | POLLOUT) : POLLIN;
        fds.push_back({client->fd.get(), events, 0});
        polled.push_back(client.get());
      }
      min_client_seq_ = min_seq;
      if (!any_pending) FreeUnneeded(SIZE_MAX);  // idle: nobody else will
      if (draining && (!any_pending || now >= *drain_deadline_)) return;
      const bool active = sent_last_round || published_bytes_ != published_seen;
      published_seen = published_bytes_;
      if (draining) {
        wake_at = drain_deadline_;
      } else if (!any_ready && active) {
        wake_mode_ = WakeMode::kWakeOnBytes;
        wake_at_bytes_ = published_bytes_ + kBatchWakeBytes;
        wake_at = now + kBatchInterval;
      } else if (!any_ready) {
        wake_mode_ = WakeMode::kWakeOnFirst;
      }
      if (!accepting_now)
        wake_at = std::min(wake_at.value_or(accept_paused_until_), accept_paused_until_);
    }
    for (const std::string& message : drop_messages) {
      client_log_.Log(LogLevel::kWarning, message, now);
    }
    if (const auto due = client_log_.flush_due()) wake_at = std::min(wake_at.value_or(*due), *due);
    const int timeout_ms =
        any_ready ? 0
        : wake_at ? static_cast<int>(std::max<int64_t>(
                        0, std::chrono::ceil<std::chrono::milliseconds>(*wake_at - now).count()))
                  : -1;
    const int ready = poll(fds.data(), fds.size(), timeout_ms);
    {
      std::lock_guard<std::mutex> lock(mu_);
      wake_mode_ = WakeMode::kAwake;
    }
    if (ready < 0) {
      if (errno != EINTR) {
        Log(LogLevel::kError, kComponent, "poll: " + ErrnoText(errno));
      }
      continue;
    }
    if (fds[0].revents != 0) {
      uint64_t count = 0;
      if (read(wake_fd_.get(), &count, sizeof count) < 0) {
        // EAGAIN: another round already consumed the wake-up.
      }
    }
    for (size_t i = 0; i < listeners_.size(); ++i) {
      if (fds[1 + i].revents != 0) AcceptClients(listeners_[i]);
    }
    const size_t first_client = 1 + listeners_.size();
    sent_last_round = false;
    for (size_t i = 0; i < polled.size(); ++i) {
      Client& client = *polled[i];
      const short revents = fds[first_client + i].revents;
      bool kicked = false;
      std::string reason;
      if (revents != 0) reason = Service(client, revents, &kicked);
      if (reason.empty() && client.writable) reason = WriteSome(client, &sent_last_round);
      if (!reason.empty()) Disconnect(client.id, reason, kicked);
    }
  }
}

void JsonSocketServerImpl::AcceptClients(const Listener& listener) {
  for (int i = 0; i < kMaxAcceptsPerRound; ++i) {
    InetAddress peer_addr;
    peer_addr.length = sizeof peer_addr.storage;
    UniqueFd fd(accept4(listener.fd.get(), peer_addr.get(), &peer_addr.length,
                        SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) {
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
      Log(LogLevel::kWarning, kComponent,
          "accept on " + listener.name + ": " + ErrnoText(err) + "; pausing accepts");
      accept_paused_until_ = Clock::now() + kAcceptPause;
      return;
    }
    auto client = std::make_unique<Client>();
    client->fd = std::move(fd);
    client->peer =
        listener.is_unix ? "unix:" + listener.name : "tcp:" + FormatInetAddress(peer_addr.storage);
    if (options_.welcome_frames) {
      // Called without `mu_`: the callback may well ask for stats().
      std::vector<Frame> welcome;
      try {
        welcome = options_.welcome_frames();
      } catch (const std::exception& e) {
        Log(LogLevel::kError, kComponent,
            "welcome frames for " + client->peer + " failed: " + e.what() + "; closing it");
        continue;
      }
      for (Frame& frame : welcome) {
        if (!frame || frame->empty()) continue;
        client->own_bytes += frame->size();
        client->own.push_back(std::move(frame));
      }
    }
    std::string message;
    {
      std::lock_guard<std::mutex> lock(mu_);
      client->id = ++next_client_id_;
      client->next_seq = end_seq_;  // live frames from now on; no replay
      ++totals_.clients_accepted;
      message = "client " + std::to_string(client->id) + " connected from " + client->peer;
      clients_.push_back(std::move(client));
    }
    client_log_.Log(LogLevel::kInfo, message, Clock::now());
  }
}

std::string JsonSocketServerImpl::Service(Client& client, short revents, bool* kicked) {
  if ((revents & (POLLERR | POLLNVAL)) != 0) return "socket error";
  if ((revents & POLLIN) != 0) {
    char buffer[4096];
    const ssize_t n = recv(client.fd.get(), buffer, sizeof buffer, MSG_DONTWAIT);
    if (n > 0) {
      // The protocol is one-way; netifyd drops a client that talks. Drain what it sent so
      // that close() ends the stream cleanly.
      size_t drained = static_cast<size_t>(n);
      while (drained < kMaxDrainBytes) {
        const ssize_t more = recv(client.fd.get(), buffer, sizeof buffer, MSG_DONTWAIT);
        if (more <= 0) break;
        drained += static_cast<size_t>(more);
      }
      *kicked = true;
      return "sent " + std::to_string(drained) + " bytes (the stream is one-way)";
    }
    if (n == 0) return "closed by peer";
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return ErrnoText(errno);
  } else if ((revents & POLLHUP) != 0) {
    return "hung up";
  }
  if ((revents & POLLOUT) != 0) client.writable = true;
  return {};
}

std::string JsonSocketServerImpl::WriteSome(Client& client, bool* sent) {
  size_t budget = kMaxWriteBytesPerRound;
  iovec iov[kMaxIov];
  while (budget > 0) {
    size_t count = 0;
    size_t total = 0;
    {
      // The iovecs point into frames that stay put without `mu_`: own frames are only
      // touched by this thread, and Publish() frees no log frame from pinned_seq_ on.
      std::lock_guard<std::mutex> lock(mu_);
      AccountDrops(client);
      for (size_t i = 0; i < client.own.size() && count < kMaxIov; ++i) {
        const size_t offset = i == 0 ? client.own_offset : 0;
        // sendmsg() only reads the buffers; iovec is merely declared non-const.
        iov[count].iov_base = const_cast<char*>(client.own[i]->data() + offset);
        iov[count].iov_len = client.own[i]->size() - offset;
        total += iov[count].iov_len;
        ++count;
      }
      uint64_t seq = client.next_seq;
      for (; seq < end_seq_ && count < kMaxIov && total < budget; ++seq) {
        const std::string& frame = *log_[seq - log_first_seq_].frame;
        iov[count].iov_base = const_cast<char*>(frame.data());
        iov[count].iov_len = frame.size();
        total += frame.size();
        ++count;
      }
      if (count == 0) return {};
      if (seq > client.next_seq) pinned_seq_ = client.next_seq;
      writing_ = true;
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = count;
    // MSG_NOSIGNAL: a vanished reader must give EPIPE, not kill the gateway with SIGPIPE.
    const ssize_t written = sendmsg(client.fd.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    const int err = errno;
    {
      std::lock_guard<std::mutex> lock(mu_);
      pinned_seq_ = kNoSeq;
      writing_ = false;
      if (written > 0) {
        Consume(client, static_cast<size_t>(written));
        totals_.bytes_sent += static_cast<uint64_t>(written);
      }
    }
    write_done_.notify_all();
    if (written < 0) {
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        client.writable = false;
        return {};
      }
      return ErrnoText(err);
    }
    *sent = true;
    if (static_cast<size_t>(written) < total) {
      client.writable = false;  // the socket buffer is full: wait for POLLOUT
      return {};
    }
    budget -= std::min(static_cast<size_t>(written), budget);
  }
  return {};
}

void JsonSocketServerImpl::Disconnect(uint64_t id, const std::string& reason, bool kicked) {
  std::unique_ptr<Client> gone;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = std::find_if(clients_.begin(), clients_.end(),
                                 [id](const auto& client) { return client->id == id; });
    if (it == clients_.end()) return;
    AccountDrops(**it);
    gone = std::move(*it);
    clients_.erase(it);
    ++totals_.clients_disconnected;
    if (kicked) ++totals_.clients_kicked;
    if (clients_.empty()) {
      // Nobody left to send the log to.
      log_.clear();
      log_first_seq_ = window_first_seq_ = min_client_seq_ = end_seq_;
    }
  }
  // Counted before the socket closes, so a peer that sees EOF also sees the stats.
  client_log_.Log(kicked ? LogLevel::kWarning : LogLevel::kInfo,
                  "client " + std::to_string(gone->id) + " (" + gone->peer +
                      ") disconnected: " + reason + "; " + std::to_string(gone->frames_sent) +
                      " frames sent, " + std::to_string(gone->frames_dropped) + " dropped",
                  Clock::now());
}

}  // namespace

Result<std::unique_ptr<JsonSocketServer>> JsonSocketServer::Create(
    JsonSocketServerOptions options) {
  if (options.client_buffer_bytes == 0) {
    return Status::InvalidArgument("json socket client buffer must be at least 1 byte");
  }
  if ((options.unix_mode & ~07777u) != 0) {
    return Status::InvalidArgument("json socket mode " + std::to_string(options.unix_mode) +
                                   " is not a permission mask");
  }
  auto server = std::make_unique<JsonSocketServerImpl>(std::move(options));
  // On failure the destructor closes what was opened and removes created socket files.
  FLOWGATE_RETURN_IF_ERROR(server->Start());
  return std::unique_ptr<JsonSocketServer>(std::move(server));
}

}  // namespace flowgate::gateway
