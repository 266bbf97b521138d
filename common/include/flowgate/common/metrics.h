// Prometheus metrics for both daemons: a writer of the text exposition format (version
// 0.0.4) and the HTTP endpoint that serves it (`--metrics HOST:PORT`, libmicrohttpd).
// Each daemon renders its numbers on every scrape from the counters it already keeps, so
// the endpoint holds no state of its own and costs nothing between scrapes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "flowgate/common/status.h"

namespace flowgate {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

enum class MetricType { kCounter, kGauge };

// Builds one scrape's text. Every family is declared once with Family() and then gets its
// samples, so a family's samples stay together as the format requires.
class PrometheusText {
 public:
  // Starts family `name` (REQUIRED: a valid metric name, not declared before in this text):
  // its # HELP and # TYPE lines.
  void Family(std::string_view name, MetricType type, std::string_view help);
  // A sample of the family last declared.
  void Sample(double value, const MetricLabels& labels = {});
  // A family with one unlabelled sample.
  void Counter(std::string_view name, std::string_view help, double value);
  void Gauge(std::string_view name, std::string_view help, double value);

  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::string family_;
};

// The process's own figures under the names Prometheus client libraries use
// (process_cpu_seconds_total, process_resident_memory_bytes, ...), plus
// `<prefix>_build_info{version}` and `<prefix>_uptime_seconds`.
void AppendProcessMetrics(std::string_view prefix, double uptime_s, PrometheusText& out);

// Serves GET /metrics from its own thread, calling `render` for each scrape (so `render`
// must be thread-safe with what the daemon does meanwhile).
class MetricsServer {
 public:
  using Render = std::function<std::string()>;

  // Binds `listen` ("IPV4:PORT" or "[IPV6]:PORT"; port 0 picks one). Fails with a message
  // naming the address.
  static Result<std::unique_ptr<MetricsServer>> Start(const std::string& listen, Render render);
  virtual ~MetricsServer() = default;

  // The address actually bound, e.g. "127.0.0.1:9151".
  virtual std::string bound_address() const = 0;
};

}  // namespace flowgate
