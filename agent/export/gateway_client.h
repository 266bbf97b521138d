// Delivers an agent's events to its gateway over ZeroMQ (DEALER -> gateway ROUTER).
//
// Events are batched into Envelopes by count, size and time, numbered per boot, and kept
// until the gateway acknowledges them; an unacknowledged batch is resent after a timeout
// (and so after a reconnect). The gateway applies each (agent, boot, sequence) once, so a
// resend never duplicates data.
//
// Threading: one internal thread owns the ZeroMQ context and socket. Emit() and Flush()
// may be called from any one other thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "export/event_sink.h"

namespace flowgate::agent {

struct GatewayClientOptions {
  // ZeroMQ endpoint of the gateway's agent listener, e.g. "tcp://gw:7151". REQUIRED.
  std::string endpoint;
  // Who we are; boot_id and id are REQUIRED.
  v1::AgentIdentity identity;
  // A batch is sent when it holds this many events... Default: 512.
  uint32_t batch_max_events = 512;
  // ...or this many bytes of serialized events... Default: 1 MiB.
  uint32_t batch_max_bytes = 1u << 20;
  // ...or when its oldest event has waited this long. Default: 50 ms.
  uint32_t batch_linger_ms = 50;
  // Batches sent but not yet acknowledged, at most. Default: 64.
  uint32_t max_unacked_batches = 64;
  // Resend a batch that has not been acknowledged within this time. Default: 5000 ms.
  uint32_t ack_timeout_ms = 5000;
  // Events waiting to be batched, at most. Default: 262144.
  uint32_t max_queued_events = 262144;
  // When the queue is full: wait (offline files: nothing is lost by waiting) or drop the
  // event and count it (live capture must never stall). Default: false (drop).
  bool block_when_full = false;
};

struct GatewayClientStats {
  uint64_t batches_sent = 0;
  uint64_t batches_acked = 0;
  uint64_t batches_resent = 0;
  uint64_t batches_rejected = 0;  // refused by the gateway as malformed/too large/unsupported
  uint64_t events_sent = 0;
  uint64_t events_acked = 0;
  uint64_t queue_dropped = 0;
  uint64_t unacked_batches = 0;
};

class GatewayClient final : public EventSink {
 public:
  // Validates the endpoint (a malformed one fails here with a message naming it) and
  // starts the delivery thread. An unreachable gateway is not an error here: delivery
  // waits for it, and Flush reports what was not delivered.
  static Result<std::unique_ptr<GatewayClient>> Create(GatewayClientOptions options);
  ~GatewayClient() override;

  void Emit(const v1::Event& event) override;
  // Sends what is queued at once and waits until the gateway acknowledged everything
  // emitted so far, or `timeout_ms` passed (DeadlineExceeded naming the gateway).
  Status Flush(uint64_t timeout_ms) override;

  GatewayClientStats stats() const;

 private:
  class Impl;
  explicit GatewayClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace flowgate::agent
