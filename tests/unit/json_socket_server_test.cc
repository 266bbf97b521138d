// JsonSocketServer over real Unix and TCP sockets. Synchronisation is by data: a client
// that has read its welcome frame is registered, so it receives every later Publish().
#include "api/json_socket_server.h"

#include "flowgate/common/log.h"
#include "flowgate/common/netifyd_json.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace flowgate::gateway {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// Generous: the sanitizer build on a shared 2-core machine is slow.
constexpr milliseconds kReadTimeout{20000};

// --- Strict netifyd frame reader over a socket ------------------------------------------

// One read attempt's result.
struct ReadOutcome {
  enum Kind { kFrame, kEof, kTimeout, kMalformed, kError };
  Kind kind = kError;
  std::string payload;  // kFrame: the N payload bytes, trailing '\n' included
  std::string error;    // kMalformed / kError: what was wrong
};

// Parses with the project's strict NetifydFrameReader; adds what only a socket can show:
// a connection that ends inside a frame (a cut frame) is kMalformed.
class StrictFrameReader {
 public:
  explicit StrictFrameReader(int fd) : fd_(fd) {}

  ReadOutcome Next(milliseconds timeout) {
    const Clock::time_point deadline = Clock::now() + timeout;
    std::string payload;
    while (!reader_.Next(&payload)) {
      ReadOutcome more = Fill(deadline);
      if (more.kind == ReadOutcome::kEof && reader_.pending_bytes() > 0) {
        return Malformed("EOF inside a frame (cut frame)");
      }
      if (more.kind != ReadOutcome::kFrame) return more;
    }
    return ReadOutcome{ReadOutcome::kFrame, std::move(payload), {}};
  }

 private:
  static ReadOutcome Malformed(std::string error) {
    return ReadOutcome{ReadOutcome::kMalformed, {}, std::move(error)};
  }

  // Feeds at least one more byte to reader_; kFrame means "got data".
  ReadOutcome Fill(Clock::time_point deadline) {
    while (true) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return ReadOutcome{ReadOutcome::kTimeout, {}, "timed out"};
      pollfd pfd{fd_, POLLIN, 0};
      const int ready = poll(&pfd, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno == EINTR) continue;
      if (ready < 0) return ReadOutcome{ReadOutcome::kError, {}, std::strerror(errno)};
      if (ready == 0) continue;  // re-checks the deadline
      char chunk[65536];
      const ssize_t n = read(fd_, chunk, sizeof chunk);
      if (n > 0) {
        Status fed = reader_.Feed(std::string_view(chunk, static_cast<size_t>(n)));
        if (!fed.ok()) return Malformed(fed.message());
        return ReadOutcome{ReadOutcome::kFrame, {}, {}};
      }
      if (n == 0) return ReadOutcome{ReadOutcome::kEof, {}, {}};
      if (errno == EINTR || errno == EAGAIN) continue;
      return ReadOutcome{ReadOutcome::kError, {}, std::strerror(errno)};
    }
  }

  int fd_;
  NetifydFrameReader reader_;
};

// --- Helpers ----------------------------------------------------------------------------

Frame MakeFrame(const std::string& json) {
  return std::make_shared<const std::string>(FrameNetifydPayload(json + "\n"));
}

// Payload of a numbered test frame, `pad` extra bytes long.
std::string NumberedJson(uint64_t seq, size_t pad = 0) {
  return "{\"seq\":" + std::to_string(seq) + ",\"pad\":\"" + std::string(pad, 'x') +
         "\",\"type\":\"test\"}";
}

uint64_t SeqOf(const std::string& payload) {
  const size_t at = payload.find("\"seq\":");
  if (at == std::string::npos) return UINT64_MAX;
  uint64_t seq = UINT64_MAX;
  std::from_chars(payload.data() + at + 6, payload.data() + payload.size(), seq);
  return seq;
}

class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/flowgate-jsonsock-XXXXXX";
    const char* made = mkdtemp(pattern);
    if (made != nullptr) path_ = made;
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&&) = delete;
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

