#include "flowgate/common/identity.h"

#include "flowgate/common/netifyd_json.h"
#include "flowgate/common/utf8.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>

namespace flowgate {

const char* FlowgateVersion() { return FLOWGATE_VERSION; }

std::string MakeUuid() {
  std::random_device entropy;  // /dev/urandom on Linux
  unsigned char bytes[16];
  for (size_t i = 0; i < sizeof bytes; i += 4) {
    const unsigned int word = entropy();
    for (size_t j = 0; j < 4; ++j) bytes[i + j] = static_cast<unsigned char>(word >> (8 * j));
  }
  bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0f) | 0x40);  // version 4
  bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3f) | 0x80);  // RFC 4122 variant
  char text[37];
  std::snprintf(text, sizeof text,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", bytes[0],
                bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8],
                bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]);
  return text;
}

std::string HostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "unknown";
  return ValidUtf8(name);  // it names agents in events, whose strings must be UTF-8
}

ProcessUsage CurrentProcessUsage() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  ProcessUsage out;
  out.cpu_user_s = static_cast<double>(usage.ru_utime.tv_sec) + usage.ru_utime.tv_usec / 1e6;
  out.cpu_system_s = static_cast<double>(usage.ru_stime.tv_sec) + usage.ru_stime.tv_usec / 1e6;
  out.maxrss_kb = static_cast<uint64_t>(usage.ru_maxrss);
  out.minor_faults = static_cast<uint64_t>(usage.ru_minflt);
  std::ifstream statm("/proc/self/statm");
  uint64_t size_pages = 0, resident_pages = 0;
  if (statm >> size_pages >> resident_pages) {
    out.resident_bytes = resident_pages * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  }
  return out;
}

void FillProcessStatus(const ProcessUsage& now, const ProcessUsage& previous, int64_t timestamp_s,
                       uint32_t update_interval_s, uint64_t uptime_s, v1::AgentStatus* status) {
  status->set_version(kNetifydJsonVersion);
  status->set_timestamp(timestamp_s);
  status->set_update_interval(update_interval_s);
  status->set_uptime(uptime_s);
  status->set_cpu_cores(std::max(1u, std::thread::hardware_concurrency()));
  status->set_cpu_user(now.cpu_user_s);
  status->set_cpu_user_prev(previous.cpu_user_s);
  status->set_cpu_system(now.cpu_system_s);
  status->set_cpu_system_prev(previous.cpu_system_s);
  status->set_maxrss_kb(now.maxrss_kb);
  status->set_maxrss_kb_prev(previous.maxrss_kb);
}

namespace {

// Two digits per byte from one table: the agent writes a digest and two MACs into every
// flow event, and a nibble at a time with a separator test per byte showed in its profile.
constexpr std::array<char, 512> kHexPairs = [] {
  constexpr char kDigits[] = "0123456789abcdef";
  std::array<char, 512> pairs{};
  for (size_t b = 0; b < 256; ++b)
    pairs[2 * b] = kDigits[b >> 4], pairs[2 * b + 1] = kDigits[b & 15];
  return pairs;
}();

}  // namespace

void WriteHexLower(const uint8_t* bytes, size_t length, char* text) {
  for (size_t i = 0; i < length; ++i)
    std::memcpy(text + 2 * i, &kHexPairs[2 * size_t{bytes[i]}], 2);
}

void AssignHexLower(const uint8_t* bytes, size_t length, char separator, std::string* out) {
  if (separator == '\0') {
    out->resize(2 * length);
    WriteHexLower(bytes, length, out->data());
    return;
  }
  out->resize(length == 0 ? 0 : 3 * length - 1);
  char* text = out->data();
  for (size_t i = 0; i < length; ++i, text += 3) {
    std::memcpy(text, &kHexPairs[2 * size_t{bytes[i]}], 2);
    if (i + 1 < length) text[2] = separator;
  }
}

}  // namespace flowgate
