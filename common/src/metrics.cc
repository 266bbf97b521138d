#include "flowgate/common/metrics.h"

#include <microhttpd.h>
#include <netinet/in.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "flowgate/common/identity.h"
#include "flowgate/common/inet_address.h"

namespace flowgate {
namespace {

bool ValidName(std::string_view name, bool allow_colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':');
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

// HELP text escapes backslash and newline; label values also the double quote.
void AppendEscaped(std::string_view text, bool quote, std::string* out) {
  for (const char c : text) {
    if (c == '\\') {
      *out += "\\\\";
    } else if (c == '\n') {
      *out += "\\n";
    } else if (quote && c == '"') {
      *out += "\\\"";
    } else {
      *out += c;
    }
  }
}

void AppendValue(double value, std::string* out) {
  if (std::isnan(value)) {
    *out += "NaN";
  } else if (std::isinf(value)) {
    *out += value > 0 ? "+Inf" : "-Inf";
  } else if (value == std::floor(value) && std::fabs(value) < 9.007199254740992e15) {
    // Counters are integers: print them whole, not in exponent form.
    *out += std::to_string(static_cast<int64_t>(value));
  } else {
    char buffer[32];  // the shortest text that reads back as the same double
    const std::to_chars_result end = std::to_chars(buffer, buffer + sizeof buffer, value);
    out->append(buffer, end.ptr);
  }
}

uint64_t OpenFileDescriptors() {
  uint64_t count = 0;
  std::error_code error;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", error);
       !error && it != std::filesystem::directory_iterator(); it.increment(error)) {
    ++count;
  }
  return count;
}

constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

class MhdMetricsServer final : public MetricsServer {
 public:
  explicit MhdMetricsServer(Render render) : render_(std::move(render)) {}

  Status Open(const std::string& listen) {
    Result<InetAddress> address = ParseInetAddress(listen, "metrics address");
    if (!address.ok()) return address.status();
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
    if (address->storage.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
    errno = 0;
    // Scrapes are rare and small: a few connections, and an idle one goes after 10 s.
    daemon_.reset(MHD_start_daemon(flags, 0, nullptr, nullptr, &MhdMetricsServer::Handle, this,
                                   MHD_OPTION_SOCK_ADDR, address->get(),
                                   MHD_OPTION_CONNECTION_LIMIT, 16u, MHD_OPTION_CONNECTION_TIMEOUT,
                                   10u, MHD_OPTION_END));
    if (!daemon_) {
      return Status::IoError("cannot serve metrics on " + listen + ": " +
                             (errno != 0 ? std::strerror(errno) : "the HTTP server did not start"));
    }
    InetAddress bound = *address;
    if (const MHD_DaemonInfo* info = MHD_get_daemon_info(daemon_.get(), MHD_DAEMON_INFO_BIND_PORT);
        info != nullptr) {
      const uint16_t port = htons(info->port);
      if (bound.storage.ss_family == AF_INET6) {
        reinterpret_cast<sockaddr_in6*>(&bound.storage)->sin6_port = port;
      } else {
        reinterpret_cast<sockaddr_in*>(&bound.storage)->sin_port = port;
      }
    }
    bound_address_ = FormatInetAddress(bound.storage);
    return Status::Ok();
  }

  std::string bound_address() const override { return bound_address_; }

 private:
  struct StopDaemon {
    void operator()(MHD_Daemon* daemon) const { MHD_stop_daemon(daemon); }
  };
  struct DestroyResponse {
    void operator()(MHD_Response* response) const { MHD_destroy_response(response); }
  };

  static MHD_Result Reply(MHD_Connection* connection, unsigned int code, const std::string& body,
                          const char* content_type) {
    std::unique_ptr<MHD_Response, DestroyResponse> response(MHD_create_response_from_buffer(
        body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY));
    if (!response) return MHD_NO;
    MHD_add_response_header(response.get(), MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (code == MHD_HTTP_METHOD_NOT_ALLOWED) {
      MHD_add_response_header(response.get(), MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    }
    return MHD_queue_response(connection, code, response.get());
  }

  static MHD_Result Handle(void* self, MHD_Connection* connection, const char* url,
                           const char* method, const char* /*version*/, const char* /*upload*/,
                           size_t* upload_size, void** /*request_state*/) {
    if (std::strcmp(method, "GET") != 0 && std::strcmp(method, "HEAD") != 0) {
      *upload_size = 0;  // a request body is not read: the answer is the same without it
      return Reply(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET /metrics is served\n",
                   "text/plain; charset=utf-8");
    }
    if (std::strcmp(url, "/metrics") != 0) {
      return Reply(connection, MHD_HTTP_NOT_FOUND, "not found: metrics are at /metrics\n",
                   "text/plain; charset=utf-8");
    }
    return Reply(connection, MHD_HTTP_OK, static_cast<MhdMetricsServer*>(self)->render_(),
                 kContentType);
  }

  Render render_;
  std::string bound_address_;
  // Last member: stopped (its thread joined) before render_ goes away.
  std::unique_ptr<MHD_Daemon, StopDaemon> daemon_;
};

}  // namespace

void PrometheusText::Family(std::string_view name, MetricType type, std::string_view help) {
  family_.assign(name);
  if (!ValidName(name, /*allow_colon=*/true)) family_ = "invalid_metric_name";
  text_ += "# HELP ";
  text_ += family_;
  text_ += ' ';
  AppendEscaped(help, /*quote=*/false, &text_);
  text_ += "\n# TYPE ";
  text_ += family_;
  text_ += type == MetricType::kCounter ? " counter\n" : " gauge\n";
}

void PrometheusText::Sample(double value, const MetricLabels& labels) {
  text_ += family_;
  if (!labels.empty()) {
    text_ += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i > 0) text_ += ',';
      text_ += ValidName(labels[i].first, /*allow_colon=*/false) ? labels[i].first : "invalid";
      text_ += "=\"";
      AppendEscaped(labels[i].second, /*quote=*/true, &text_);
      text_ += '"';
    }
    text_ += '}';
  }
  text_ += ' ';
  AppendValue(value, &text_);
  text_ += '\n';
}

void PrometheusText::Counter(std::string_view name, std::string_view help, double value) {
  Family(name, MetricType::kCounter, help);
  Sample(value);
}

void PrometheusText::Gauge(std::string_view name, std::string_view help, double value) {
  Family(name, MetricType::kGauge, help);
  Sample(value);
}

void AppendProcessMetrics(std::string_view prefix, double uptime_s, PrometheusText& out) {
  const ProcessUsage usage = CurrentProcessUsage();
  const std::string name(prefix);
  out.Family(name + "_build_info", MetricType::kGauge, "Version of this binary (always 1)");
  out.Sample(1, {{"version", FlowgateVersion()}});
  out.Gauge(name + "_uptime_seconds", "Seconds since the process started", uptime_s);
  out.Counter("process_cpu_seconds_total", "User and system CPU time spent, in seconds",
              usage.cpu_user_s + usage.cpu_system_s);
  out.Gauge("process_resident_memory_bytes", "Resident memory size in bytes", usage.resident_bytes);
  out.Gauge("process_max_resident_memory_bytes", "Peak resident memory size in bytes",
            static_cast<double>(usage.maxrss_kb) * 1024);
  out.Gauge("process_open_fds", "Open file descriptors", OpenFileDescriptors());
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& listen,
                                                            Render render) {
  auto server = std::make_unique<MhdMetricsServer>(std::move(render));
  FLOWGATE_RETURN_IF_ERROR(server->Open(listen));
  return std::unique_ptr<MetricsServer>(std::move(server));
}

}  // namespace flowgate
