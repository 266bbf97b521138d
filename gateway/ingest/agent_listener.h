// Receives agents' batches over ZeroMQ (gateway ROUTER <- agent DEALERs), makes each
// durable in the store, acknowledges it, and hands the stored events on for fan-out.
//
// Threading, a pipeline of three: the socket thread owns the ZeroMQ socket: it takes every
// frame waiting at once and decodes them while the store thread prepares the frames decoded
// before as one group (FlowStore::PrepareBatch: judged, encoded, everything but the write)
// and the commit thread writes the group prepared before that (group commit); the socket
// thread then acknowledges each. The `on_stored` callback runs on the commit thread once a
// batch is durable (before its acknowledgement is sent).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
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
  // The gateway's CURVE key pair (Z85). With it, agents must speak CURVE and their public
  // keys must be on the allow-list; without it (both empty) the listener is plain text,
  // which the caller must have been asked for explicitly. Default: none.
  std::string curve_public_key;
  std::string curve_secret_key;
  // File of allowed agent public keys (see flowgate/common/curve_keys.h). REQUIRED with a
  // key pair; re-read by ReloadAllowList().
  std::string allow_list_file;
  // Agent batches stored together in one store write, at most: enough that one write
  // serves many, few enough that agents get acknowledgements (and send more) while the next
  // group is written. A store whose every write costs a lot whatever its size (ClickHouse:
  // a part on disk per insert) wants more. Default: 16.
  size_t max_group_batches = 16;
  // A write takes every group decoded and waiting (up to 3 x max_group_batches batches)
  // rather than one group's worth: for a store whose writes gain more from being few than
  // from overlapping with the decoding of the next frames (ClickHouse). Default: false, so
  // that decoding, preparing and writing go on at once.
  bool write_all_waiting = false;
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
  // Batches that arrived ahead of an earlier one still due (not stored; the agent resends).
  uint64_t batches_out_of_order = 0;
  // CURVE handshakes refused because the agent's key is not on the allow-list; by key.
  uint64_t rejected_unauthorized = 0;
  std::map<std::string, uint64_t> unauthorized_by_key;
  uint64_t allow_list_size = 0;
  // Refusals per agent id ("unknown" when the frame did not say) and reason ("malformed",
  // "version", "too_large").
  std::map<std::string, std::map<std::string, uint64_t>> rejected_by_agent;
};

class AgentListener {
 public:
  using StoredCallback = std::function<void(const std::vector<v1::StoredEvent>&)>;

  // Reads the allow-list (with a key pair), binds the endpoint (failing with a message
  // naming it) and starts the threads (ingest; the ZAP handler with CURVE).
  static Result<std::unique_ptr<AgentListener>> Create(AgentListenerOptions options,
                                                       storage::FlowStore& store,
                                                       StoredCallback on_stored);
  virtual ~AgentListener() = default;

  // The endpoint actually bound (with the port chosen for "*").
  virtual const std::string& bound_endpoint() const = 0;
  virtual AgentListenerStats stats() const = 0;
  // Re-reads the allow-list file (on SIGHUP). On error the previous list stays in force and
  // the error is returned. New handshakes see the new list; agents already connected stay.
  // Thread-safe.
  virtual Status ReloadAllowList() = 0;
  // Stops receiving and joins the thread. Idempotent; the destructor calls it.
  virtual void Stop() = 0;
};

}  // namespace flowgate::gateway
