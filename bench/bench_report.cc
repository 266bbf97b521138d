#include "bench_report.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <thread>
#include <vector>

namespace flowgate::bench {
namespace {
std::string Number(std::optional<double> v) {
  if (!v) return "null";
  char text[64];
  std::snprintf(text, sizeof text, "%.6g", *v);
  return text;
}
}  // namespace

void Report(const Figure& f) {
  const bool has_baseline = !f.baseline.empty();
  std::printf(
      "{\"bench\": \"%s\", \"value\": %s, \"unit\": \"%s\", \"better\": \"%s\", \"target\": %s, "
      "\"baseline\": %s, \"baseline_value\": %s, \"ratio\": %s, \"target_ratio\": %s}\n",
      f.name.c_str(), Number(f.value).c_str(), f.unit.c_str(),
      f.higher_is_better ? "higher" : "lower", Number(f.target).c_str(),
      has_baseline ? ("\"" + f.baseline + "\"").c_str() : "null",
      has_baseline ? Number(f.baseline_value).c_str() : "null",
      has_baseline && f.baseline_value != 0 ? Number(f.value / f.baseline_value).c_str() : "null",
      Number(f.target_ratio).c_str());
  std::fflush(stdout);
}

double Median(std::vector<double> values) { return Percentile(std::move(values), 50); }

double Percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  const auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(values.size())));
  return values[std::min(values.size() - 1, rank == 0 ? 0 : rank - 1)];
}

namespace {

double CpuClockSeconds(clockid_t clock) {
  timespec now{};
  ::clock_gettime(clock, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
}

}  // namespace

double ThreadCpuSeconds() { return CpuClockSeconds(CLOCK_THREAD_CPUTIME_ID); }
double ProcessCpuSeconds() { return CpuClockSeconds(CLOCK_PROCESS_CPUTIME_ID); }

HostSlowSpells MeasureHostSlowSpells(double seconds) {
  using Clock = std::chrono::steady_clock;
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::vector<Clock::duration>> units(threads);
  std::atomic<uint64_t> sink{0};
  const Clock::time_point end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                   std::chrono::duration<double>(seconds));
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&mine = units[t], &sink, end] {
      constexpr int kStepsPerUnit = 500'000;  // about 1 ms of dependent multiply-adds
      uint64_t x = 1;
      for (Clock::time_point start = Clock::now(); start < end;) {
        for (int i = 0; i < kStepsPerUnit; ++i)
          x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        const Clock::time_point now = Clock::now();
        mine.push_back(now - start);
        start = now;
      }
      sink += x;
    });
  }
  for (std::thread& worker : workers) worker.join();
  HostSlowSpells spells;
  double lost_s = 0, total_s = 0;
  for (const std::vector<Clock::duration>& mine : units) {
    if (mine.empty()) continue;
    const Clock::duration fastest = *std::min_element(mine.begin(), mine.end());
    Clock::duration spell{};
    for (const Clock::duration unit : mine) {
      total_s += std::chrono::duration<double>(unit).count();
      if (unit * 2 >= fastest * 3) {
        spell += unit - fastest;
        lost_s += std::chrono::duration<double>(unit - fastest).count();
        spells.longest_lost_ms = std::max(spells.longest_lost_ms,
                                          std::chrono::duration<double, std::milli>(spell).count());
      } else {
        spell = {};
      }
    }
  }
  if (total_s > 0) spells.lost_fraction = lost_s / total_s;
  return spells;
}

}  // namespace flowgate::bench
