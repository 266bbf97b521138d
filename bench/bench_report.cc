#include "bench_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>

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

}  // namespace flowgate::bench
