// Retention: keeps a FlowStore within an age and a disk-size limit by dropping its oldest
// time ranges, continuously, on a background thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "flowgate/common/status.h"
#include "flowgate/storage/flow_store.h"

namespace flowgate::storage {

struct RetentionOptions {
  // Drop data older than this. Default: 0 (keep forever).
  uint64_t max_age_ms = 0;
  // Drop the oldest time ranges while the store's files exceed this. Default: 0 (no cap).
  uint64_t max_disk_bytes = 0;
  // Time between checks. Default: 30 s.
  uint64_t interval_ms = 30'000;
  // Wall clock in ms since the epoch. Default: the system clock.
  std::function<uint64_t()> now_ms;
};

struct RetentionStats {
  uint64_t runs = 0;   // checks done
  uint64_t drops = 0;  // ranges dropped
  uint64_t dropped_events = 0;
  uint64_t dropped_flows = 0;
  uint64_t failures = 0;          // checks that failed (logged)
  uint64_t disk_bytes = 0;        // store size after the last check
  uint64_t retained_from_ms = 0;  // data before this is gone
};

class Retention {
 public:
  // Starts the thread (when a limit is set) over `store`, which must outlive this object.
  Retention(const RetentionOptions& options, FlowStore& store);
  ~Retention();
  Retention(const Retention&) = delete;
  Retention& operator=(const Retention&) = delete;

  // One check: drop by age, then the oldest ranges while over the size cap. Thread-safe
  // (serialised with the thread's own checks).
  [[nodiscard]] Status RunOnce();
  RetentionStats stats() const;
  // Stops and joins the thread. Idempotent.
  void Stop();

 private:
  void Run();
  Status Drop(uint64_t cutoff_ms, const char* why);

  const RetentionOptions options_;
  FlowStore& store_;
  std::mutex run_mutex_;  // one check at a time
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mutex_
  RetentionStats stats_;   // guarded by mutex_
  std::thread thread_;
};

}  // namespace flowgate::storage
