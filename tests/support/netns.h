// A network namespace holding one end of a veth pair, for live-capture tests: a test
// replays packets into the namespace's end and captures on the other. Created and removed
// with `ip`; the destructor always removes both, also when the test failed.
#pragma once

#include <string>
#include <vector>

namespace flowgate::testing {

class VethNamespace {
 public:
  // Names carry the process id, so parallel test runs do not collide. Needs root; check
  // ok() and error().
  VethNamespace();
  ~VethNamespace();
  VethNamespace(const VethNamespace&) = delete;
  VethNamespace& operator=(const VethNamespace&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  // The end left in this namespace (capture here).
  const std::string& host_end() const { return host_end_; }
  // `argv` prefixed to run inside the namespace (`ip netns exec NAME ...`).
  std::vector<std::string> InNamespace(const std::vector<std::string>& argv) const;
  // The end inside the namespace (replay here).
  const std::string& namespace_end() const { return namespace_end_; }

 private:
  bool Run(const std::vector<std::string>& argv);

  std::string namespace_, host_end_, namespace_end_;
  std::string error_;
};

}  // namespace flowgate::testing
