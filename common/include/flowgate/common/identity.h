// Identifiers and process facts that agent and gateway both report.
#pragma once

#include <cstdint>
#include <string>

#include "flowgate/v1/events.pb.h"

namespace flowgate {

// The flowgate version, e.g. "0.1.0".
const char* FlowgateVersion();
// A random (version 4) UUID in its 36-character text form.
std::string MakeUuid();
// This host's name, or "unknown".
std::string HostName();

// CPU seconds used and peak resident memory of this process so far.
struct ProcessUsage {
  double cpu_user_s = 0;
  double cpu_system_s = 0;
  uint64_t maxrss_kb = 0;
  uint64_t resident_bytes = 0;  // now (/proc/self/statm); 0 when unknown
  uint64_t minor_faults = 0;    // page faults served without I/O, since the process started
};
ProcessUsage CurrentProcessUsage();

// Fills the fields of a netifyd agent_status that describe the process itself (version,
// timestamp in seconds, update interval, uptime, cores, CPU and memory now and at the
// previous status), the same way for agent and gateway.
void FillProcessStatus(const ProcessUsage& now, const ProcessUsage& previous, int64_t timestamp_s,
                       uint32_t update_interval_s, uint64_t uptime_s, v1::AgentStatus* status);

// Lower-case hex text of `length` bytes into *out, replacing its text but keeping its
// buffer (for per-event paths); `separator` ('\0': none) goes between bytes, as ':' in MAC
// addresses.
void AssignHexLower(const uint8_t* bytes, size_t length, char separator, std::string* out);
// The same, without separators, into text[0, 2 * length) (no terminating NUL).
void WriteHexLower(const uint8_t* bytes, size_t length, char* text);

}  // namespace flowgate
