// The bounded hand-off from capture threads to a worker: decoded packets, copied into
// reusable slots so that steady-state capture allocates nothing.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "capture/packet_decoder.h"
#include "core/flow_key.h"

namespace flowgate::agent {

// One packet on its way to a worker. `packet`'s pointers point into `bytes`.
struct QueuedPacket {
  capture::DecodedPacket packet;
  PacketFlow flow;             // as the capture thread found it, keyed as interface 0
  std::vector<uint8_t> bytes;  // the innermost IP packet, as nDPI wants it
  uint64_t time_us = 0;
  uint32_t wire_length = 0;
  uint8_t interface_index = 0;

  // Copies `from`'s IP packet into `bytes` (reusing its buffer) and points the decoded
  // fields at the copy: the capture's frame buffer is reused for the next frame.
  void Assign(const capture::DecodedPacket& from, const PacketFlow& from_flow,
              uint64_t from_time_us, uint32_t from_wire_length, uint8_t from_interface_index);
};

// Many producers (capture threads), one consumer (the worker). Thread-safe.
class PacketQueue {
 public:
  // REQUIRED: capacity > 0.
  explicit PacketQueue(size_t capacity);

  // Moves *item in by swapping it with a free slot, so that *item gets that slot's old
  // buffers to fill next: the copying (QueuedPacket::Assign) happens outside the lock. When
  // the queue is full, waits for room if `block` (capture files: nothing is lost by
  // waiting) or returns false (live capture: the caller counts a drop). Returns false
  // after Close().
  bool Push(QueuedPacket* item, bool block);

  enum class PopResult { kPackets, kTimeout, kClosed };
  // Moves the oldest packets, as many as wait and fit, into out[0, *count) (swapping
  // buffers, so both sides keep theirs), waiting at most `timeout` for the first: one lock
  // and one wake-up of the producers for all of them, not one per packet. kClosed once
  // Close() was called and the queue is empty.
  PopResult Pop(std::span<QueuedPacket> out, size_t* count, std::chrono::milliseconds timeout);

  // No more pushes; Pop() drains what is left, then reports kClosed. Wakes blocked pushers.
  void Close();

  // Packets waiting now, and the most that fit (for metrics).
  size_t depth() const;
  size_t capacity() const { return slots_.size(); }

 private:
  mutable std::mutex mutex_;
  std::condition_variable not_empty_, not_full_;
  std::vector<QueuedPacket> slots_;
  size_t head_ = 0, size_ = 0;
  bool closed_ = false;
};

}  // namespace flowgate::agent
