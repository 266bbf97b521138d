#include "core/packet_queue.h"

#include <utility>

namespace flowgate::agent {

PacketQueue::PacketQueue(size_t capacity) : slots_(capacity) {}

void QueuedPacket::Assign(const capture::DecodedPacket& from, const PacketFlow& from_flow,
                          uint64_t from_time_us, uint32_t from_wire_length,
                          uint8_t from_interface_index) {
  bytes.assign(from.l3, from.l3 + from.l3_length);
  packet = from;
  packet.l3 = bytes.data();
  if (from.l4_payload != nullptr) packet.l4_payload = bytes.data() + (from.l4_payload - from.l3);
  flow = from_flow;
  time_us = from_time_us;
  wire_length = from_wire_length;
  interface_index = from_interface_index;
}

bool PacketQueue::Push(QueuedPacket* item, bool block) {
  std::unique_lock lock(mutex_);
  if (block) not_full_.wait(lock, [&] { return closed_ || size_ < slots_.size(); });
  if (closed_ || size_ == slots_.size()) return false;
  std::swap(*item, slots_[(head_ + size_) % slots_.size()]);
  ++size_;
  lock.unlock();
  not_empty_.notify_one();
  return true;
}

PacketQueue::PopResult PacketQueue::Pop(std::span<QueuedPacket> out, size_t* count,
                                        std::chrono::milliseconds timeout) {
  *count = 0;
  std::unique_lock lock(mutex_);
  if (!not_empty_.wait_for(lock, timeout, [&] { return closed_ || size_ > 0; })) {
    return PopResult::kTimeout;
  }
  if (size_ == 0) return PopResult::kClosed;
  while (*count < out.size() && size_ > 0) {
    std::swap(out[(*count)++], slots_[head_]);
    head_ = (head_ + 1) % slots_.size();
    --size_;
  }
  lock.unlock();
  not_full_.notify_all();  // room for as many pushers as packets taken
  return PopResult::kPackets;
}

size_t PacketQueue::depth() const {
  std::lock_guard lock(mutex_);
  return size_;
}

void PacketQueue::Close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  not_empty_.notify_all();
  not_full_.notify_all();
}

}  // namespace flowgate::agent
