// libFuzzer target over the filter language (flowgate::Filter), whose text comes from
// anyone with a gRPC client or a JSON socket flag. Hostile text must fail with a column
// and a reason, never crash, recurse past the depth limit or hang. A filter that parses
// must render (ToString) to text that parses again, renders the same, and judges every
// subject the same as the original.
//
// Input: the filter text. Seeds: tests/fuzz/filter_corpus.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "flowgate/common/filter.h"
#include "flowgate/v1/events.pb.h"

namespace {

using namespace flowgate;

// A few subjects with every kind of field set: a TLS flow, its purge, an IPv6 DNS flow
// and an agent status.
struct Subjects {
  Subjects() {
    agent.set_id("3f2c9a7e-0000-4000-8000-000000000001");
    agent.set_name("probe-a");
    agent.set_site("lab");
    v1::FlowMetadata* tls = flow.mutable_flow()->mutable_flow();
    flow.mutable_flow()->mutable_context()->set_interface("eth0");
    tls->set_digest("aa11");
    tls->set_ip_version(4);
    tls->set_ip_protocol(6);
    tls->set_vlan_id(7);
    tls->set_local_ip("10.0.0.2");
    tls->set_other_ip("198.51.100.7");
    tls->set_local_port(40000);
    tls->set_other_port(443);
    tls->set_detected_protocol_name("TLS");
    tls->set_detected_application_name("YouTube");
    tls->set_host_server_name("www.youtube.com");
    purge.mutable_flow_purge()->mutable_context()->set_interface("eth0");
    purge.mutable_flow_purge()->mutable_flow()->set_digest("aa11");
    purge.mutable_flow_purge()->mutable_flow()->set_total_bytes(123'456);
    purge.mutable_flow_purge()->mutable_flow()->set_total_packets(99);
    v1::FlowMetadata* dns = dns_flow.mutable_flow()->mutable_flow();
    dns->set_ip_version(6);
    dns->set_ip_protocol(17);
    dns->set_local_ip("2001:db8::2");
    dns->set_other_ip("2001:db8::53");
    dns->set_local_port(5353);
    dns->set_other_port(53);
    dns->set_detected_protocol_name("DNS");
    dns->set_detected_application_name("Unknown");
    dns->set_detection_guessed(true);
    status.mutable_agent_status();
  }
  std::vector<FilterSubject> All() const {
    return {FilterSubject::FromEvent(flow, agent), FilterSubject::FromEvent(purge, agent),
            FilterSubject::FromEvent(dns_flow, agent), FilterSubject::FromEvent(status, agent)};
  }
  v1::AgentIdentity agent;
  v1::Event flow, purge, dns_flow, status;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Subjects* subjects = new Subjects();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Result<Filter> filter = Filter::Parse(text);
  if (!filter.ok()) {
    // Every refusal says where: "column N: ...".
    if (filter.status().message().rfind("column ", 0) != 0) __builtin_trap();
    return 0;
  }
  const std::string rendered = filter->ToString();
  Result<Filter> again = Filter::Parse(rendered);
  if (!again.ok() || again->ToString() != rendered) __builtin_trap();
  for (const FilterSubject& subject : subjects->All()) {
    if (filter->Matches(subject) != again->Matches(subject)) __builtin_trap();
  }
  return 0;
}
