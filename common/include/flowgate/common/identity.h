// Identifiers and process facts that agent and gateway both report.
#pragma once

#include <cstdint>
#include <string>

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
};
ProcessUsage CurrentProcessUsage();

}  // namespace flowgate