Fd ConnectUnix(const std::string& path) {
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, sizeof addr.sun_path - 1);
  if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ADD_FAILURE() << "connect " << path << ": " << std::strerror(errno);
  }
  return fd;
}

// `address` is "127.0.0.1:PORT".
Fd ConnectTcp(const std::string& address) {
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const size_t colon = address.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  inet_pton(AF_INET, address.substr(0, colon).c_str(), &addr.sin_addr);
  if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ADD_FAILURE() << "connect " << address << ": " << std::strerror(errno);
  }
  return fd;
}

// Reads one frame, failing the test (with the reason) unless it is a whole frame.
std::string ReadPayload(StrictFrameReader& reader) {
  ReadOutcome outcome = reader.Next(kReadTimeout);
  EXPECT_EQ(outcome.kind, ReadOutcome::kFrame) << "expected a frame: " << outcome.error;
  return outcome.payload;
}

std::optional<JsonClientStats> FindClient(const std::vector<JsonClientStats>& all, uint64_t id) {
  for (const JsonClientStats& client : all) {
    if (client.id == id) return client;
  }
  return std::nullopt;
}

std::unique_ptr<JsonSocketServer> MustCreate(JsonSocketServerOptions options) {
  auto server = JsonSocketServer::Create(std::move(options));
  if (!server.ok()) {
    ADD_FAILURE() << "Create: " << server.status().message();
    return nullptr;
  }
  return std::move(server).value();
}

const std::string kWelcomeJson = R"({"agent_version":"0.1.0","type":"agent_hello"})";
const std::string kStatusJson = R"({"type":"agent_status","uptime":1})";

JsonSocketServerOptions WelcomeOptions() {
  JsonSocketServerOptions options;
  options.welcome_frames = [] {
    return std::vector<Frame>{MakeFrame(kWelcomeJson), MakeFrame(kStatusJson)};
  };
  return options;
}

// --- Tests ------------------------------------------------------------------------------

TEST(JsonSocketServerTest, WelcomeThenPublishedFramesInOrderOverUnixAndTcp) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  JsonSocketServerOptions options = WelcomeOptions();
  options.unix_paths = {dir.path() + "/netifyd.sock"};
  options.tcp_addresses = {"127.0.0.1:0", "[::1]:0"};
  auto server = MustCreate(std::move(options));
  ASSERT_NE(server, nullptr);
  const std::vector<std::string> bound = server->tcp_bound_addresses();
  ASSERT_EQ(bound.size(), 2u);
  EXPECT_EQ(bound[0].rfind("127.0.0.1:", 0), 0u) << bound[0];
  EXPECT_NE(bound[0], "127.0.0.1:0");
  EXPECT_EQ(bound[1].rfind("[::1]:", 0), 0u) << bound[1];

  Fd unix_fd = ConnectUnix(dir.path() + "/netifyd.sock");
  Fd tcp_fd = ConnectTcp(bound[0]);
  StrictFrameReader unix_reader(unix_fd.get());
  StrictFrameReader tcp_reader(tcp_fd.get());
  for (StrictFrameReader* reader : {&unix_reader, &tcp_reader}) {
    EXPECT_EQ(ReadPayload(*reader), kWelcomeJson + "\n");
    EXPECT_EQ(ReadPayload(*reader), kStatusJson + "\n");
  }

  std::vector<std::string> sent;
  for (uint64_t seq = 0; seq < 200; ++seq) {
    sent.push_back(NumberedJson(seq, seq * 37 % 3000) + "\n");
    server->Publish(MakeFrame(sent.back().substr(0, sent.back().size() - 1)));
  }
  for (StrictFrameReader* reader : {&unix_reader, &tcp_reader}) {
    for (const std::string& expected : sent) {
      ASSERT_EQ(ReadPayload(*reader), expected);
    }
  }
  const JsonSocketServerStats stats = server->stats();
  EXPECT_EQ(stats.clients_connected, 2u);
  EXPECT_EQ(stats.clients_accepted, 2u);
  EXPECT_EQ(stats.frames_published, 200u);
  EXPECT_EQ(stats.frames_dropped, 0u);
  const std::vector<JsonClientStats> clients = server->client_stats();
  ASSERT_EQ(clients.size(), 2u);
  std::vector<std::string> peers = {clients[0].peer, clients[1].peer};
  std::sort(peers.begin(), peers.end());
  EXPECT_EQ(peers[0].rfind("tcp:127.0.0.1:", 0), 0u) << peers[0];
  EXPECT_EQ(peers[1], "unix:" + dir.path() + "/netifyd.sock");
  server->Stop();
}

