// The netifyd-compatible JSON stream server: any number of Unix-socket and TCP
// listeners, each client fed the same sequence of already-framed messages.
//
// Threading: one internal thread owns every listener and client socket (poll loop).
// Publish() may be called from any thread and never blocks on a client: each client has
// a bounded queue of whole frames; when a new frame does not fit, the oldest queued
// frames that are not partly written are dropped and counted. A frame is never cut: a
// frame that has started going out is finished before any other.
// A client that sends anything is disconnected, as netifyd does (the protocol is one-way).
// Welcome frames are never dropped (a reader needs the definitions), so a client's queue
// may hold client_buffer_bytes plus its welcome frames plus the frame being written.
// Stop() stops accepting and publishing, gives clients up to 2 s to take what is queued
// (so a clean shutdown ends streams on a whole frame), then closes them.
// Throughput: each frame is stored once for all clients, and frames go out in large
// gathered writes; while frames keep coming they may wait up to 1 ms to be batched.
// Per-client log lines (connect, disconnect, buffer full) are limited to 20 a second; the
// rest are counted in one line.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "flowgate/common/status.h"

namespace flowgate::gateway {

// A complete netifyd frame (`{"length": N}\n` + payload), shared by every client's queue.
using Frame = std::shared_ptr<const std::string>;

struct JsonSocketServerOptions {
  // Unix socket paths to listen on. A stale socket file (nobody accepting) is replaced; a
  // live one makes Create() fail. Files are removed by Stop(). Default: none.
  std::vector<std::string> unix_paths;
  // Permission bits for the socket files. Default: 0660 (not world-readable).
  uint32_t unix_mode = 0660;
  // Group that owns the socket files (a name or a number); empty keeps the process's
  // group. Default: "".
  std::string unix_group;
  // TCP listen addresses "HOST:PORT" (IPv4 or [IPv6]); port 0 picks a free port.
  // Default: none.
  std::vector<std::string> tcp_addresses;
  // Bytes of queued frames per client before the oldest are dropped. Default: 4 MiB.
  size_t client_buffer_bytes = 4u << 20;
  // Frames sent to each new client before any live frame (hello, status, definitions).
  // Called on the server thread at accept time. Default: none.
  std::function<std::vector<Frame>()> welcome_frames;
};

struct JsonSocketServerStats {
  uint64_t clients_connected = 0;  // now
  uint64_t clients_accepted = 0;   // since start
  uint64_t clients_disconnected = 0;
  uint64_t clients_kicked = 0;  // disconnected because they wrote to us
  uint64_t frames_published = 0;
  uint64_t frames_dropped = 0;  // summed over clients
  uint64_t bytes_sent = 0;
};

struct JsonClientStats {
  uint64_t id = 0;
  std::string peer;  // "unix:/path" or "tcp:127.0.0.1:5555"
  uint64_t frames_sent = 0;
  uint64_t frames_dropped = 0;
  size_t queued_bytes = 0;
};

class JsonSocketServer {
 public:
  // Binds every listener (failing with a message that names the path or address) and
  // starts the server thread.
  static Result<std::unique_ptr<JsonSocketServer>> Create(JsonSocketServerOptions options);
  virtual ~JsonSocketServer() = default;

  // Queues `frame` for every connected client. Thread-safe, non-blocking.
  virtual void Publish(Frame frame) = 0;
  // Closes listeners and clients, removes socket files, joins the thread. Idempotent;
  // also called by the destructor.
  virtual void Stop() = 0;

  virtual JsonSocketServerStats stats() const = 0;
  virtual std::vector<JsonClientStats> client_stats() const = 0;
  // The bound TCP addresses ("127.0.0.1:40123"), in the order given; useful with port 0.
  virtual std::vector<std::string> tcp_bound_addresses() const = 0;
};

}  // namespace flowgate::gateway
