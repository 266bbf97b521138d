// The one filter language of flowgate: gRPC QueryFlows, Top and Subscribe and the JSON
// socket's --json-filter all accept the same text, e.g.
//
//   app == "YouTube" and ip in 10.0.0.0/8 and port == 443 and host ~ "*.google.com"
//
// Grammar (keywords and field names are case-insensitive):
//
//   filter     = [ or_expr ] ;                      (empty text matches everything)
//   or_expr    = and_expr { "or" and_expr } ;
//   and_expr   = unary { "and" unary } ;            (so: not > and > or)
//   unary      = "not" unary | "(" or_expr ")" | comparison ;
//   comparison = field op value
//              | field [ "not" ] "in" ( value | "(" value { "," value } ")" )
//              | bool_field ;                       (`guessed` means `guessed == true`)
//   op         = "==" | "!=" | "<" | "<=" | ">" | ">=" | "~" | "!~" ;
//   value      = string | number | address | network | "true" | "false" | l4_name ;
//
// Literals: "strings" with \" and \\ as the only escapes; decimal integers with an
// optional k/M/G suffix (powers of 1000); bare IPv4/IPv6 addresses (192.0.2.1, 2001:db8::1)
// and networks (10.0.0.0/8, 2001:db8::/32); true/false; l4 names (tcp, udp, icmp, icmpv6,
// sctp, gre) for the `l4` field. Addresses may also be quoted. `~` is a glob over the whole
// value: `*` any run, `?` one byte, no escapes. `==`/`!=` take one address; `in` takes
// networks. `type` values other than the six event names are rejected, except under `~`.
//
// Fields, by type (aliases after '/'):
//   string  app/application (detected_application_name), proto/protocol
//           (detected_protocol_name), host (host_server_name), agent (name OR id), site,
//           iface/interface, type (flow, flow_stats, flow_purge, agent_status, agent_hello,
//           definitions): ==, !=, ~, !~, in. Case-insensitive.
//   string  digest: the same operators, but exact (case-sensitive).
//   address ip (either side), local_ip, other_ip: ==, !=, in (networks or addresses).
//   number  port (either side), local_port, other_port, vlan, ip_version, l4 (IP protocol
//           number or name), bytes (total_bytes), packets (total_packets):
//           ==, !=, <, <=, >, >=, in.
//   bool    guessed (detection_guessed): ==, != with true/false, or bare.
// Type mismatches (`bytes ~ "x"`, `ip > 3`, `app in 10.0.0.0/8`) fail at parse time.
//
// Semantics worth knowing:
//   - `app` is the application part of nDPI's "TLS.YouTube" label and `proto` the protocol
//     part; a lone "HTTP" flow has proto "HTTP" and app "Unknown" (the agent's labels).
//   - Fields with two values (ip, port: local and other side; agent: name and id) satisfy
//     ==, ~, in, <, ... when EITHER value does; !=, !~ and `not in` are the exact negation
//     of their positive form, so `port != 443` means "neither side is 443".
//   - A field that does not apply to a subject (`app` on an agent_status event, `bytes` on
//     a `flow` metadata event, `ip` on flow_stats) makes every comparison on it false,
//     including != and !~. Write `not app == "x"` to also keep subjects without an app.
//     `agent`, `site` and `type` apply to every subject.
//   - Networks match addresses of their own family only; an IPv4 address given in
//     IPv4-mapped IPv6 form is not in an IPv4 network.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "flowgate/common/status.h"

namespace flowgate {

namespace v1 {
class AgentIdentity;
class Event;
class FlowContext;
class FlowCounters;
class FlowMetadata;
class FlowRecord;
class StoredEvent;
}  // namespace v1

// What a filter looks at: a non-owning view over one flow record or one event.
// REQUIRED: the viewed messages outlive the subject (it holds pointers into them).
// Cheap to build (a few pointers), so build one per Matches() call.
class FilterSubject {
 public:
  // A stored flow. Every flow field applies: counters not yet reported read as 0.
  static FilterSubject FromFlow(const v1::FlowRecord& flow);
  // A stored event: `flow` events expose the metadata fields, `flow_stats`/`flow_purge`
  // the counters (bytes, packets), the interface and the digest; other events only
  // agent, site and type.
  static FilterSubject FromEvent(const v1::StoredEvent& event);
  // The same for an event and its source that do not travel as a StoredEvent.
  static FilterSubject FromEvent(const v1::Event& event, const v1::AgentIdentity& agent);

 private:
  friend class Filter;
  FilterSubject() = default;

  const v1::AgentIdentity* agent_ = nullptr;
  const v1::FlowContext* context_ = nullptr;    // null: iface does not apply
  const v1::FlowMetadata* metadata_ = nullptr;  // null: app, ip, port, ... do not apply
  const v1::FlowCounters* counters_ = nullptr;  // null: bytes, packets do not apply
  std::string_view type_;                       // static storage; empty if unknown
};

// A parsed filter: an immutable, compiled expression.
// Thread safety: Matches() and ToString() are const and may run concurrently on one Filter.
// Copies are cheap and share the compiled form (which never changes).
class Filter {
 public:
  // Parse limits: longer or deeper input fails cleanly instead of exhausting the stack.
  static constexpr size_t kMaxLength = 64 * 1024;  // bytes of filter text
  static constexpr int kMaxDepth = 64;             // nested parentheses and `not`s

  // The empty filter: matches everything.
  Filter() = default;

  // Parses and compiles `text` (see the grammar above). Text that is empty or only blanks
  // gives the empty filter. Errors are InvalidArgument with a one-line message that starts
  // with the 1-based byte column, e.g.
  //   "column 17: expected a value after '==', found end of input".
  static Result<Filter> Parse(std::string_view text);

  // True when `subject` satisfies the filter. Does not allocate.
  bool Matches(const FilterSubject& subject) const;

  // A normalised rendering that parses back to an equivalent filter: lower-case keywords,
  // canonical field names, k/M/G expanded, canonical addresses, minimal parentheses, e.g.
  //   app == "YouTube" and (port == 443 or port == 80)
  // Empty for the empty filter.
  std::string ToString() const;

  // True for the filter that matches everything.
  bool empty() const { return program_ == nullptr; }

 private:
  struct Program;  // the expression tree, defined in filter.cc
  std::shared_ptr<const Program> program_;
};

}  // namespace flowgate
