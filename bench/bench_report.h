// How every flowgate benchmark reports: one JSON object per figure on a line of its own,
//   {"bench": NAME, "value": X, "unit": U, "better": "higher"|"lower", "target": T|null,
//    "baseline": NAME|null, "baseline_value": Y|null, "ratio": X/Y|null, "target_ratio": R|null}
// so that a script can compare runs and check targets. Figures are medians of repeats.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace flowgate::bench {

struct Figure {
  std::string name;
  double value = 0;
  std::string unit;
  bool higher_is_better = true;
  std::optional<double> target;  // absolute target for `value`
  std::string baseline;          // name of the figure this one is compared with
  double baseline_value = 0;
  std::optional<double> target_ratio;  // target for value / baseline_value
};

// Prints `figure` as one JSON line on stdout and flushes.
void Report(const Figure& figure);

// The median of `values` (the upper one for an even count). REQUIRED: not empty.
double Median(std::vector<double> values);
// The p-th percentile (0..100) of `values`, nearest rank. REQUIRED: not empty.
double Percentile(std::vector<double> values, double p);

// CPU time the calling thread has used, in seconds (CLOCK_THREAD_CPUTIME_ID): a cost that
// other threads and processes on a shared machine do not inflate the way they do wall time.
double ThreadCpuSeconds();
// CPU time of the whole process (every thread) so far, in seconds.
double ProcessCpuSeconds();

// What the machine itself takes from busy threads: one thread per core repeats a fixed
// piece of arithmetic (about 1 ms at full speed) for `seconds`. On a shared virtual machine
// the same work periodically takes two to five times as long for a few hundred
// milliseconds (the host's other tenants; the thread is not descheduled, just slowed), and
// every latency percentile measured there includes those spells: this is their baseline.
// A spell is a run of units at least 1.5 times slower than the fastest; what it cost is
// the time those units took beyond the fastest. Run it with the machine otherwise quiet.
struct HostSlowSpells {
  double longest_lost_ms = 0;  // the most time one spell cost any thread
  double lost_fraction = 0;    // the share of the threads' time lost in spells
};
HostSlowSpells MeasureHostSlowSpells(double seconds);

}  // namespace flowgate::bench