TEST(JsonSocketServerTest, FiftyConcurrentClientsReceiveEveryFrameInOrder) {
  constexpr int kClients = 50;
  constexpr uint64_t kFrames = 400;
  TempDir dir;
  JsonSocketServerOptions options = WelcomeOptions();
  options.unix_paths = {dir.path() + "/s.sock"};
  options.tcp_addresses = {"127.0.0.1:0"};
  auto server = MustCreate(std::move(options));
  ASSERT_NE(server, nullptr);
  const std::string tcp = server->tcp_bound_addresses().at(0);

  std::latch welcomed(kClients);
  std::vector<std::string> failures(kClients);
  std::vector<std::thread> readers;
  for (int i = 0; i < kClients; ++i) {
    readers.emplace_back([&, i] {
      Fd fd = i % 2 == 0 ? ConnectUnix(dir.path() + "/s.sock") : ConnectTcp(tcp);
      StrictFrameReader reader(fd.get());
      ReadOutcome first = reader.Next(kReadTimeout);
      ReadOutcome second = reader.Next(kReadTimeout);
      welcomed.count_down();
      if (first.payload != kWelcomeJson + "\n" || second.payload != kStatusJson + "\n") {
        failures[i] = "bad welcome: " + first.error + second.error;
        return;
      }
      for (uint64_t seq = 0; seq < kFrames; ++seq) {
        ReadOutcome got = reader.Next(kReadTimeout);
        if (got.kind != ReadOutcome::kFrame || got.payload != NumberedJson(seq, seq % 500) + "\n") {
          failures[i] = "frame " + std::to_string(seq) + ": " + got.error + " got " +
                        got.payload.substr(0, 60);
          return;
        }
      }
    });
  }
  welcomed.wait();
  for (uint64_t seq = 0; seq < kFrames; ++seq)
    server->Publish(MakeFrame(NumberedJson(seq, seq % 500)));
  for (std::thread& reader : readers) reader.join();
  for (int i = 0; i < kClients; ++i) EXPECT_EQ(failures[i], "") << "client " << i;
  EXPECT_EQ(server->stats().frames_dropped, 0u);
}

