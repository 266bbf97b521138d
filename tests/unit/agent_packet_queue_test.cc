// The bounded hand-off from capture threads to a worker.
#include "core/packet_queue.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

namespace flowgate::agent {
namespace {

using std::chrono::milliseconds;

// A decoded packet whose pointers point into `bytes` (as the decoder's do into a frame).
capture::DecodedPacket PacketOver(std::vector<uint8_t>& bytes) {
  capture::DecodedPacket packet;
  packet.l3 = bytes.data();
  packet.l3_length = bytes.size();
  packet.l4_payload = bytes.data() + 2;
  packet.l4_payload_length = bytes.size() - 2;
  packet.ip_version = 4;
  return packet;
}

// Pushes a copy of `packet` as a capture thread does: copied into an item of its own, then
// swapped into the queue.
bool PushCopy(PacketQueue& queue, const capture::DecodedPacket& packet, const PacketFlow& flow,
              uint64_t time_us, uint32_t wire_length, uint8_t interface_index, bool block) {
  QueuedPacket item;
  item.Assign(packet, flow, time_us, wire_length, interface_index);
  return queue.Push(&item, block);
}

// Pops into a batch of one.
PacketQueue::PopResult PopOne(PacketQueue& queue, QueuedPacket* out, milliseconds timeout) {
  size_t count = 0;
  const PacketQueue::PopResult result = queue.Pop(std::span(out, 1), &count, timeout);
  EXPECT_EQ(count, result == PacketQueue::PopResult::kPackets ? 1u : 0u);
  return result;
}

TEST(PacketQueueTest, CopiesPacketsAndHandsThemOutInOrder) {
  PacketQueue queue(4);
  std::vector<uint8_t> frame = {1, 2, 3, 4};
  PacketFlow flow;
  flow.hash = 0x1234;  // the worker's table takes the capture thread's flow as it is
  flow.sender_is_lower = false;
  ASSERT_TRUE(PushCopy(queue, PacketOver(frame), flow, 10, 60, 0, /*block=*/false));
  frame = {5, 6, 7, 8};  // the capture reuses its buffer: the queued copy must not change
  ASSERT_TRUE(PushCopy(queue, PacketOver(frame), PacketFlow{}, 20, 70, 1, /*block=*/false));

  QueuedPacket out;
  ASSERT_EQ(PopOne(queue, &out, milliseconds(0)), PacketQueue::PopResult::kPackets);
  EXPECT_EQ(out.bytes, (std::vector<uint8_t>{1, 2, 3, 4}));
  EXPECT_EQ(out.packet.l3, out.bytes.data()) << "decoded fields point into the copy";
  EXPECT_EQ(out.packet.l4_payload, out.bytes.data() + 2);
  EXPECT_EQ(out.time_us, 10u);
  EXPECT_EQ(out.wire_length, 60u);
  EXPECT_EQ(out.flow.hash, 0x1234u);
  EXPECT_FALSE(out.flow.sender_is_lower);
  ASSERT_EQ(PopOne(queue, &out, milliseconds(0)), PacketQueue::PopResult::kPackets);
  EXPECT_EQ(out.bytes, (std::vector<uint8_t>{5, 6, 7, 8}));
  EXPECT_EQ(out.interface_index, 1u);
  EXPECT_EQ(PopOne(queue, &out, milliseconds(1)), PacketQueue::PopResult::kTimeout);
}

TEST(PacketQueueTest, FullQueueRefusesNonBlockingPushesUntilThereIsRoom) {
  PacketQueue queue(2);
  std::vector<uint8_t> frame = {1, 2, 3};
  int refused = 0;
  for (int i = 0; i < 5; ++i)
    refused += !PushCopy(queue, PacketOver(frame), PacketFlow{}, i, 3, 0, false);
  EXPECT_EQ(refused, 3) << "a capacity of 2 takes 2 of 5; the caller counts 3 drops";

  QueuedPacket out;
  ASSERT_EQ(PopOne(queue, &out, milliseconds(0)), PacketQueue::PopResult::kPackets);
  EXPECT_EQ(out.time_us, 0u) << "the oldest packets are kept, the newest refused";
  EXPECT_TRUE(PushCopy(queue, PacketOver(frame), PacketFlow{}, 9, 3, 0, false))
      << "room again after a pop";
}

TEST(PacketQueueTest, BlockingPushWaitsForTheConsumer) {
  PacketQueue queue(1);
  std::vector<uint8_t> frame = {1};
  ASSERT_TRUE(PushCopy(queue, PacketOver(frame), PacketFlow{}, 1, 1, 0, false));
  bool pushed = false;
  std::thread producer([&] {
    std::vector<uint8_t> second = {2};
    pushed = PushCopy(queue, PacketOver(second), PacketFlow{}, 2, 1, 0,
                      /*block=*/true);  // waits for room
  });
  QueuedPacket out;
  ASSERT_EQ(PopOne(queue, &out, milliseconds(5'000)), PacketQueue::PopResult::kPackets);
  EXPECT_EQ(out.time_us, 1u);
  ASSERT_EQ(PopOne(queue, &out, milliseconds(5'000)), PacketQueue::PopResult::kPackets)
      << "the blocked producer's packet arrives once there is room";
  EXPECT_EQ(out.time_us, 2u);
  producer.join();
  EXPECT_TRUE(pushed);
}

TEST(PacketQueueTest, PopTakesWhatWaitsUpToTheBatchAndMakesRoomForEveryBlockedProducer) {
  PacketQueue queue(2);
  std::vector<uint8_t> frame = {1};
  ASSERT_TRUE(PushCopy(queue, PacketOver(frame), PacketFlow{}, 1, 1, 0, false));
  ASSERT_TRUE(PushCopy(queue, PacketOver(frame), PacketFlow{}, 2, 1, 0, false));
  // Two producers wait on the full queue; one pop of two must let both in.
  std::thread third(
      [&] { EXPECT_TRUE(PushCopy(queue, PacketOver(frame), PacketFlow{}, 3, 1, 0, true)); });
  std::thread fourth(
      [&] { EXPECT_TRUE(PushCopy(queue, PacketOver(frame), PacketFlow{}, 4, 1, 0, true)); });

  std::vector<QueuedPacket> batch(3);
  size_t count = 0;
  ASSERT_EQ(queue.Pop(batch, &count, milliseconds(5'000)), PacketQueue::PopResult::kPackets);
  ASSERT_EQ(count, 2u) << "both waiting packets, in one batch";
  EXPECT_EQ(batch[0].time_us, 1u);
  EXPECT_EQ(batch[1].time_us, 2u);
  size_t later = 0;
  while (later < 2) {
    ASSERT_EQ(queue.Pop(batch, &count, milliseconds(5'000)), PacketQueue::PopResult::kPackets)
        << "a producer was left waiting for room the pop made";
    later += count;
  }
  third.join();
  fourth.join();
}

TEST(PacketQueueTest, CloseDrainsThenReportsClosedAndWakesBlockedProducers) {
  PacketQueue queue(1);
  std::vector<uint8_t> frame = {1};
  ASSERT_TRUE(PushCopy(queue, PacketOver(frame), PacketFlow{}, 1, 1, 0, false));
  bool pushed = true;
  std::thread producer(
      [&] { pushed = PushCopy(queue, PacketOver(frame), PacketFlow{}, 2, 1, 0, true); });
  queue.Close();
  producer.join();
  EXPECT_FALSE(pushed) << "a producer blocked on a full queue gives up when it closes";
  EXPECT_FALSE(PushCopy(queue, PacketOver(frame), PacketFlow{}, 3, 1, 0, false));

  QueuedPacket out;
  ASSERT_EQ(PopOne(queue, &out, milliseconds(5'000)), PacketQueue::PopResult::kPackets);
  EXPECT_EQ(out.time_us, 1u) << "what was queued before Close() is still handed out";
  EXPECT_EQ(PopOne(queue, &out, milliseconds(5'000)), PacketQueue::PopResult::kClosed);
}

}  // namespace
}  // namespace flowgate::agent
