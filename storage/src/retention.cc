#include "flowgate/storage/retention.h"

#include <algorithm>
#include <chrono>

#include "flowgate/common/log.h"
#include "flowgate/common/thread_name.h"

namespace flowgate::storage {
namespace {

// The size cap drops at least this much history per step, and at most this many steps per
// check, so a check ends even when the cap cannot be met (files the store cannot shrink).
constexpr uint64_t kMinSizeStepMs = 60'000;
constexpr int kMaxSizeSteps = 64;

uint64_t SystemNowMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

Retention::Retention(const RetentionOptions& options, FlowStore& store)
    : options_(options), store_(store) {
  stats_.retained_from_ms = store_.retained_from_ms();
  if (options_.max_age_ms != 0 || options_.max_disk_bytes != 0) {
    thread_ = std::thread([this] {
      NameThisThread("retention");
      Run();
    });
  }
}

Retention::~Retention() { Stop(); }

void Retention::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

RetentionStats Retention::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void Retention::Run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    Status status;
    try {
      status = RunOnce();
    } catch (const std::exception& e) {
      status = Status::Internal(e.what());
    }
    lock.lock();
    if (!status.ok()) {
      ++stats_.failures;
      Log(LogLevel::kWarning, "retention", "check failed: " + status.message());
    }
    wake_.wait_for(lock, std::chrono::milliseconds(options_.interval_ms),
                   [this] { return stopping_; });
  }
}

Status Retention::Drop(uint64_t cutoff_ms, const char* why) {
  Result<DropStats> dropped = store_.DropBefore(cutoff_ms);
  if (!dropped.ok()) return dropped.status();
  std::lock_guard lock(mutex_);
  ++stats_.drops;
  stats_.dropped_events += dropped->events;
  stats_.dropped_flows += dropped->flows;
  stats_.retained_from_ms = store_.retained_from_ms();
  if (dropped->events != 0 || dropped->flows != 0) {
    Log(LogLevel::kInfo, "retention",
        std::string("dropped ") + std::to_string(dropped->events) + " events and " +
            std::to_string(dropped->flows) + " flows before " + std::to_string(cutoff_ms) +
            " ms (" + why + "); totals: " + std::to_string(stats_.dropped_events) + " events, " +
            std::to_string(stats_.dropped_flows) + " flows");
  }
  return Status::Ok();
}

Status Retention::RunOnce() {
  std::lock_guard run(run_mutex_);
  const uint64_t now = options_.now_ms ? options_.now_ms() : SystemNowMs();
  if (options_.max_age_ms != 0 && now > options_.max_age_ms) {
    const uint64_t cutoff = now - options_.max_age_ms;
    Result<uint64_t> oldest = store_.OldestDataMs();
    if (!oldest.ok()) return oldest.status();
    if (*oldest != 0 && *oldest < cutoff) FLOWGATE_RETURN_IF_ERROR(Drop(cutoff, "age"));
  }
  Result<uint64_t> bytes = store_.DiskBytes();
  if (!bytes.ok()) return bytes.status();
  for (int step = 0;
       options_.max_disk_bytes != 0 && *bytes > options_.max_disk_bytes && step < kMaxSizeSteps;
       ++step) {
    Result<uint64_t> oldest = store_.OldestDataMs();
    if (!oldest.ok()) return oldest.status();
    if (*oldest == 0) break;  // nothing left to drop
    // An eighth of the history held, so a store far over its cap converges in a few steps.
    const uint64_t span = now > *oldest ? now - *oldest : 0;
    FLOWGATE_RETURN_IF_ERROR(Drop(*oldest + std::max(kMinSizeStepMs, span / 8), "size cap"));
    bytes = store_.DiskBytes();
    if (!bytes.ok()) return bytes.status();
  }
  std::lock_guard lock(mutex_);
  ++stats_.runs;
  stats_.disk_bytes = *bytes;
  return Status::Ok();
}

}  // namespace flowgate::storage