TEST(JsonSocketServerTest, StalledClientIsBoundedAndOnlyLosesWholeFrames) {
  constexpr size_t kBuffer = 256u << 10;
  constexpr uint64_t kFrames = 3000;  // about 24 MB
  constexpr uint64_t kBatch = 16;     // at most ~200 KB in flight: the fast reader never drops
  TempDir dir;
  JsonSocketServerOptions options = WelcomeOptions();
  options.unix_paths = {dir.path() + "/s.sock"};
  options.client_buffer_bytes = kBuffer;
  auto server = MustCreate(std::move(options));
  ASSERT_NE(server, nullptr);

  Fd stalled_fd = ConnectUnix(dir.path() + "/s.sock");
  StrictFrameReader stalled(stalled_fd.get());
  EXPECT_EQ(ReadPayload(stalled), kWelcomeJson + "\n");
  EXPECT_EQ(ReadPayload(stalled), kStatusJson + "\n");
  const uint64_t stalled_id = server->client_stats().at(0).id;

  // The fast reader reports progress so that the publisher can stay within its buffer.
  std::mutex mu;
  std::condition_variable progressed;
  uint64_t fast_received = 0;
  std::string fast_failure;
  std::latch fast_welcomed(1);
  std::thread fast([&] {
    Fd fd = ConnectUnix(dir.path() + "/s.sock");
    StrictFrameReader reader(fd.get());
    reader.Next(kReadTimeout);
    reader.Next(kReadTimeout);
    fast_welcomed.count_down();
    for (uint64_t seq = 0; seq < kFrames; ++seq) {
      ReadOutcome got = reader.Next(kReadTimeout);
      std::lock_guard<std::mutex> lock(mu);
      if (got.kind != ReadOutcome::kFrame || SeqOf(got.payload) != seq) {
        fast_failure = "frame " + std::to_string(seq) + ": " + got.error;
        progressed.notify_all();
        return;
      }
      ++fast_received;
      progressed.notify_all();
    }
  });
  fast_welcomed.wait();

  size_t largest = 0;
  size_t max_queued = 0;
  for (uint64_t seq = 0; seq < kFrames; ++seq) {
    Frame frame = MakeFrame(NumberedJson(seq, 1000 + seq * 7919 % 12000));
    largest = std::max(largest, frame->size());
    server->Publish(std::move(frame));
    if ((seq + 1) % kBatch == 0) {
      std::unique_lock<std::mutex> lock(mu);
      ASSERT_TRUE(progressed.wait_for(
          lock, kReadTimeout, [&] { return fast_received == seq + 1 || !fast_failure.empty(); }))
          << "fast reader stuck at " << fast_received << " of " << seq + 1;
      ASSERT_EQ(fast_failure, "");
      const std::optional<JsonClientStats> s = FindClient(server->client_stats(), stalled_id);
      ASSERT_TRUE(s.has_value());
      max_queued = std::max(max_queued, s->queued_bytes);
      ASSERT_LE(s->queued_bytes, kBuffer + largest);
    }
  }
  fast.join();
  ASSERT_EQ(fast_failure, "");

  const std::optional<JsonClientStats> before = FindClient(server->client_stats(), stalled_id);
  ASSERT_TRUE(before.has_value());
  EXPECT_GT(before->frames_dropped, 0u);
  EXPECT_LE(before->queued_bytes, kBuffer + largest);
  RecordProperty("stalled_max_queued_bytes", std::to_string(max_queued));
  RecordProperty("stalled_frames_dropped", std::to_string(before->frames_dropped));
  std::printf(
      "[ measure  ] buffer %zu, largest frame %zu, stalled max queued %zu, dropped %llu"
      " of %llu\n",
      kBuffer, largest, max_queued, static_cast<unsigned long long>(before->frames_dropped),
      static_cast<unsigned long long>(kFrames));

  // Now it reads: whole frames only, increasing, ending with the end marker.
  const uint64_t kEnd = kFrames;
  server->Publish(MakeFrame(NumberedJson(kEnd)));
  uint64_t received = 0;
  uint64_t last = 0;
  bool first = true;
  while (true) {
    ReadOutcome got = stalled.Next(kReadTimeout);
    ASSERT_EQ(got.kind, ReadOutcome::kFrame) << got.error << " after " << received << " frames";
    const uint64_t seq = SeqOf(got.payload);
    ASSERT_TRUE(first || seq > last) << seq << " after " << last;
    first = false;
    last = seq;
    ++received;
    if (seq == kEnd) break;
  }
  const std::optional<JsonClientStats> after = FindClient(server->client_stats(), stalled_id);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->frames_dropped, before->frames_dropped);
  EXPECT_EQ(received + after->frames_dropped, kFrames + 1);
  EXPECT_EQ(after->frames_sent, received + 2);  // + welcome frames
  EXPECT_EQ(server->stats().frames_dropped, after->frames_dropped);
}

