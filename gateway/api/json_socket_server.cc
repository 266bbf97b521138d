// The netifyd-compatible JSON socket server. One thread owns every socket and runs a
// poll(2) loop; Publish() only appends to per-client queues under `mu_` and wakes the
// thread through an eventfd. See json_socket_server.h for the contract and
// shared/design/netifyd-socket.md for the wire format.
#include "api/json_socket_server.h"

#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
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
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include "flowgate/common/flags.h"
#include "flowgate/common/log.h"

namespace flowgate::gateway {
namespace {

constexpr std::string_view kComponent = "json-socket";
constexpr int kListenBacklog = 128;
// Frames gathered into one sendmsg(); more rarely helps, the socket buffer is the limit.
constexpr size_t kMaxIov = 64;
// Bytes written to one client per poll round, so one fast reader cannot starve the others
// or hold `mu_` (and with it Publish) for long.
constexpr size_t kMaxWriteBytesPerRound = 1u << 20;
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

struct SockAddr {
  sockaddr_storage storage{};
  socklen_t length = 0;

  sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
};

// "127.0.0.1:7150" or "[::1]:7150".
std::string FormatInetAddress(const sockaddr_storage& storage) {
  char text[INET6_ADDRSTRLEN] = {};
  if (storage.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&storage);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    return std::string(text) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (storage.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage);
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    return "[" + std::string(text) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  return "?";
}

// Parses "HOST:PORT" or "[IPV6]:PORT". Hosts are numeric so that Create() never waits on
// DNS.
Result<SockAddr> ParseTcpAddress(const std::string& text) {
  const Status invalid = Status::InvalidArgument(
      "json socket TCP address \"" + text +
      "\" is invalid: expected IPV4:PORT or [IPV6]:PORT with a numeric address and port 0-65535");
  std::string host;
  std::string_view port_text;
  bool v6 = false;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return invalid;
    }
    host = text.substr(1, close - 1);
    port_text = std::string_view(text).substr(close + 2);
    v6 = true;
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string::npos) return invalid;
    host = text.substr(0, colon);
    port_text = std::string_view(text).substr(colon + 1);
    if (host.find(':') != std::string::npos) return invalid;  // IPv6 needs brackets
  }
  unsigned port = 0;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
      port > 65535) {
    return invalid;
  }
  SockAddr addr;
  if (v6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&addr.storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) != 1) return invalid;
    addr.length = sizeof(sockaddr_in6);
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&addr.storage);
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, host.c_str(), &in->sin_addr) != 1) return invalid;
    addr.length = sizeof(sockaddr_in);
  }
  return addr;
}

struct Listener {
  UniqueFd fd;
  bool is_unix = false;
  std::string name;  // the socket path, or the bound TCP address
  // Identity of the socket file we created, so Stop() never removes a file that another
  // process has put in its place since.
  dev_t dev = 0;
  ino_t ino = 0;
};

struct Client {
  uint64_t id = 0;
  std::string peer;
  UniqueFd fd;
  std::deque<Frame> queue;
  size_t head_offset = 0;       // bytes of queue.front() already written
  size_t queued_bytes = 0;      // bytes in `queue` not yet written
  size_t protected_frames = 0;  // leading welcome frames, never dropped: readers need them
  uint64_t frames_sent = 0;
  uint64_t frames_dropped = 0;
  bool drop_logged = false;
};

