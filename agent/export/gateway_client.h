// Delivers an agent's events to its gateway over ZeroMQ (DEALER -> gateway ROUTER).
//
// Events are batched into Envelopes by count, size and time, numbered per boot, and kept
// in a spool (files in `spool_dir`, so they survive a kill -9 of the agent) until the
// gateway acknowledges them; at most `max_unacked_batches` are in flight, and one is resent
// after a timeout, a reconnect, or when the gateway says an earlier one is still due. The
// gateway applies each (agent, boot, sequence) once and in order, so a resend never
// duplicates data. Each envelope carries its boot's resend floor (the lowest sequence the
// spool still holds): when the spool overflows, the oldest batches go, their events are
// counted as dropped, and the floor tells the gateway it may skip them. Batches left in the
// spool by an earlier run are resent with their original boot id and sequence.
//
// Failover: several gateways of one cluster may be given (`endpoint`, then
// `fallback_endpoints`). The client talks to one at a time, never to all through one DEALER
// (which would deal batches round-robin across them and break the per-boot order the
// gateway applies). When the current gateway has acknowledged nothing for
// `failover_after_ms` while batches wait (sent and unacknowledged, or not sendable for want
// of a connection), the client drops the connection, connects to the next endpoint in the
// list (wrapping), and resends every batch it holds in sequence order, each with its
// original boot id and sequence. The first batch of a boot it sends there is its lowest
// held one, so its resend floor equals its sequence: a gateway that never saw this boot
// (one with a store of its own) applies it past the gap and counts the gap; one that shares
// the store sees the mark and acknowledges what it applied before as duplicates. Nothing
// is lost either way; with stores of their own, a batch the old gateway stored but whose
// ack died with it is stored by both (the agent cannot tell it from a lost one). Any ack
// but "store unavailable" counts as a sign of life; the clock also restarts while the
// spool is empty and on each failover, so with every gateway down the client moves on to
// the next one every `failover_after_ms`. With one endpoint there is no failover: the
// socket reconnects to it forever, as before.
//
// Threading: one internal thread owns the ZeroMQ context and socket. Emit() and Flush()
// may be called from any one other thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "export/event_sink.h"

namespace flowgate::agent {

struct GatewayClientOptions {
  // ZeroMQ endpoint of the gateway's agent listener, e.g. "tcp://gw:7151". REQUIRED.
  std::string endpoint;
  // Gateways of the same cluster to fail over to, in turn after `endpoint` (see the top of
  // this file). They share the gateway's CURVE key. Default: none.
  std::vector<std::string> fallback_endpoints;
  // Fail over when the current gateway acknowledged nothing for this long while batches
  // wait. Only with `fallback_endpoints`. Default: 10000 ms (two ack timeouts).
  uint32_t failover_after_ms = 10'000;
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
  // Directory of the on-disk spool (created if missing); batches left there by an earlier
  // run are resent first. Default: none (the spool is in memory only).
  std::string spool_dir;
  // Bytes of unacknowledged batches kept at most. When a new batch does not fit, the oldest
  // are dropped and counted (events_dropped), unless block_when_full. Default: 256 MiB.
  uint64_t spool_max_bytes = 256u << 20;
  // Compress each batch with zstd (worth it on slow WAN links). Default: false.
  bool compress = false;
  // CURVE: the gateway's public key and this agent's key pair (Z85). All three, or none
  // for plain text (which the caller must have been asked for explicitly). Default: none.
  std::string curve_server_key;
  std::string curve_public_key;
  std::string curve_secret_key;
  // Events waiting to be batched, at most. Default: 262144.
  uint32_t max_queued_events = 262144;
  // When the queue or spool is full: wait (offline files: nothing is lost by waiting) or
  // drop and count (live capture must never stall). Default: false (drop).
  bool block_when_full = false;
};

struct GatewayClientStats {
  uint64_t batches_sent = 0;
  uint64_t batches_acked = 0;
  uint64_t batches_resent = 0;
  uint64_t batches_rejected = 0;  // refused by the gateway as malformed/too large/unsupported
  uint64_t events_rejected = 0;   // the events of those batches: lost
  std::string last_rejection;     // the gateway's reason for the latest refusal
  uint64_t events_sent = 0;
  uint64_t events_acked = 0;
  uint64_t queue_dropped = 0;
  uint64_t unacked_batches = 0;
  uint64_t events_dropped = 0;  // lost because the spool was full (oldest first)
  uint64_t spool_bytes = 0;     // bytes of batches held (sent or not) awaiting an ack
  uint64_t spool_batches = 0;
  uint64_t spool_restored = 0;        // batches found in the spool at start (an earlier run's)
  uint64_t spool_errors = 0;          // spool files that could not be written, read or removed
  uint64_t batches_out_of_order = 0;  // acks saying an earlier batch was still due
  uint64_t failovers = 0;             // moves to the next gateway (see the top of this file)
  std::string gateway;                // the endpoint of the gateway talked to now
};

class GatewayClient final : public EventSink {
 public:
  // Validates the endpoints (a malformed one fails here with a message naming it) and
  // starts the delivery thread. An unreachable gateway is not an error here: delivery
  // waits for it, and Flush reports what was not delivered.
  static Result<std::unique_ptr<GatewayClient>> Create(GatewayClientOptions options);
  ~GatewayClient() override;

  // Serializes `event` at once (the caller may reuse it) and queues its bytes for the next
  // batch; when max_queued_events are waiting, drops it (counted) or, with
  // block_when_full, waits for room.
  void Emit(const v1::Event& event) override;
  // Sends what is queued at once and waits until the gateway acknowledged everything
  // emitted so far and every batch restored from the spool, or `timeout_ms` passed
  // (DeadlineExceeded naming the gateway, or all of them when there are several).
  Status Flush(uint64_t timeout_ms) override;

  GatewayClientStats stats() const;
  // Send-to-acknowledgement times (microseconds, from the batch's latest send) of batches
  // acknowledged since the last call; at most 1,048,576 are kept. Thread-safe.
  std::vector<uint32_t> TakeAckLatenciesUs();

 private:
  class Impl;
  explicit GatewayClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace flowgate::agent
