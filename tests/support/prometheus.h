// What a Prometheus server does with a scrape, for tests: an HTTP GET over a real TCP
// connection, and a strict reading of the text exposition format (version 0.0.4).
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>

namespace flowgate::testing {

struct HttpResponse {
  int status = 0;
  std::string content_type;
  std::string body;
};

// GET `path` from "HOST:PORT" (numeric IPv4), HTTP/1.0. nullopt when the connection
// fails or no full answer arrives within `timeout`.
std::optional<HttpResponse> HttpGet(const std::string& address, const std::string& path,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(10));

// A scrape read as Prometheus would: every sample keyed by its series as written,
// `name{label="value",...}` (or `name`), with its value.
struct Scrape {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;  // family name -> "counter" | "gauge" | ...

  // The value of series `series`, or nullopt.
  std::optional<double> Get(const std::string& series) const;
  // The sum over every series of family `name` (0 when there is none).
  double Sum(const std::string& name) const;
};

// Parses `text` strictly: each family's # HELP and # TYPE come before its samples and only
// once, samples of a family are contiguous and carry its name (histogram/summary suffixes
// aside), names and label names are valid, label values are properly quoted and escaped,
// values are numbers (or NaN/+Inf/-Inf), no series repeats, and the text ends with a
// newline. Returns the scrape, or the first problem as "line N: what" in *error.
std::optional<Scrape> ParsePrometheusText(const std::string& text, std::string* error);

// "HOST:PORT" from a daemon's log line "metrics at http://HOST:PORT/metrics" ("" if none).
std::string MetricsAddressFromLog(const std::string& log);

// GET /metrics from `address` as Prometheus would, checking status, content type and the
// text strictly. nullopt with the reason in *error on any problem.
std::optional<Scrape> ScrapeMetrics(const std::string& address, std::string* error);

}  // namespace flowgate::testing