// Appends `frame` to the client's queue within `limit` bytes; returns the frames dropped.
// Only whole frames that have not started going out are dropped, oldest first; a frame
// that alone exceeds the limit is itself dropped.
uint64_t Enqueue(Client& client, const Frame& frame, size_t limit) {
  const size_t size = frame->size();
  if (size > limit) {
    ++client.frames_dropped;
    return 1;
  }
  const size_t keep =
      std::max(client.protected_frames, client.head_offset > 0 ? size_t{1} : size_t{0});
  uint64_t dropped = 0;
  while (client.queued_bytes + size > limit && client.queue.size() > keep) {
    const auto victim = client.queue.begin() + static_cast<std::ptrdiff_t>(keep);
    client.queued_bytes -= (*victim)->size();
    client.queue.erase(victim);
    ++dropped;
  }
  client.frames_dropped += dropped;
  client.queue.push_back(frame);
  client.queued_bytes += size;
  return dropped;
}

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
  Status ListenUnix(const std::string& path);
  Status ListenTcp(const std::string& address);
  void Wake();
  void Run();
  void AcceptClients(const Listener& listener);
  // Handles poll events for one client; returns the reason to disconnect it, or empty.
  std::string Service(Client& client, short revents, bool* kicked);
  // Writes queued frames until the socket is full or the round's budget is spent.
  std::string WriteSome(Client& client);
  void Disconnect(uint64_t id, const std::string& reason, bool kicked);

  const JsonSocketServerOptions options_;
  // Fixed once Start() returns; read by the server thread without locking.
  std::vector<Listener> listeners_;
  std::vector<std::string> tcp_bound_;
  UniqueFd wake_fd_;
  std::thread thread_;
  std::chrono::steady_clock::time_point accept_paused_until_{};  // server thread only

  std::mutex stop_mu_;  // serialises Stop(); held while joining
  bool stopped_ = false;

  mutable std::mutex mu_;  // guards everything below
  // Set by Stop(): the server sends what is queued until then, then closes.
  std::optional<std::chrono::steady_clock::time_point> drain_deadline_;
  std::vector<std::unique_ptr<Client>> clients_;
  uint64_t next_client_id_ = 0;
  JsonSocketServerStats totals_;  // clients_connected is derived from clients_
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
  Result<SockAddr> parsed = ParseTcpAddress(address);
  if (!parsed.ok()) return parsed.status();
  SockAddr& addr = parsed.value();
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
  SockAddr bound;
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
  std::vector<std::string> messages;  // logged after unlocking: stderr may block
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (drain_deadline_) return;
    ++totals_.frames_published;
    for (const auto& client : clients_) {
      const bool was_idle = client->queue.empty();
      const uint64_t dropped = Enqueue(*client, frame, options_.client_buffer_bytes);
      totals_.frames_dropped += dropped;
      if (dropped > 0 && !client->drop_logged) {
        client->drop_logged = true;
        messages.push_back("client " + std::to_string(client->id) + " (" + client->peer +
                           ") buffer full: dropping frames");
      }
      // A client with queued data is already polled for POLLOUT; only the transition
      // from idle needs the thread's attention, which saves a syscall per frame.
      wake = wake || (was_idle && !client->queue.empty());
    }
  }
  if (wake) Wake();
  for (const std::string& message : messages) Log(LogLevel::kWarning, kComponent, message);
}

void JsonSocketServerImpl::Stop() {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  {
    // Stop in two steps: no new frames and no new clients, then give readers a moment to
    // take what is queued, so that a clean shutdown ends every stream on a whole frame.
    std::lock_guard<std::mutex> lock(mu_);
    drain_deadline_ = std::chrono::steady_clock::now() + kStopDrain;
  }
  if (thread_.joinable()) {
    Wake();
    thread_.join();
  }
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
  std::lock_guard<std::mutex> lock(mu_);
  JsonSocketServerStats stats = totals_;
  stats.clients_connected = clients_.size();
  return stats;
}

std::vector<JsonClientStats> JsonSocketServerImpl::client_stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<JsonClientStats> result;
  result.reserve(clients_.size());
  for (const auto& client : clients_) {
    result.push_back(JsonClientStats{client->id, client->peer, client->frames_sent,
                                     client->frames_dropped, client->queued_bytes});
  }
  return result;
}

void JsonSocketServerImpl::Run() {
  pthread_setname_np(pthread_self(), "json-socket");
  std::vector<pollfd> fds;
  std::vector<Client*> polled;  // polled[i] belongs to fds[1 + listeners + i]
  while (true) {
    fds.clear();
    polled.clear();
    fds.push_back({wake_fd_.get(), POLLIN, 0});
    const auto now = std::chrono::steady_clock::now();
    std::optional<std::chrono::steady_clock::time_point> drain_deadline;
    {
      std::lock_guard<std::mutex> lock(mu_);
      drain_deadline = drain_deadline_;
      if (drain_deadline) {
        const bool drained = std::all_of(clients_.begin(), clients_.end(),
                                         [](const auto& c) { return c->queue.empty(); });
        if (drained || now >= *drain_deadline) return;
      }
    }
    const bool accepting = now >= accept_paused_until_ && !drain_deadline;
    for (const Listener& listener : listeners_) {
      // A paused listener stays in the set, without events, to keep indices simple.
      fds.push_back({listener.fd.get(), static_cast<short>(accepting ? POLLIN : 0), 0});
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& client : clients_) {
        const short events = client->queue.empty() ? POLLIN : (POLLIN | POLLOUT);
        fds.push_back({client->fd.get(), events, 0});
        polled.push_back(client.get());
      }
    }
    const auto wake_at = drain_deadline ? *drain_deadline : accept_paused_until_;
    const int timeout_ms =
        accepting ? -1
                  : static_cast<int>(std::max<int64_t>(
                        0, std::chrono::ceil<std::chrono::milliseconds>(wake_at - now).count()));
    if (poll(fds.data(), fds.size(), timeout_ms) < 0) {
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
    for (size_t i = 0; i < polled.size(); ++i) {
      const short revents = fds[first_client + i].revents;
      if (revents == 0) continue;
      bool kicked = false;
      const std::string reason = Service(*polled[i], revents, &kicked);
      if (!reason.empty()) Disconnect(polled[i]->id, reason, kicked);
    }
  }
}

