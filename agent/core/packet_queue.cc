#include "core/packet_queue.h"

#include <utility>

namespace flowgate::agent {

PacketQueue::PacketQueue(size_t capacity) : slots_(capacity) {}

bool PacketQueue::Push(const capture::DecodedPacket& packet, const PacketFlow& flow,
                       uint64_t time_us, uint32_t wire_length, uint8_t interface_index,
                       bool block) {
  std::unique_lock lock(mutex_);
  if (block) not_full_.wait(lock, [&] { return closed_ || size_ < slots_.size(); });
  if (closed_ || size_ == slots_.size()) return false;
  QueuedPacket& slot = slots_[(head_ + size_) % slots_.size()];
  slot.bytes.assign(packet.l3, packet.l3 + packet.l3_length);
  slot.packet = packet;
  // Re-point the decoded fields at the copy: the capture's frame buffer is reused.
  slot.packet.l3 = slot.bytes.data();
  if (packet.l4_payload != nullptr) {
    slot.packet.l4_payload = slot.bytes.data() + (packet.l4_payload - packet.l3);
  }
  slot.flow = flow;
  slot.time_us = time_us;
  slot.wire_length = wire_length;
  slot.interface_index = interface_index;
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
