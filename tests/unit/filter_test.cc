#include "flowgate/common/filter.h"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "flowgate/v1/flowgate.pb.h"

namespace flowgate {
namespace {

constexpr char kDigest[] = "3f786850e387550fdab836ed7e6dc881de23001b";

void SetAgent(v1::AgentIdentity* agent, const std::string& name, const std::string& site) {
  agent->set_id("6f1c2a3e-0000-4000-8000-" + std::string(12, name.back()));
  agent->set_name(name);
  agent->set_site(site);
}

// A TLS flow to YouTube over IPv4, as the gateway stores it.
v1::FlowRecord YouTubeFlow() {
  v1::FlowRecord r;
  SetAgent(r.mutable_agent(), "probe-1", "site-a");
  r.mutable_context()->set_interface("eth0");
  v1::FlowMetadata* m = r.mutable_metadata();
  m->set_digest(kDigest);
  m->set_ip_version(4);
  m->set_ip_protocol(6);
  m->set_local_ip("10.1.2.3");
  m->set_other_ip("142.250.74.46");
  m->set_local_port(50123);
  m->set_other_port(443);
  m->set_detected_protocol_name("TLS");
  m->set_detected_application_name("YouTube");
  m->set_host_server_name("video.google.com");
  v1::FlowCounters* c = r.mutable_counters();
  c->set_digest(kDigest);
  c->set_total_bytes(2'500'000);
  c->set_total_packets(2100);
  return r;
}

// A guessed DNS flow over IPv6 on a VLAN.
v1::FlowRecord DnsFlowV6() {
  v1::FlowRecord r;
  SetAgent(r.mutable_agent(), "probe-2", "site-b");
  r.mutable_context()->set_interface("wlan0");
  v1::FlowMetadata* m = r.mutable_metadata();
  m->set_digest(std::string(40, 'b'));
  m->set_ip_version(6);
  m->set_ip_protocol(17);
  m->set_vlan_id(12);
  m->set_local_ip("2001:db8::10");
  m->set_other_ip("2001:4860:4860::8888");
  m->set_local_port(53000);
  m->set_other_port(53);
  m->set_detected_protocol_name("DNS");
  m->set_detected_application_name("Google");
  m->set_host_server_name("dns.google");
  m->set_detection_guessed(true);
  r.mutable_counters()->set_total_bytes(300);
  r.mutable_counters()->set_total_packets(2);
  return r;
}

bool Match(std::string_view text, const FilterSubject& subject) {
  Result<Filter> filter = Filter::Parse(text);
  EXPECT_TRUE(filter.ok()) << text << ": " << filter.status().message();
  return filter.ok() && filter->Matches(subject);
}
bool Match(std::string_view text, const v1::FlowRecord& flow) {
  return Match(text, FilterSubject::FromFlow(flow));
}

std::string ParseError(std::string_view text) {
  Result<Filter> filter = Filter::Parse(text);
  if (filter.ok()) return "<parsed: " + filter->ToString() + ">";
  EXPECT_EQ(filter.status().code(), StatusCode::kInvalidArgument);
  return filter.status().message();
}

std::string Normalise(std::string_view text) {
  Result<Filter> filter = Filter::Parse(text);
  if (!filter.ok()) return "<error: " + filter.status().message() + ">";
  return filter->ToString();
}

TEST(FilterTest, EmptyTextMatchesEverything) {
  for (std::string_view text : {"", "  \t\r\n "}) {
    Result<Filter> filter = Filter::Parse(text);
    ASSERT_TRUE(filter.ok());
    EXPECT_TRUE(filter->empty());
    EXPECT_EQ(filter->ToString(), "");
    EXPECT_TRUE(filter->Matches(FilterSubject::FromFlow(YouTubeFlow())));
  }
  EXPECT_TRUE(Filter().Matches(FilterSubject::FromFlow(DnsFlowV6())));
}

TEST(FilterTest, IssueExample) {
  const char* text =
      "app == \"YouTube\" and ip in 10.0.0.0/8 and port == 443 and host ~ \"*.google.com\" "
      "and agent == \"probe-1\" and bytes > 1000000";
  EXPECT_TRUE(Match(text, YouTubeFlow()));
  EXPECT_FALSE(Match(text, DnsFlowV6()));
  // `agent` is the agent's name or id, not its site: the issue's `agent == "site-a"` is
  // written `site == "site-a"`.
  EXPECT_FALSE(Match("agent == \"site-a\"", YouTubeFlow()));
  EXPECT_TRUE(Match("site == \"site-a\"", YouTubeFlow()));
}

TEST(FilterTest, StringFieldsAliasesAndCase) {
  v1::FlowRecord flow = YouTubeFlow();
  EXPECT_TRUE(Match("app == \"youtube\"", flow));
  EXPECT_TRUE(Match("APPLICATION == \"YOUTUBE\"", flow));
  EXPECT_FALSE(Match("app == \"TLS.YouTube\"", flow)) << "app is the application part only";
  EXPECT_TRUE(Match("proto == \"tls\" and protocol != \"http\"", flow));
  EXPECT_TRUE(Match("host == \"VIDEO.google.com\"", flow));
  EXPECT_TRUE(Match("iface == \"eth0\" and interface in (\"eth1\", \"ETH0\")", flow));
  EXPECT_TRUE(Match("site == \"Site-A\"", flow));
  EXPECT_TRUE(Match("agent == \"probe-1\"", flow));
  EXPECT_TRUE(Match("agent == \"6F1C2A3E-0000-4000-8000-111111111111\"", flow)) << "by id";
  EXPECT_FALSE(Match("agent != \"probe-1\"", flow)) << "neither name nor id may equal it";
  EXPECT_TRUE(Match("agent != \"probe-9\"", flow));
  EXPECT_TRUE(Match("agent in (\"probe-9\", \"probe-1\")", flow));
  EXPECT_TRUE(Match("agent not in (\"probe-9\", \"probe-8\")", flow));
  EXPECT_TRUE(Match(std::string("digest == \"") + kDigest + "\"", flow));
  EXPECT_FALSE(Match("digest == \"3F786850E387550FDAB836ED7E6DC881DE23001B\"", flow))
      << "digests compare exactly";
  EXPECT_TRUE(Match("digest ~ \"3f78*\" and digest !~ \"3F78*\"", flow));
  EXPECT_TRUE(Match("type == \"flow\" and TYPE == \"FLOW\"", flow));
  EXPECT_TRUE(Match("app == \"YouTube\" AND Port == 443 Or NOT guessed", flow))
      << "keywords are case-insensitive";
}

TEST(FilterTest, Glob) {
  v1::FlowRecord flow = YouTubeFlow();
  EXPECT_TRUE(Match("host ~ \"*.google.com\"", flow));
  EXPECT_TRUE(Match("host ~ \"*.GOOGLE.*\"", flow));
  EXPECT_TRUE(Match("host ~ \"*\"", flow));
  EXPECT_TRUE(Match("host ~ \"**\"", flow));
  EXPECT_TRUE(Match("host ~ \"video.google.com\"", flow));
  EXPECT_TRUE(Match("host ~ \"vid?o.*.c?m\"", flow));
  EXPECT_TRUE(Match("host ~ \"v*o*o*e*m\"", flow));
  EXPECT_FALSE(Match("host ~ \"video.google.co\"", flow)) << "anchored at both ends";
  EXPECT_FALSE(Match("host ~ \"ideo.google.com\"", flow));
  EXPECT_FALSE(Match("host ~ \"?\"", flow));
  EXPECT_FALSE(Match("host ~ \"\"", flow));
  EXPECT_TRUE(Match("host !~ \"*.youtube.com\"", flow));
  EXPECT_FALSE(Match("host !~ \"*google*\"", flow));

  v1::FlowRecord bare = flow;
  bare.mutable_metadata()->set_host_server_name("google.com");
  EXPECT_FALSE(Match("host ~ \"*.google.com\"", bare)) << "the dot is literal";
  bare.mutable_metadata()->set_host_server_name("");
  EXPECT_TRUE(Match("host ~ \"\" and host ~ \"*\" and host == \"\"", bare));
  EXPECT_FALSE(Match("host ~ \"?\"", bare));
  // A backtracking-hostile pattern still answers quickly (no exponential blow-up).
  bare.mutable_metadata()->set_host_server_name(std::string(4000, 'a'));
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(Match("host ~ \"*a*a*a*a*a*a*a*a*a*a*b\"", bare));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(FilterTest, Numbers) {
  v1::FlowRecord flow = YouTubeFlow();
  EXPECT_TRUE(Match("port == 443", flow));
  EXPECT_TRUE(Match("port == 50123", flow)) << "either side";
  EXPECT_FALSE(Match("port != 443", flow)) << "neither side may be 443";
  EXPECT_TRUE(Match("port != 80", flow));
  EXPECT_TRUE(Match("local_port == 50123 and other_port == 443", flow));
  EXPECT_FALSE(Match("local_port == 443", flow));
  EXPECT_TRUE(Match("port < 444 and port <= 443 and port > 50122 and port >= 50123", flow));
  EXPECT_FALSE(Match("other_port < 443 or other_port > 443", flow));
  EXPECT_TRUE(Match("port in (80, 443)", flow));
  EXPECT_TRUE(Match("port not in (80, 8080)", flow));
  EXPECT_FALSE(Match("port not in (80, 443)", flow));
  EXPECT_TRUE(Match("bytes > 2M and bytes < 3m and bytes == 2500k and bytes < 1G", flow));
  EXPECT_TRUE(Match("packets == 2100 and packets >= 2k", flow));
  EXPECT_TRUE(Match("vlan == 0 and ip_version == 4", flow));
  EXPECT_TRUE(Match("l4 == tcp and l4 == 6 and l4 != udp and l4 == \"TCP\"", flow));
  EXPECT_TRUE(Match("l4 in (udp, icmp, tcp)", flow));
  EXPECT_TRUE(Match("bytes < 18446744073709551615", flow));
  v1::FlowRecord dns = DnsFlowV6();
  EXPECT_TRUE(Match("l4 == udp and vlan == 12 and ip_version == 6 and port == 53", dns));
}

TEST(FilterTest, Ipv4Networks) {
  v1::FlowRecord flow = YouTubeFlow();  // 10.1.2.3 <-> 142.250.74.46
  EXPECT_TRUE(Match("ip in 10.0.0.0/8", flow));
  EXPECT_TRUE(Match("ip in 142.250.0.0/15", flow)) << "either side";
  EXPECT_TRUE(Match("local_ip in 10.0.0.0/8 and other_ip not in 10.0.0.0/8", flow));
  EXPECT_FALSE(Match("other_ip in 10.0.0.0/8", flow));
  EXPECT_TRUE(Match("ip in 0.0.0.0/0", flow));
  EXPECT_TRUE(Match("ip in 10.1.2.3/32 and ip == 10.1.2.3", flow));
  EXPECT_FALSE(Match("ip in 10.1.2.2/32", flow));
  EXPECT_TRUE(Match("ip in 10.1.2.2/31", flow));
  EXPECT_FALSE(Match("ip in 10.1.2.4/31", flow));
  EXPECT_TRUE(Match("ip in 10.1.2.255/24", flow)) << "host bits are cleared";
  EXPECT_TRUE(Match("ip in 142.250.74.46/31", flow));
  EXPECT_TRUE(Match("ip in (192.168.0.0/16, 142.250.74.46)", flow));
  EXPECT_TRUE(Match("ip == \"10.1.2.3\"", flow)) << "a quoted address is accepted";
  EXPECT_FALSE(Match("ip != 10.1.2.3", flow));
  EXPECT_TRUE(Match("ip != 10.1.2.4", flow));
  EXPECT_FALSE(Match("ip in ::/0", flow)) << "an IPv6 network holds no IPv4 address";

  v1::FlowRecord broken = flow;
  broken.mutable_metadata()->set_local_ip("not an address");
  broken.mutable_metadata()->set_other_ip("");
  EXPECT_FALSE(Match("ip in 0.0.0.0/0", broken));
  EXPECT_TRUE(Match("ip not in 0.0.0.0/0", broken));
}

TEST(FilterTest, Ipv6Networks) {
  v1::FlowRecord flow = DnsFlowV6();  // 2001:db8::10 <-> 2001:4860:4860::8888
  EXPECT_TRUE(Match("ip in 2001:db8::/32", flow));
  EXPECT_TRUE(Match("ip in ::/0", flow));
  EXPECT_FALSE(Match("ip in 0.0.0.0/0", flow));
  EXPECT_TRUE(Match("ip == 2001:db8::10 and ip in 2001:db8::10/128", flow));
  EXPECT_TRUE(Match("ip == 2001:0DB8:0:0::0010", flow)) << "any spelling of the address";
  EXPECT_FALSE(Match("ip in 2001:db8::11/128", flow));
  EXPECT_TRUE(Match("ip in 2001:db8::11/127", flow));
  EXPECT_FALSE(Match("ip in 2001:db8::12/127", flow));
  EXPECT_TRUE(Match("other_ip in 2001:4860:4860::8888/125", flow));
  EXPECT_FALSE(Match("local_ip in 2001:db9::/32", flow));
  EXPECT_FALSE(Match("ip in ::ffff:0:0/96", flow));

  v1::FlowRecord mapped = DnsFlowV6();
  mapped.mutable_metadata()->set_local_ip("::ffff:10.1.2.3");
  EXPECT_TRUE(Match("local_ip in ::ffff:10.0.0.0/104", mapped));
  EXPECT_FALSE(Match("local_ip in 10.0.0.0/8", mapped)) << "families never mix";
}

TEST(FilterTest, Bool) {
  EXPECT_TRUE(Match("guessed", DnsFlowV6()));
  EXPECT_FALSE(Match("guessed", YouTubeFlow()));
  EXPECT_TRUE(Match("not guessed", YouTubeFlow()));
  EXPECT_TRUE(Match("guessed == false and guessed != TRUE", YouTubeFlow()));
  EXPECT_TRUE(Match("guessed == true and l4 == udp", DnsFlowV6()));
}

v1::StoredEvent EventOf(const std::function<void(v1::Event*)>& fill) {
  v1::StoredEvent stored;
  stored.set_gateway_sequence(7);
  SetAgent(stored.mutable_agent(), "probe-3", "site-c");
  fill(stored.mutable_event());
  return stored;
}

TEST(FilterTest, StoredEvents) {
  v1::FlowRecord record = YouTubeFlow();
  v1::StoredEvent flow = EventOf([&](v1::Event* e) {
    e->mutable_flow()->mutable_context()->set_interface("eth0");
    *e->mutable_flow()->mutable_flow() = record.metadata();
  });
  v1::StoredEvent stats = EventOf([&](v1::Event* e) {
    e->mutable_flow_stats()->mutable_context()->set_interface("eth0");
    *e->mutable_flow_stats()->mutable_flow() = record.counters();
  });
  v1::StoredEvent purge = EventOf([&](v1::Event* e) {
    e->mutable_flow_purge()->mutable_context()->set_interface("eth1");
    *e->mutable_flow_purge()->mutable_flow() = record.counters();
  });
  v1::StoredEvent status =
      EventOf([](v1::Event* e) { e->mutable_agent_status()->set_final(true); });
  v1::StoredEvent hello = EventOf([](v1::Event* e) { e->mutable_agent_hello(); });
  v1::StoredEvent definitions = EventOf([](v1::Event* e) { e->mutable_definitions(); });
  v1::StoredEvent empty = EventOf([](v1::Event*) {});
  auto match = [](std::string_view text, const v1::StoredEvent& e) {
    return Match(text, FilterSubject::FromEvent(e));
  };

  EXPECT_TRUE(match("type == \"flow\" and app == \"YouTube\" and port == 443", flow));
  EXPECT_TRUE(match("type == \"flow_stats\" and bytes > 1M and iface == \"eth0\"", stats));
  EXPECT_TRUE(match("type == \"flow_purge\" and packets == 2100 and iface == \"eth1\"", purge));
  EXPECT_TRUE(match("type == \"agent_status\"", status));
  EXPECT_TRUE(match("type == \"agent_hello\"", hello));
  EXPECT_TRUE(match("type == \"definitions\"", definitions));
  EXPECT_TRUE(match("type ~ \"flow*\"", stats));

  std::string digest = std::string("digest == \"") + kDigest + "\"";
  for (const v1::StoredEvent* e : {&flow, &stats, &purge}) {
    EXPECT_TRUE(match(digest, *e));
  }
  for (const v1::StoredEvent* e : {&flow, &stats, &purge, &status, &hello, &definitions, &empty}) {
    SCOPED_TRACE(e->event().ShortDebugString());
    EXPECT_TRUE(match("agent == \"probe-3\" and site == \"site-c\"", *e)) << "always apply";
  }
  // Fields that do not apply make every comparison on them false, negated ones too.
  for (std::string_view text :
       {"app == \"x\"", "app != \"x\"", "app !~ \"x\"", "app not in (\"x\")", "ip != 1.2.3.4",
        "ip not in 0.0.0.0/0", "port != 1", "guessed", "guessed == false", "host ~ \"*\"",
        "iface ~ \"*\"", "digest ~ \"*\"", "bytes >= 0"}) {
    EXPECT_FALSE(match(text, status)) << text;
    EXPECT_TRUE(match("not " + std::string(text), status)) << text;
  }
  EXPECT_FALSE(match("bytes >= 0", flow)) << "flow events carry no counters";
  EXPECT_FALSE(match("ip in 0.0.0.0/0 or port >= 0 or app ~ \"*\"", stats));
  EXPECT_TRUE(match("iface == \"eth0\"", flow));

  // A flow record with nothing reported yet: counters read as zero.
  v1::FlowRecord fresh;
  fresh.mutable_metadata()->set_digest(kDigest);
  EXPECT_TRUE(Match("bytes == 0 and packets == 0 and type == \"flow\"", fresh));
  EXPECT_TRUE(Match(digest, fresh));
  v1::FlowRecord counted;
  counted.mutable_counters()->set_digest(kDigest);
  EXPECT_TRUE(Match(digest, counted)) << "digest falls back to the counters";
}

TEST(FilterTest, Precedence) {
  v1::FlowRecord flow = YouTubeFlow();
  // T = port == 443, F = port == 80.
  EXPECT_TRUE(Match("port == 443 or port == 80 and port == 80", flow));  // T or (F and F)
  EXPECT_FALSE(Match("(port == 443 or port == 80) and port == 80", flow));
  EXPECT_FALSE(Match("not port == 443 and port == 80", flow));  // (not T) and F
  EXPECT_TRUE(Match("not port == 80 and port == 443", flow));
  EXPECT_TRUE(Match("not (port == 443 and port == 80)", flow));
  EXPECT_TRUE(Match("not not port == 443", flow));
  EXPECT_TRUE(Match("port == 80 or not port == 80 and port == 443", flow));
  EXPECT_TRUE(Match("((((port == 443))))", flow));
}

TEST(FilterTest, ToStringNormalises) {
  EXPECT_EQ(Normalise("APPLICATION == \"YouTube\"   AND (Port==443 OR port==80)"),
            "app == \"YouTube\" and (port == 443 or port == 80)");
  EXPECT_EQ(Normalise("((app == \"a\") and (host ~ \"*.x\")) or (bytes > 1k)"),
            "app == \"a\" and host ~ \"*.x\" or bytes > 1000");
  EXPECT_EQ(Normalise("not (guessed or l4 == 17) and not not protocol != \"q\\\"\\\\\""),
            "not (guessed == true or l4 == udp) and not not proto != \"q\\\"\\\\\"");
  EXPECT_EQ(Normalise("ip in 10.1.2.3/8 or ip == 2001:0db8:0::1 or ip in (::/0)"),
            "ip in 10.0.0.0/8 or ip == 2001:db8::1 or ip in (::/0)");
  EXPECT_EQ(Normalise("port  NOT  IN(80,443) and interface!~\"e*\" and l4 == 99"),
            "port not in (80, 443) and iface !~ \"e*\" and l4 == 99");
}

TEST(FilterTest, ErrorsSayWhereAndWhat) {
  struct Case {
    std::string text, error;
  };
  const std::vector<Case> cases = {
      {"app ==", "column 7: expected a value after '==', found end of input"},
      {"app == \"YouTube\" and ip in",
       "column 27: expected a value after 'in', found end of input"},
      {"app == YouTube", "column 8: field 'app' takes a quoted string, found 'YouTube'"},
      {"app ~ 5", "column 7: field 'app' takes a quoted string, found '5'"},
      {"bytes ~ \"x\"", "column 7: operator '~' does not apply to number field 'bytes'"},
      {"ip > 3", "column 4: operator '>' does not apply to address field 'ip'"},
      {"guessed ~ \"t*\"", "column 9: operator '~' does not apply to bool field 'guessed'"},
      {"host not in 1", "column 13: field 'host' takes a quoted string, found '1'"},
      {"ip not in (1.2.3.4) and ip < 1",
       "column 28: operator '<' does not apply to address field 'ip'"},
      {"app in 10.0.0.0/8", "column 8: field 'app' takes a quoted string, found '10.0.0.0/8'"},
      {"ip == 10.0.0.0/8",
       "column 7: '==' takes one address; use 'in' to match network 10.0.0.0/8"},
      {"ip in 10.0.0.0/33",
       "column 7: field 'ip' takes an address or network, found '10.0.0.0/33'"},
      {"ip in 300.1.1.1", "column 7: field 'ip' takes an address or network, found '300.1.1.1'"},
      {"ip in (10.0.0.0/8, \"x\")",
       "column 20: field 'ip' takes an address or network, found string \"x\""},
      {"ip == 10", "column 7: field 'ip' takes an address or network, found '10'"},
      {"colour == \"red\"", "column 1: unknown field 'colour'"},
      {"app = \"x\"", "column 5: unexpected '='; compare with '=='"},
      {"app == \"x\" && port == 1", "column 12: unexpected '&'; use 'and'"},
      {"app == \"x\" || port == 1", "column 12: unexpected '|'; use 'or'"},
      {"!guessed", "column 1: unexpected '!'; use 'not', '!=' or '!~'"},
      {"app @ \"x\"", "column 5: unexpected character '@'"},
      {"app == \"You", "column 8: unterminated string"},
      {"app == \"a\\nb\"", "column 10: unknown escape in string; only \\\" and \\\\ are allowed"},
      {"(app == \"x\"", "column 12: expected ')' to close the '(' at column 1, found end of input"},
      {"app == \"x\")", "column 11: expected 'and', 'or' or end of input, found ')'"},
      {"app == \"x\" port == 1", "column 12: expected 'and', 'or' or end of input, found 'port'"},
      {"app == \"x\" and", "column 15: expected a field name, found end of input"},
      {"app == \"x\" and not", "column 19: expected a field name, found end of input"},
      {"and app == \"x\"", "column 1: expected a field name, found 'and'"},
      {"10.0.0.1 == ip", "column 1: expected a field name, found '10.0.0.1'"},
      {"\"app\" == \"x\"", "column 1: expected a field name, found string \"app\""},
      {"app", "column 4: expected an operator after 'app', found end of input"},
      {"app \"x\"", "column 5: expected an operator after 'app', found string \"x\""},
      {"app not (\"x\")", "column 9: expected 'in' after 'not', found '('"},
      {"port in (80, 443", "column 17: expected ',' or ')' in the list, found end of input"},
      {"port in (80 443)", "column 13: expected ',' or ')' in the list, found '443'"},
      {"port in ()", "column 10: expected a value after '(', found ')'"},
      {"port in (80,)", "column 13: expected a value after ',', found ')'"},
      {"port == and", "column 9: expected a value after '==', found 'and'"},
      {"port == 99999999999999999999", "column 9: number '99999999999999999999' is too large"},
      {"bytes > 18446744073709552k", "column 9: number '18446744073709552k' is too large"},
      {"port == 0x1bb", "column 9: field 'port' takes a number, found '0x1bb'"},
      {"port == 1.5k", "column 9: field 'port' takes a number, found '1.5k'"},
      {"port == \"443\"", "column 9: field 'port' takes a number, found string \"443\""},
      {"l4 == tcpx",
       "column 7: field 'l4' takes a number or tcp, udp, icmp, icmpv6, gre, sctp, found 'tcpx'"},
      {"guessed == yes", "column 12: field 'guessed' takes true or false, found 'yes'"},
      {"type == \"flw\"",
       "column 9: unknown event type \"flw\"; expected flow, flow_stats, flow_purge, "
       "agent_status, agent_hello or definitions"},
      {"app == \"x\" \xff", "column 12: unexpected character '\\xff'"},
      {std::string("app\0== 1", 8), "column 4: unexpected character '\\x00'"},
      {"app == \"" + std::string(100, 'y'), "column 8: unterminated string"},
      {"host ~ \"x\" or " + std::string(50, 'z') + " == 1",
       "column 15: unknown field '" + std::string(40, 'z') + "...'"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ParseError(c.text), c.error) << "filter: " << c.text;
  }
}

TEST(FilterTest, HostileInputFailsCleanly) {
  std::string huge(1 << 20, '(');
  EXPECT_EQ(ParseError(huge),
            "column 65537: filter is 1048576 bytes, longer than the limit of 65536");

  std::string deep = std::string(10'000, '(') + "port == 1" + std::string(10'000, ')');
  EXPECT_EQ(ParseError(deep), "column 65: expression nested deeper than 64 levels");
  std::string nots;
  for (int i = 0; i < 10'000; ++i) nots += "not ";
  EXPECT_EQ(ParseError(nots + "guessed"), "column 257: expression nested deeper than 64 levels");

  // Exactly at the limit is fine (and evaluates without trouble).
  std::string at_limit =
      std::string(Filter::kMaxDepth, '(') + "port == 443" + std::string(Filter::kMaxDepth, ')');
  EXPECT_TRUE(Match(at_limit, YouTubeFlow()));
  std::string not_limit;
  for (int i = 0; i < Filter::kMaxDepth; ++i) not_limit += "not ";
  EXPECT_TRUE(Match(not_limit + "port == 443", YouTubeFlow()));  // an even number of nots

  // Wide is fine: long chains and lists do not nest.
  std::string wide = "vlan == 1";
  for (int i = 2; i < 3000; ++i) wide += " or vlan == " + std::to_string(i);
  ASSERT_LT(wide.size(), Filter::kMaxLength);
  EXPECT_FALSE(Match(wide, YouTubeFlow()));
  EXPECT_TRUE(Match(wide + " or vlan == 0", YouTubeFlow()));
  std::string list = "port in (1";
  for (int i = 2; i < 3000; ++i) list += ", " + std::to_string(i);
  EXPECT_TRUE(Match(list + ")", YouTubeFlow())) << "443 is in the list";
  EXPECT_FALSE(Match("host !~ \"" + std::string(60'000, '*') + "?\"", YouTubeFlow()));

  // Random byte soup from the language's own alphabet: never crashes, and whatever parses
  // renders to text that parses back to the same rendering.
  std::mt19937 rng(20240601);
  const std::string alphabet = "()!=<>~\", \\*?./:0123456789abcdefinotrpgkM\t\xff";
  for (int i = 0; i < 3000; ++i) {
    std::string text(rng() % 40, ' ');
    for (char& c : text) c = alphabet[rng() % alphabet.size()];
    Result<Filter> filter = Filter::Parse(text);
    if (!filter.ok()) {
      EXPECT_EQ(filter.status().message().rfind("column ", 0), 0u) << text;
      continue;
    }
    EXPECT_EQ(Normalise(filter->ToString()), filter->ToString()) << text;
  }
}

// Random subjects and random expressions over a pool of atoms: the evaluator must agree
// with the boolean algebra the text spells, and ToString() must round-trip.
TEST(FilterTest, RandomisedAgreesWithBooleanAlgebra) {
  const std::vector<std::string> atoms = {
      "app == \"YouTube\"",
      "proto in (\"TLS\", \"QUIC\")",
      "host ~ \"*.google.*\"",
      "ip in 10.0.0.0/8",
      "ip in 2001:db8::/32",
      "other_ip == 142.250.74.46",
      "port == 443",
      "port != 53",
      "local_port >= 50000",
      "bytes > 1M",
      "packets <= 100",
      "l4 == udp",
      "guessed",
      "agent == \"probe-1\"",
      "site != \"site-b\"",
      "type == \"flow_stats\"",
      "iface ~ \"eth*\"",
      "vlan in (0, 12)",
      "app !~ \"G*\"",
      "ip_version == 6",
  };
  std::vector<Filter> atom_filters;
  for (const std::string& atom : atoms) {
    Result<Filter> filter = Filter::Parse(atom);
    ASSERT_TRUE(filter.ok()) << atom;
    atom_filters.push_back(filter.value());
  }

  std::mt19937 rng(7);
  auto pick = [&rng](const std::vector<std::string>& pool) { return pool[rng() % pool.size()]; };
  auto random_flow = [&]() {
    v1::FlowRecord r = (rng() % 2) ? YouTubeFlow() : DnsFlowV6();
    v1::FlowMetadata* m = r.mutable_metadata();
    SetAgent(r.mutable_agent(), pick({"probe-1", "probe-2"}), pick({"site-a", "site-b"}));
    r.mutable_context()->set_interface(pick({"eth0", "wlan0", "eth1"}));
    m->set_detected_application_name(pick({"YouTube", "Google", "Unknown", "Netflix"}));
    m->set_detected_protocol_name(pick({"TLS", "QUIC", "DNS", "HTTP"}));
    m->set_host_server_name(pick({"www.google.com", "example.org", "", "a.google.de"}));
    m->set_other_ip(pick({"142.250.74.46", "10.9.9.9", "2001:db8::1", "8.8.8.8"}));
    m->set_local_port(rng() % 2 ? 443 : 50000 + rng() % 100);
    m->set_other_port(rng() % 2 ? 53 : 443);
    m->set_ip_protocol(rng() % 2 ? 6 : 17);
    m->set_vlan_id(rng() % 3 == 0 ? 12 : 0);
    m->set_detection_guessed(rng() % 2);
    r.mutable_counters()->set_total_bytes(rng() % 3'000'000);
    r.mutable_counters()->set_total_packets(rng() % 200);
    return r;
  };

  // Builds a random expression (fully parenthesised where it matters) and its truth value.
  std::function<std::string(int, const std::vector<bool>&, bool*)> build =
      [&](int depth, const std::vector<bool>& truth, bool* value) -> std::string {
    unsigned choice = depth == 0 ? 0 : rng() % 4;
    if (choice == 0) {
      size_t i = rng() % atoms.size();
      *value = truth[i];
      return atoms[i];
    }
    bool left = false, right = false;
    std::string a = build(depth - 1, truth, &left);
    if (choice == 1) {
      *value = !left;
      return "not (" + a + ")";
    }
    std::string b = build(depth - 1, truth, &right);
    *value = choice == 2 ? (left && right) : (left || right);
    return "(" + a + (choice == 2 ? ") and (" : ") or (") + b + ")";
  };

  for (int round = 0; round < 400; ++round) {
    v1::FlowRecord flow = random_flow();
    v1::StoredEvent stats;
    *stats.mutable_agent() = flow.agent();
    stats.mutable_event()->mutable_flow_stats()->mutable_flow()->set_total_bytes(
        flow.counters().total_bytes());
    FilterSubject subject =
        (round % 5 == 0) ? FilterSubject::FromEvent(stats) : FilterSubject::FromFlow(flow);
    std::vector<bool> truth;
    for (const Filter& f : atom_filters) truth.push_back(f.Matches(subject));

    for (int i = 0; i < 10; ++i) {
      bool expected = false;
      std::string text = build(4, truth, &expected);
      Result<Filter> filter = Filter::Parse(text);
      ASSERT_TRUE(filter.ok()) << text << ": " << filter.status().message();
      EXPECT_EQ(filter->Matches(subject), expected) << text;
      Result<Filter> again = Filter::Parse(filter->ToString());
      ASSERT_TRUE(again.ok()) << filter->ToString();
      EXPECT_EQ(again->Matches(subject), expected) << filter->ToString();
      EXPECT_EQ(again->ToString(), filter->ToString());
    }
    // Precedence without parentheses: not > and > or.
    size_t a = rng() % atoms.size(), b = rng() % atoms.size(), c = rng() % atoms.size();
    EXPECT_EQ(Match(atoms[a] + " or " + atoms[b] + " and " + atoms[c], subject),
              truth[a] || (truth[b] && truth[c]));
    EXPECT_EQ(Match("not " + atoms[a] + " and " + atoms[b], subject), !truth[a] && truth[b]);
  }
}

}  // namespace
}  // namespace flowgate
