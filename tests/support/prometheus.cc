#include "prometheus.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <set>
#include <sstream>

namespace flowgate::testing {
namespace {

bool IsNameChar(char c, bool first, bool allow_colon) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
  if (allow_colon && c == ':') return true;
  return !first && c >= '0' && c <= '9';
}

// Reads a name at text[*pos], advancing; empty when there is none.
std::string ReadName(const std::string& text, size_t* pos, bool allow_colon) {
  const size_t start = *pos;
  while (*pos < text.size() && IsNameChar(text[*pos], *pos == start, allow_colon)) ++*pos;
  return text.substr(start, *pos - start);
}

bool ParseValue(const std::string& text, double* value) {
  if (text == "NaN" || text == "+Inf" || text == "-Inf") {
    *value = text == "NaN" ? 0.0 : (text == "+Inf" ? 1e308 : -1e308);
    return true;
  }
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  *value = std::strtod(text.c_str(), &end);
  return errno == 0 && end == text.c_str() + text.size();
}

struct UniqueFd {
  int fd = -1;
  ~UniqueFd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::optional<HttpResponse> HttpGet(const std::string& address, const std::string& path,
                                    std::chrono::milliseconds timeout) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  sockaddr_in peer{};
  peer.sin_family = AF_INET;
  peer.sin_port = htons(static_cast<uint16_t>(std::atoi(address.c_str() + colon + 1)));
  if (inet_pton(AF_INET, address.substr(0, colon).c_str(), &peer.sin_addr) != 1) {
    return std::nullopt;
  }
  UniqueFd socket_fd{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (socket_fd.fd < 0 ||
      ::connect(socket_fd.fd, reinterpret_cast<const sockaddr*>(&peer), sizeof peer) != 0) {
    return std::nullopt;
  }
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: " + address + "\r\n\r\n";
  if (::send(socket_fd.fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    return std::nullopt;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string raw;
  char buffer[16384];
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{socket_fd.fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    const ssize_t n = ::recv(socket_fd.fd, buffer, sizeof buffer, 0);
    if (n < 0) return std::nullopt;
    if (n == 0) break;  // HTTP/1.0: the server closes after the body
    raw.append(buffer, static_cast<size_t>(n));
  }
  const size_t header_end = raw.find("\r\n\r\n");
  if (header_end == std::string::npos || raw.compare(0, 5, "HTTP/") != 0) return std::nullopt;
  HttpResponse response;
  response.status = std::atoi(raw.c_str() + raw.find(' ') + 1);
  std::istringstream headers(raw.substr(0, header_end));
  for (std::string line; std::getline(headers, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const size_t sep = line.find(':');
    if (sep == std::string::npos) continue;
    std::string name = line.substr(0, sep);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name == "content-type")
      response.content_type = line.substr(line.find_first_not_of(' ', sep + 1));
  }
  response.body = raw.substr(header_end + 4);
  return response;
}

std::optional<double> Scrape::Get(const std::string& series) const {
  auto it = samples.find(series);
  if (it == samples.end()) return std::nullopt;
  return it->second;
}

double Scrape::Sum(const std::string& name) const {
  double sum = 0;
  for (auto it = samples.lower_bound(name); it != samples.end(); ++it) {
    const std::string& key = it->first;
    if (key.compare(0, name.size(), name) != 0) break;
    if (key.size() == name.size() || key[name.size()] == '{') sum += it->second;
  }
  return sum;
}

std::string MetricsAddressFromLog(const std::string& log) {
  const std::string marker = "metrics at http://";
  const size_t at = log.find(marker);
  if (at == std::string::npos) return "";
  const size_t start = at + marker.size();
  const size_t end = log.find("/metrics", start);
  return end == std::string::npos ? "" : log.substr(start, end - start);
}

std::optional<Scrape> ScrapeMetrics(const std::string& address, std::string* error) {
  std::optional<HttpResponse> response = HttpGet(address, "/metrics");
  if (!response) {
    *error = "no answer from http://" + address + "/metrics";
    return std::nullopt;
  }
  if (response->status != 200 ||
      response->content_type != "text/plain; version=0.0.4; charset=utf-8") {
    *error = "HTTP " + std::to_string(response->status) + ", content type '" +
             response->content_type + "'";
    return std::nullopt;
  }
  std::optional<Scrape> scrape = ParsePrometheusText(response->body, error);
  if (!scrape) *error = "invalid exposition format: " + *error;
  return scrape;
}

std::optional<Scrape> ParsePrometheusText(const std::string& text, std::string* error) {
  Scrape scrape;
  std::set<std::string> finished;  // families whose samples ended
  std::string family;              // the family being read
  std::string helped;              // the family whose HELP came last
  int line_number = 0;
  const auto fail = [&](const std::string& what) -> std::optional<Scrape> {
    *error = "line " + std::to_string(line_number) + ": " + what;
    return std::nullopt;
  };
  if (text.empty() || text.back() != '\n') {
    line_number = 0;
    return fail("the text does not end with a newline");
  }
  const auto start_family = [&](const std::string& name) -> bool {
    if (name == family) return true;
    if (!family.empty()) finished.insert(family);
    if (finished.count(name) != 0) return false;
    family = name;
    return true;
  };
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    ++line_number;
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream words(line);
      std::string hash, keyword, name;
      words >> hash >> keyword >> name;
      if (keyword != "HELP" && keyword != "TYPE") continue;  // a plain comment
      size_t pos = 0;
      if (ReadName(name, &pos, true) != name || name.empty())
        return fail("bad metric name '" + name + "'");
      if (keyword == "HELP") {
        if (scrape.types.count(name) != 0 || helped == name)
          return fail("HELP of " + name + " after its TYPE or twice");
        if (!start_family(name)) return fail("family " + name + " appears twice");
        helped = name;
      } else {
        std::string type;
        words >> type;
        if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary" &&
            type != "untyped") {
          return fail("unknown type '" + type + "'");
        }
        if (scrape.types.count(name) != 0) return fail("second TYPE for " + name);
        if (!start_family(name)) return fail("family " + name + " appears twice");
        scrape.types[name] = type;
      }
      continue;
    }
    size_t pos = 0;
    const std::string name = ReadName(line, &pos, true);
    if (name.empty()) return fail("a sample without a metric name");
    std::string base = name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string s(suffix);
      if (base.size() > s.size() && base.compare(base.size() - s.size(), s.size(), s) == 0 &&
          scrape.types.count(base.substr(0, base.size() - s.size())) != 0) {
        base = base.substr(0, base.size() - s.size());
      }
    }
    if (base != family) {
      if (!start_family(base)) return fail("samples of " + base + " are not together");
    }
    if (scrape.types.count(base) == 0) return fail("sample of " + base + " before its TYPE");
    std::string series = name;
    if (pos < line.size() && line[pos] == '{') {
      series += '{';
      ++pos;
      bool first = true;
      while (pos < line.size() && line[pos] != '}') {
        if (!first) {
          if (line[pos] != ',') return fail("expected ',' between labels");
          series += ',';
          ++pos;
        }
        first = false;
        const std::string label = ReadName(line, &pos, false);
        if (label.empty()) return fail("bad label name");
        if (pos + 1 >= line.size() || line[pos] != '=' || line[pos + 1] != '"') {
          return fail("expected =\" after label " + label);
        }
        pos += 2;
        series += label + "=\"";
        while (pos < line.size() && line[pos] != '"') {
          if (line[pos] == '\\') {
            if (pos + 1 >= line.size() ||
                (line[pos + 1] != '\\' && line[pos + 1] != '"' && line[pos + 1] != 'n')) {
              return fail("bad escape in the value of label " + label);
            }
            series += line.substr(pos, 2);
            pos += 2;
            continue;
          }
          series += line[pos++];
        }
        if (pos >= line.size()) return fail("unterminated value of label " + label);
        series += '"';
        ++pos;
      }
      if (pos >= line.size()) return fail("unterminated label set");
      series += '}';
      ++pos;
    }
    if (pos >= line.size() || line[pos] != ' ') return fail("expected a space before the value");
    std::istringstream rest(line.substr(pos + 1));
    std::string value_text, timestamp;
    rest >> value_text >> timestamp;
    double value = 0;
    if (!ParseValue(value_text, &value)) return fail("bad value '" + value_text + "'");
    if (!scrape.samples.emplace(series, value).second) return fail("series repeated: " + series);
  }
  return scrape;
}

}  // namespace flowgate::testing