TEST(JsonSocketServerTest, FrameLargerThanBufferIsDroppedWhole) {
  TempDir dir;
  JsonSocketServerOptions options = WelcomeOptions();
  options.unix_paths = {dir.path() + "/s.sock"};
  options.client_buffer_bytes = 1024;
  auto server = MustCreate(std::move(options));
  ASSERT_NE(server, nullptr);
  Fd fd = ConnectUnix(dir.path() + "/s.sock");
  StrictFrameReader reader(fd.get());
  ReadPayload(reader);
  ReadPayload(reader);
  server->Publish(MakeFrame(NumberedJson(1, 2000)));
  server->Publish(MakeFrame(NumberedJson(2, 10)));
  EXPECT_EQ(ReadPayload(reader), NumberedJson(2, 10) + "\n");
  EXPECT_EQ(server->stats().frames_dropped, 1u);
  EXPECT_EQ(server->client_stats().at(0).frames_dropped, 1u);
}

TEST(JsonSocketServerTest, ClientThatWritesIsKicked) {
  TempDir dir;
  JsonSocketServerOptions options = WelcomeOptions();
  options.unix_paths = {dir.path() + "/s.sock"};
  options.tcp_addresses = {"127.0.0.1:0"};
  auto server = MustCreate(std::move(options));
  ASSERT_NE(server, nullptr);
  Fd quiet = ConnectUnix(dir.path() + "/s.sock");
  StrictFrameReader quiet_reader(quiet.get());
  ReadPayload(quiet_reader);

  uint64_t kicked = 0;
  for (bool use_tcp : {false, true}) {
    Fd chatty = use_tcp ? ConnectTcp(server->tcp_bound_addresses().at(0))
                        : ConnectUnix(dir.path() + "/s.sock");
    StrictFrameReader reader(chatty.get());
    ASSERT_EQ(ReadPayload(reader), kWelcomeJson + "\n");
    ASSERT_EQ(send(chatty.get(), "hello\n", 6, MSG_NOSIGNAL), 6);
    ReadOutcome outcome;
    do {
      outcome = reader.Next(kReadTimeout);
    } while (outcome.kind == ReadOutcome::kFrame);
    EXPECT_EQ(outcome.kind, ReadOutcome::kEof) << (use_tcp ? "tcp: " : "unix: ") << outcome.error;
    EXPECT_EQ(server->stats().clients_kicked, ++kicked);
  }
  const JsonSocketServerStats stats = server->stats();
  EXPECT_EQ(stats.clients_connected, 1u);
  EXPECT_EQ(stats.clients_disconnected, 2u);

  // A client that just leaves is disconnected, not kicked; the others carry on.
  { Fd leaving = ConnectUnix(dir.path() + "/s.sock"); }
  server->Publish(MakeFrame(NumberedJson(7)));
  EXPECT_EQ(ReadPayload(quiet_reader), kStatusJson + "\n");
  EXPECT_EQ(ReadPayload(quiet_reader), NumberedJson(7) + "\n");
  EXPECT_EQ(server->stats().clients_kicked, 2u);
}

TEST(JsonSocketServerTest, UnixSocketFileLifecycle) {
  TempDir dir;
  const std::string path = dir.path() + "/netifyd.sock";

  // A stale socket (bound, then closed without unlink) is replaced.
  {
    const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof addr.sun_path - 1);
    ASSERT_EQ(bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
    close(fd);
  }
  JsonSocketServerOptions options = WelcomeOptions();
  options.unix_paths = {path};
  auto server = MustCreate(options);
  ASSERT_NE(server, nullptr);
  struct stat st {};
  ASSERT_EQ(lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  {
    Fd fd = ConnectUnix(path);
    StrictFrameReader reader(fd.get());
    EXPECT_EQ(ReadPayload(reader), kWelcomeJson + "\n");
  }

  // A live socket is not taken over.
  auto second = JsonSocketServer::Create(options);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("in use"), std::string::npos)
      << second.status().message();
  EXPECT_NE(second.status().message().find(path), std::string::npos);

  server->Stop();
  server->Stop();  // idempotent
  EXPECT_NE(lstat(path.c_str(), &st), 0) << "socket file left behind";

  // A regular file is never replaced.
  std::ofstream(path) << "not a socket";
  auto third = JsonSocketServer::Create(options);
  ASSERT_FALSE(third.ok());
  EXPECT_NE(third.status().message().find("not a socket"), std::string::npos)
      << third.status().message();
  ASSERT_EQ(lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));

  // A missing directory is named.
  options.unix_paths = {dir.path() + "/missing/netifyd.sock"};
  auto fourth = JsonSocketServer::Create(options);
  ASSERT_FALSE(fourth.ok());
  EXPECT_NE(fourth.status().message().find(dir.path() + "/missing"), std::string::npos)
      << fourth.status().message();

  // A failed Create removes socket files it had already made.
  options.unix_paths = {dir.path() + "/first.sock"};
  options.tcp_addresses = {"bogus"};
  ASSERT_FALSE(JsonSocketServer::Create(options).ok());
  EXPECT_NE(lstat((dir.path() + "/first.sock").c_str(), &st), 0);
}

