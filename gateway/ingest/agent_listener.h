// Receives agents' batches over ZeroMQ (gateway ROUTER <- agent DEALERs), makes each
// durable in the store, acknowledges it, and hands the stored events on for fan-out.
//
// Threading: one internal thread owns the ZeroMQ socket and is the store's only writer.
// The `on_stored` callback runs on that thread once a batch is durable (just before its
// acknowledgement is sent).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "flowgate/common/status.h"
#include "flowgate/storage/flow_store.h"

namespace flowgate::gateway {

struct AgentListenerOptions {
  // ZeroMQ endpoint to bind, e.g. "tcp://0.0.0.0:7151"; "tcp://127.0.0.1:*" picks a port.
  // REQUIRED.
  std::string endpoint;
  // Frames larger than this are refused (ACK_STATUS_TOO_LARGE). Default: 64 MiB.
  size_t max_frame_bytes = 64u << 20;
};

// Why batches were refused; each is counted.
struct AgentListenerStats {
  uint64_t frames_received = 0;
  uint64_t batches_stored = 0;
  uint64_t batches_duplicate = 0;
  uint64_t events_stored = 0;
  uint64_t rejected_malformed = 0;
  uint64_t rejected_version = 0;
  uint64_t rejected_too_large = 0;
  uint64_t store_failures = 0;
};

class AgentListener {
 public:
  using StoredCallback = std::function<void(const std::vector<v1::StoredEvent>&)>;

  // Binds the endpoint (failing with a message naming it) and starts the thread.
  static Result<std::unique_ptr<AgentListener>> Create(AgentListenerOptions options,
                                                       storage::FlowStore& store,
                                                       StoredCallback on_stored);
  virtual ~AgentListener() = default;

  // The endpoint actually bound (with the port chosen for "*").
  virtual const std::string& bound_endpoint() const = 0;
  virtual AgentListenerStats stats() const = 0;
  // Stops receiving and joins the thread. Idempotent; the destructor calls it.
  virtual void Stop() = 0;
};

}  // namespace flowgate::gateway