void JsonSocketServerImpl::AcceptClients(const Listener& listener) {
  for (int i = 0; i < kMaxAcceptsPerRound; ++i) {
    SockAddr peer_addr;
    peer_addr.length = sizeof peer_addr.storage;
    UniqueFd fd(accept4(listener.fd.get(), peer_addr.get(), &peer_addr.length,
                        SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) {
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
      Log(LogLevel::kWarning, kComponent,
          "accept on " + listener.name + ": " + ErrnoText(err) + "; pausing accepts");
      accept_paused_until_ = std::chrono::steady_clock::now() + kAcceptPause;
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
        client->queued_bytes += frame->size();
        client->queue.push_back(std::move(frame));
      }
      client->protected_frames = client->queue.size();
    }
    std::string message;
    {
      std::lock_guard<std::mutex> lock(mu_);
      client->id = ++next_client_id_;
      ++totals_.clients_accepted;
      message = "client " + std::to_string(client->id) + " connected from " + client->peer;
      clients_.push_back(std::move(client));
    }
    Log(LogLevel::kInfo, kComponent, message);
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
  if ((revents & POLLOUT) != 0) return WriteSome(client);
  return {};
}

std::string JsonSocketServerImpl::WriteSome(Client& client) {
  // `mu_` is held across sendmsg() so that Publish() can never drop a frame that is
  // being written; the call does not block and is capped at kMaxWriteBytesPerRound.
  std::lock_guard<std::mutex> lock(mu_);
  size_t budget = kMaxWriteBytesPerRound;
  while (!client.queue.empty() && budget > 0) {
    iovec iov[kMaxIov];
    size_t count = 0;
    size_t total = 0;
    for (size_t i = 0; i < client.queue.size() && count < kMaxIov && total < budget; ++i) {
      const std::string& frame = *client.queue[i];
      const size_t offset = i == 0 ? client.head_offset : 0;
      // sendmsg() only reads the buffers; iovec is merely declared non-const.
      iov[count].iov_base = const_cast<char*>(frame.data() + offset);
      iov[count].iov_len = frame.size() - offset;
      total += iov[count].iov_len;
      ++count;
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = count;
    // MSG_NOSIGNAL: a vanished reader must give EPIPE, not kill the gateway with SIGPIPE.
    const ssize_t written = sendmsg(client.fd.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (written < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return {};
      return ErrnoText(errno);
    }
    size_t left = static_cast<size_t>(written);
    totals_.bytes_sent += left;
    client.queued_bytes -= left;
    budget -= std::min(left, budget);
    while (left > 0) {
      const size_t remaining = client.queue.front()->size() - client.head_offset;
      if (left < remaining) {
        client.head_offset += left;
        break;
      }
      left -= remaining;
      client.queue.pop_front();
      client.head_offset = 0;
      ++client.frames_sent;
      if (client.protected_frames > 0) --client.protected_frames;
    }
    if (static_cast<size_t>(written) < total) return {};  // the socket buffer is full
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
    gone = std::move(*it);
    clients_.erase(it);
    ++totals_.clients_disconnected;
    if (kicked) ++totals_.clients_kicked;
  }
  // Counted before the socket closes, so a peer that sees EOF also sees the stats.
  Log(kicked ? LogLevel::kWarning : LogLevel::kInfo, kComponent,
      "client " + std::to_string(gone->id) + " (" + gone->peer + ") disconnected: " + reason +
          "; " + std::to_string(gone->frames_sent) + " frames sent, " +
          std::to_string(gone->frames_dropped) + " dropped");
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