TEST(JsonSocketServerTest, StopWithStalledClientsIsBounded) {
  TempDir dir;
  JsonSocketServerOptions options = WelcomeOptions();
  options.unix_paths = {dir.path() + "/s.sock"};
  options.tcp_addresses = {"127.0.0.1:0"};
  auto server = MustCreate(std::move(options));
  ASSERT_NE(server, nullptr);
  std::vector<Fd> clients;
  for (int i = 0; i < 5; ++i) {
    clients.push_back(i % 2 ? ConnectTcp(server->tcp_bound_addresses().at(0))
                            : ConnectUnix(dir.path() + "/s.sock"));
    StrictFrameReader reader(clients.back().get());
    ReadPayload(reader);  // registered
  }
  // Leave them with unread data queued, as a busy server would.
  for (int i = 0; i < 200; ++i) server->Publish(MakeFrame(NumberedJson(i, 8000)));
  const auto start = Clock::now();
  server->Stop();
  // Stop() gives clients 2 s to take what is queued; these never read, so it ends then.
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(4));
  EXPECT_EQ(server->stats().clients_connected, 0u);
  server->Publish(MakeFrame(NumberedJson(1)));  // harmless after Stop()
  // Every client sees the end of the stream. A client that did not take its frames in
  // time may see the last one cut: the connection ends with it, never resumes it.
  for (Fd& fd : clients) {
    StrictFrameReader reader(fd.get());
    ReadOutcome outcome;
    do {
      outcome = reader.Next(kReadTimeout);
    } while (outcome.kind == ReadOutcome::kFrame);
    EXPECT_TRUE(outcome.kind == ReadOutcome::kEof || outcome.kind == ReadOutcome::kMalformed)
        << outcome.error;
  }
}

TEST(JsonSocketServerTest, StopLetsReadingClientsTakeEverythingQueued) {
  TempDir dir;
  JsonSocketServerOptions options = WelcomeOptions();
  options.unix_paths = {dir.path() + "/s.sock"};
  options.client_buffer_bytes = 8u << 20;
  auto server = MustCreate(std::move(options));
  ASSERT_NE(server, nullptr);
  Fd client = ConnectUnix(dir.path() + "/s.sock");
  StrictFrameReader reader(client.get());
  ReadPayload(reader);  // registered
  constexpr int kFrames = 300;
  for (int i = 0; i < kFrames; ++i) server->Publish(MakeFrame(NumberedJson(i, 8000)));
  // Stop while the client is still reading: it gets every frame whole, then EOF.
  int received = 0;
  ReadOutcome last;
  std::thread read_all([&] {
    while ((last = reader.Next(kReadTimeout)).kind == ReadOutcome::kFrame) ++received;
  });
  server->Stop();
  read_all.join();
  EXPECT_EQ(last.kind, ReadOutcome::kEof) << last.error;
  // The welcome frame after the first was read above; every published frame follows it.
  EXPECT_GE(received, kFrames);
}

// Redirects this process's stderr (where Log() writes) to a file while it lives.
class StderrCapture {
 public:
  StderrCapture() : file_(std::tmpfile()), saved_(dup(STDERR_FILENO)) {
    std::fflush(stderr);
    if (file_ != nullptr) dup2(fileno(file_), STDERR_FILENO);
  }
  ~StderrCapture() {
    Restore();
    if (file_ != nullptr) std::fclose(file_);
  }
  StderrCapture(const StderrCapture&) = delete;
  StderrCapture& operator=(const StderrCapture&) = delete;

