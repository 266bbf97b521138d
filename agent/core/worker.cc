#include "core/worker.h"

#include <chrono>

namespace flowgate::agent {
namespace {

constexpr uint64_t kExpiryPeriodMs = 1000;
constexpr auto kPollTimeout = std::chrono::milliseconds(200);
// Packets taken from the queue at a time: enough to make its lock cheap per packet, few
// enough that their slots stay in cache.
constexpr size_t kPopBatch = 64;

uint64_t WallClockMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

void AddStats(const v1::FlowTableStats& from, v1::FlowTableStats* to) {
  to->set_active(to->active() + from.active());
  to->set_created(to->created() + from.created());
  to->set_purged(to->purged() + from.purged());
  to->set_evicted(to->evicted() + from.evicted());
  to->set_detected(to->detected() + from.detected());
  to->set_guessed(to->guessed() + from.guessed());
}

}  // namespace

Worker::Worker(const WorkerOptions& options, const LocalNetworks& local_networks,
               std::unique_ptr<classify::NdpiModule> ndpi, EventSink& sink)
    : options_(options), ndpi_(std::move(ndpi)), queue_(options.queue_capacity) {
  // One table per interface: each runs on its own capture's clock, so one file's packet
  // time never expires another file's flows.
  for (size_t i = 0; i < options_.table.interfaces.size(); ++i) {
    FlowTableOptions table_options = options_.table;
    table_options.interfaces = {options_.table.interfaces[i]};
    tables_.push_back(
        Table{std::make_unique<FlowTable>(table_options, local_networks, *ndpi_, sink)});
  }
}

void Worker::Run() {
  std::vector<QueuedPacket> batch(kPopBatch);
  while (true) {
    size_t count = 0;
    const PacketQueue::PopResult result = queue_.Pop(batch, &count, kPollTimeout);
    if (result == PacketQueue::PopResult::kClosed) break;
    for (size_t i = 0; i < count; ++i) {
      // The next packet's index slot is fetched while this one is handled: otherwise
      // waiting for it is a good part of finding a flow.
      if (i + 1 < count) Prefetch(batch[i + 1]);
      Handle(batch[i]);
    }
    if (options_.live) {
      // A quiet interface still has flows to expire and stats to send.
      const uint64_t now_ms = WallClockMs();
      for (Table& table : tables_) RunTimers(table, now_ms);
    }
  }
  for (Table& table : tables_) table.flows->PurgeAll(v1::PURGE_REASON_TERMINATED);
  PublishStats();
}

void Worker::Prefetch(const QueuedPacket& item) const {
  if (item.interface_index < tables_.size())
    tables_[item.interface_index].flows->Prefetch(item.flow);
}

void Worker::Handle(const QueuedPacket& item) {
  if (item.interface_index >= tables_.size()) return;
  Table& table = tables_[item.interface_index];
  table.flows->OnPacket(item.packet, item.flow, item.time_us, item.wire_length);
  RunTimers(table, item.time_us / 1000);
}

void Worker::RunTimers(Table& table, uint64_t now_ms) {
  if (table.next_expiry_ms == 0) {
    table.next_expiry_ms = now_ms + kExpiryPeriodMs;
    table.next_update_ms = now_ms + options_.update_interval_ms;
    return;
  }
  if (now_ms >= table.next_expiry_ms) {
    table.flows->ExpireIdle(now_ms);
    table.next_expiry_ms = now_ms + kExpiryPeriodMs;
    PublishStats();
  }
  if (now_ms >= table.next_update_ms) {
    table.flows->EmitStats();
    table.next_update_ms = now_ms + options_.update_interval_ms;
  }
}

void Worker::PublishStats() {
  v1::FlowTableStats total;
  for (const Table& table : tables_) AddStats(table.flows->stats(), &total);
  std::lock_guard lock(stats_mutex_);
  stats_ = std::move(total);
}

v1::FlowTableStats Worker::Stats() const {
  std::lock_guard lock(stats_mutex_);
  return stats_;
}

}  // namespace flowgate::agent
