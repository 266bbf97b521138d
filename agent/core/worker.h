// A DPI worker: one thread, its own nDPI module and one flow table per capture interface.
// Capture threads hash every packet symmetrically to a worker, so a flow's packets all meet
// here and no flow state is shared between threads.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "classify/ndpi_classifier.h"
#include "core/flow_table.h"
#include "core/packet_queue.h"

namespace flowgate::agent {

struct WorkerOptions {
  // Flow-table settings; `interfaces` lists every capture, one table each. REQUIRED.
  FlowTableOptions table;
  // Interval of flow_stats. Default: 15 s.
  uint64_t update_interval_ms = 15'000;
  // Live capture: timers also run on the wall clock while no packets arrive. Default: false
  // (capture files run on packet time only, so they replay the same events every time).
  bool live = false;
  // Packets waiting for this worker at most. Default: 8192.
  size_t queue_capacity = 8192;
};

class Worker {
 public:
  // `sink` must be safe to call from this worker's thread while others use it too.
  Worker(const WorkerOptions& options, const LocalNetworks& local_networks,
         std::unique_ptr<classify::NdpiModule> ndpi, EventSink& sink);

  PacketQueue& queue() { return queue_; }
  // The thread body: handles queued packets until the queue is closed and drained, then
  // purges every flow as terminated.
  void Run();
  // Flow-table counters of all this worker's tables. Thread-safe.
  v1::FlowTableStats Stats() const;

 private:
  struct Table {
    std::unique_ptr<FlowTable> flows;
    uint64_t next_expiry_ms = 0;  // 0: no packet yet
    uint64_t next_update_ms = 0;
  };
  void Prefetch(const QueuedPacket& item) const;
  void Handle(const QueuedPacket& item);
  void RunTimers(Table& table, uint64_t now_ms);
  void PublishStats();

  WorkerOptions options_;
  std::unique_ptr<classify::NdpiModule> ndpi_;
  std::vector<Table> tables_;
  PacketQueue queue_;
  mutable std::mutex stats_mutex_;
  v1::FlowTableStats stats_;  // guarded by stats_mutex_; a copy for other threads
};

}  // namespace flowgate::agent