  // Restores stderr and returns what was written meanwhile.
  std::string Take() {
    Restore();
    std::string text;
    if (file_ == nullptr) return text;
    std::rewind(file_);
    char chunk[4096];
    size_t n;
    while ((n = std::fread(chunk, 1, sizeof chunk, file_)) > 0) text.append(chunk, n);
    return text;
  }

 private:
  void Restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    dup2(saved_, STDERR_FILENO);
    close(saved_);
    saved_ = -1;
  }

  std::FILE* file_;
  int saved_;
};

TEST(JsonSocketServerTest, ConnectFloodLogsAtMostTwentyClientLinesPerSecondAndCountsTheRest) {
  constexpr int kClients = 60;  // a connect and a disconnect line each
  TempDir dir;
  JsonSocketServerOptions options = WelcomeOptions();
  options.unix_paths = {dir.path() + "/s.sock"};
  SetLogLevel(LogLevel::kInfo);
  StderrCapture capture;
  const auto start = Clock::now();
  auto server = MustCreate(std::move(options));
  ASSERT_NE(server, nullptr);
  for (int i = 0; i < kClients; ++i) {
    Fd fd = ConnectUnix(dir.path() + "/s.sock");
    StrictFrameReader reader(fd.get());
    ASSERT_EQ(ReadPayload(reader), kWelcomeJson + "\n");  // registered
  }
  const auto deadline = Clock::now() + kReadTimeout;
  while (server->stats().clients_disconnected < kClients && Clock::now() < deadline) {
    std::this_thread::yield();
  }
  ASSERT_EQ(server->stats().clients_disconnected, static_cast<uint64_t>(kClients));
  server->Stop();  // reports lines still held back
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const std::string log = capture.Take();

  int logged = 0;
  uint64_t suppressed = 0;
  size_t at = 0;
  while (at < log.size()) {
    size_t end = log.find('\n', at);
    if (end == std::string::npos) end = log.size();
    const std::string_view line(log.data() + at, end - at);
    at = end + 1;
    if (line.find(" connected from ") != std::string_view::npos ||
        line.find(" disconnected: ") != std::string_view::npos) {
      ++logged;
    }
    const size_t count_end = line.find(" more client lines suppressed");
    if (count_end != std::string_view::npos) {
      const size_t count_start = line.rfind(' ', count_end - 1) + 1;
      uint64_t count = 0;
      std::from_chars(line.data() + count_start, line.data() + count_end, count);
      suppressed += count;
    }
  }
  // Every line is either written or counted; at most 20 are written per second.
  EXPECT_EQ(logged + suppressed, 2u * kClients) << log;
  EXPECT_LE(logged, 20 * (static_cast<int>(seconds) + 1)) << log;
  if (seconds < 5) {
    EXPECT_GT(suppressed, 0u) << log;
  }
}

TEST(JsonSocketServerTest, BadTcpAddressesAreNamed) {
  for (const std::string bad : {"127.0.0.1", "localhost:7150", "127.0.0.1:65536", "::1:7150",
                                "[::1]7150", "300.0.0.1:1", "127.0.0.1:x", "[::1]:"}) {
    JsonSocketServerOptions options;
    options.tcp_addresses = {bad};
    auto server = JsonSocketServer::Create(options);
    ASSERT_FALSE(server.ok()) << bad;
    EXPECT_NE(server.status().message().find("\"" + bad + "\""), std::string::npos)
        << server.status().message();
  }
  // A port in use is named too.
  JsonSocketServerOptions options;
  options.tcp_addresses = {"127.0.0.1:0"};
  auto first = MustCreate(options);
  ASSERT_NE(first, nullptr);
  options.tcp_addresses = first->tcp_bound_addresses();
  auto second = JsonSocketServer::Create(options);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find(options.tcp_addresses[0]), std::string::npos)
      << second.status().message();
}

}  // namespace
}  // namespace flowgate::gateway
