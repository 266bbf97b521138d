// The Prometheus text writer: exact bytes, since scrapers are strict about them.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "flowgate/common/metrics.h"

namespace flowgate {
namespace {

TEST(PrometheusText, FamiliesCarryHelpTypeAndSamples) {
  PrometheusText out;
  out.Counter("flowgate_events_total", "Events seen", 42);
  out.Family("flowgate_drops_total", MetricType::kCounter, "Drops, by reason");
  out.Sample(1, {{"reason", "kernel"}});
  out.Sample(2, {{"reason", "queue"}, {"interface", "eth0"}});
  out.Gauge("flowgate_lag_seconds", "Lag", 0.25);
  EXPECT_EQ(out.text(),
            "# HELP flowgate_events_total Events seen\n"
            "# TYPE flowgate_events_total counter\n"
            "flowgate_events_total 42\n"
            "# HELP flowgate_drops_total Drops, by reason\n"
            "# TYPE flowgate_drops_total counter\n"
            "flowgate_drops_total{reason=\"kernel\"} 1\n"
            "flowgate_drops_total{reason=\"queue\",interface=\"eth0\"} 2\n"
            "# HELP flowgate_lag_seconds Lag\n"
            "# TYPE flowgate_lag_seconds gauge\n"
            "flowgate_lag_seconds 0.25\n");
}

TEST(PrometheusText, EscapesLabelValuesAndHelp) {
  PrometheusText out;
  out.Family("flowgate_agent_identity", MetricType::kGauge, "Back\\slash and\nnewline");
  out.Sample(1, {{"name", "say \"hi\"\\\n"}});
  EXPECT_EQ(out.text(),
            "# HELP flowgate_agent_identity Back\\\\slash and\\nnewline\n"
            "# TYPE flowgate_agent_identity gauge\n"
            "flowgate_agent_identity{name=\"say \\\"hi\\\"\\\\\\n\"} 1\n");
}

TEST(PrometheusText, ValuesAreWholeOrShortestAndSpecialsAreSpelledOut) {
  PrometheusText out;
  out.Family("m", MetricType::kGauge, "h");
  out.Sample(18446744073709.0);
  out.Sample(0.1, {{"a", "1"}});
  out.Sample(std::numeric_limits<double>::infinity(), {{"a", "2"}});
  out.Sample(-std::numeric_limits<double>::infinity(), {{"a", "3"}});
  out.Sample(std::nan(""), {{"a", "4"}});
  EXPECT_EQ(out.text(),
            "# HELP m h\n# TYPE m gauge\n"
            "m 18446744073709\n"
            "m{a=\"1\"} 0.1\n"
            "m{a=\"2\"} +Inf\n"
            "m{a=\"3\"} -Inf\n"
            "m{a=\"4\"} NaN\n");
}

TEST(PrometheusText, InvalidNamesNeverReachTheText) {
  PrometheusText out;
  out.Family("9bad name", MetricType::kGauge, "h");
  out.Sample(1, {{"bad-label", "v"}});
  EXPECT_EQ(out.text(),
            "# HELP invalid_metric_name h\n# TYPE invalid_metric_name gauge\n"
            "invalid_metric_name{invalid=\"v\"} 1\n");
}

TEST(MetricsServer, RefusesAnAddressItCannotUse) {
  Result<std::unique_ptr<MetricsServer>> server =
      MetricsServer::Start("not-an-address", [] { return std::string(); });
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.status().message().find("metrics address \"not-an-address\" is invalid"),
            std::string::npos)
      << server.status().message();
}

}  // namespace
}  // namespace flowgate
