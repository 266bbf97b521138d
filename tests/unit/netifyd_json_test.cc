#include "flowgate/common/netifyd_json.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace flowgate {
namespace {

using nlohmann::json;

v1::Event SampleFlow() {
  v1::Event e;
  auto* f = e.mutable_flow();
  f->mutable_context()->set_interface("eth0");
  auto* m = f->mutable_flow();
  m->set_digest(std::string(40, 'a'));
  m->set_ip_version(4);
  m->set_ip_protocol(6);
  m->set_local_ip("192.168.1.10");
  m->set_other_ip("142.250.1.1");
  m->set_local_port(50000);
  m->set_other_port(443);
  m->set_other_type(v1::OTHER_TYPE_REMOTE);
  m->set_detected_protocol(91);
  m->set_detected_protocol_name("TLS");
  m->set_detected_application(126);
  m->set_detected_application_name("Google");
  m->set_host_server_name("www.google.com");
  m->mutable_ssl()->set_client_sni("www.google.com");
  m->set_first_seen_at(1700000000123);
  return e;
}

TEST(NetifydJson, FrameIsLengthHeaderThenPayloadEndingInNewline) {
  std::string frame = EncodeNetifydFrame(SampleFlow(), nullptr);
  size_t nl = frame.find('\n');
  ASSERT_NE(nl, std::string::npos);
  std::string header = frame.substr(0, nl + 1);
  std::string payload = frame.substr(nl + 1);
  EXPECT_EQ(header, "{\"length\": " + std::to_string(payload.size()) + "}\n");
  EXPECT_EQ(payload.back(), '\n');
  EXPECT_EQ(payload.find('\n'), payload.size() - 1) << "payload must be a single line";
  EXPECT_EQ(payload.find(": "), std::string::npos) << "payload must be compact";
}

TEST(NetifydJson, FlowCarriesNetifydFieldsAndOmitsEmptyStrings) {
  std::string payload = EncodeNetifydPayload(SampleFlow(), nullptr);
  json j = json::parse(payload);
  EXPECT_EQ(j["type"], "flow");
  EXPECT_EQ(j["interface"], "eth0");
  EXPECT_EQ(j["internal"], false);
  EXPECT_EQ(j["established"], false);
  EXPECT_EQ(j["flow"]["detected_protocol_name"], "TLS");
  EXPECT_EQ(j["flow"]["detected_application_name"], "Google");
  EXPECT_EQ(j["flow"]["other_type"], "remote");
  EXPECT_EQ(j["flow"]["first_seen_at"], 1700000000123ULL);
  EXPECT_EQ(j["flow"]["ssl"], json({{"client_sni", "www.google.com"}}));
  EXPECT_FALSE(j["flow"].contains("http")) << "an empty object is omitted";
  EXPECT_EQ(j["flow"]["local_mac"], "00:00:00:00:00:00") << "an unknown MAC is all zeros";
  EXPECT_FALSE(j.contains("agent")) << "agent output carries no agent object";
  // Keys come out sorted, as netifyd's do.
  EXPECT_LT(payload.find("\"established\""), payload.find("\"flow\""));
  EXPECT_LT(payload.find("\"interface\""), payload.find("\"type\""));
}

TEST(NetifydJson, MergedStreamNamesTheSourceAgent) {
  v1::AgentIdentity agent;
  agent.set_id("0f1e2d3c-0000-4000-8000-000000000001");
  agent.set_name("probe-1");
  agent.set_site("site-a");
  json j = json::parse(EncodeNetifydPayload(SampleFlow(), &agent));
  EXPECT_EQ(j["agent"], json({{"id", agent.id()}, {"name", "probe-1"}, {"site", "site-a"}}));
}

TEST(NetifydJson, PurgeHasReasonAndCounters) {
  v1::Event e;
  auto* p = e.mutable_flow_purge();
  p->set_reason(v1::PURGE_REASON_TERMINATED);
  p->mutable_flow()->set_total_bytes(1234);
  p->mutable_flow()->set_digest("ab");
  json j = json::parse(EncodeNetifydPayload(e, nullptr));
  EXPECT_EQ(j["type"], "flow_purge");
  EXPECT_EQ(j["reason"], "terminated");
  EXPECT_EQ(j["flow"]["total_bytes"], 1234);
  p->set_reason(v1::PURGE_REASON_EVICTED);
  EXPECT_EQ(json::parse(EncodeNetifydPayload(e, nullptr))["reason"], "expired");
}

TEST(NetifydJson, HelloAndStatusUseNetifydTypes) {
  v1::Event hello;
  hello.mutable_agent_hello()->set_agent_version("0.1.0");
  hello.mutable_agent_hello()->set_json_version(kNetifydJsonVersion);
  std::string payload = EncodeNetifydPayload(hello, nullptr);
  EXPECT_NE(payload.find("\"json_version\":1.9"), std::string::npos) << payload;
  EXPECT_EQ(json::parse(payload)["agent_version"], "0.1.0");

  v1::Event status;
  status.mutable_agent_status()->set_timestamp(1700000000);
  auto* stats = status.mutable_agent_status()->add_stats();
  stats->set_name("eth0");
  stats->set_raw(10);
  json j = json::parse(EncodeNetifydPayload(status, nullptr));
  EXPECT_EQ(j["type"], "agent_status");
  EXPECT_EQ(j["timestamp"], 1700000000);
  EXPECT_EQ(j["stats"]["eth0"]["raw"], 10);
}

TEST(NetifydJson, InvalidUtf8BecomesReplacementCharacter) {
  v1::Event e = SampleFlow();
  e.mutable_flow()->mutable_flow()->set_host_server_name(std::string("bad\xff\xfehost"));
  std::string payload = EncodeNetifydPayload(e, nullptr);
  json j = json::parse(payload);  // must be valid UTF-8 JSON
  EXPECT_EQ(j["flow"]["host_server_name"], "bad\xEF\xBF\xBD\xEF\xBF\xBDhost");
}

TEST(NetifydFrameReader, ReassemblesFramesSplitAtEveryByte) {
  std::string stream =
      EncodeNetifydFrame(SampleFlow(), nullptr) + EncodeNetifydFrame(SampleFlow(), nullptr);
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    NetifydFrameReader reader;
    ASSERT_TRUE(reader.Feed(stream.substr(0, cut)).ok());
    ASSERT_TRUE(reader.Feed(stream.substr(cut)).ok());
    std::string payload;
    int count = 0;
    while (reader.Next(&payload)) {
      ++count;
      EXPECT_EQ(json::parse(payload)["type"], "flow");
    }
    EXPECT_EQ(count, 2) << "cut at " << cut;
    EXPECT_EQ(reader.pending_bytes(), 0u);
  }
}

TEST(NetifydFrameReader, PayloadsNotYetTakenSurviveLaterFeeds) {
  const std::string one = FrameNetifydPayload("{\"n\":1}\n");
  const std::string two = FrameNetifydPayload("{\"n\":2}\n");
  const std::string three = FrameNetifydPayload("{\"n\":3}\n");
  NetifydFrameReader reader;
  ASSERT_TRUE(reader.Feed(one + two.substr(0, 5)).ok());
  std::string_view view;
  ASSERT_TRUE(reader.Next(&view));
  EXPECT_EQ(view, "{\"n\":1}\n");
  EXPECT_EQ(reader.pending_bytes(), 5u);
  // `two` completes but is not taken before more bytes arrive.
  ASSERT_TRUE(reader.Feed(two.substr(5) + three.substr(0, 3)).ok());
  ASSERT_TRUE(reader.Feed(three.substr(3)).ok());
  std::string payload;
  ASSERT_TRUE(reader.Next(&payload));
  EXPECT_EQ(payload, "{\"n\":2}\n");
  ASSERT_TRUE(reader.Next(&view));
  EXPECT_EQ(view, "{\"n\":3}\n");
  EXPECT_FALSE(reader.Next(&view));
  EXPECT_EQ(reader.pending_bytes(), 0u);
}

TEST(NetifydFrameReader, RejectsMalformedHeadersAndBodies) {
  for (const char* bad :
       {"{\"length\":5}\nabcd\n", "{\"length\": x}\n", "hello\n", "{\"length\": 3}\nabc",
        "{\"length\": 0}\n", "{\"length\": 99999999999999999999}\n"}) {
    NetifydFrameReader reader(1 << 20);
    Status s = reader.Feed(bad);
    EXPECT_FALSE(s.ok()) << "accepted: " << bad;
    EXPECT_FALSE(reader.Feed("{\"length\": 2}\n{\n").ok()) << "a failed reader stays failed";
  }
}

}  // namespace
}  // namespace flowgate

namespace flowgate {
namespace {

// Every object's keys ascend, at every depth, as netifyd's do.
void ExpectSortedKeys(const nlohmann::ordered_json& j, const std::string& where) {
  if (j.is_object()) {
    std::string previous;
    for (auto it = j.begin(); it != j.end(); ++it) {
      EXPECT_LT(previous, it.key()) << "keys out of order at " << where;
      previous = it.key();
      ExpectSortedKeys(it.value(), where + "." + it.key());
    }
  } else if (j.is_array()) {
    for (const auto& v : j) ExpectSortedKeys(v, where + "[]");
  }
}

v1::Event FullStatus() {
  v1::Event e;
  v1::AgentStatus* s = e.mutable_agent_status();
  s->set_version(1.9);
  s->set_cpu_user(0.0);
  s->set_final(true);
  auto* i2 = s->add_interfaces();
  i2->set_name("wlan0");
  i2->set_role("WAN");
  i2->add_addr("192.0.2.1");
  auto* i1 = s->add_interfaces();
  i1->set_name("eth0");
  i1->set_role("LAN");
  i1->set_state("up");
  s->add_stats()->set_name("wlan0");
  s->add_stats()->set_name("eth0");
  (*s->mutable_devices())["02:00:00:00:00:02"].add_addr("10.0.0.2");
  (*s->mutable_devices())["02:00:00:00:00:01"].add_addr("10.0.0.1");
  s->mutable_flows()->set_active(3);
  s->mutable_transport()->set_spool_bytes(7);
  s->mutable_gateway()->add_json_client()->set_peer("unix:/x");
  return e;
}

TEST(NetifydJson, EveryMessageHasSortedKeysAtEveryDepth) {
  v1::AgentIdentity agent;
  agent.set_id("id");
  agent.set_name("n");
  agent.set_site("s");
  v1::Event flow;
  auto* m = flow.mutable_flow()->mutable_flow();
  m->set_digest("d");
  m->mutable_ssl()->set_version("0x0303");
  m->mutable_ssl()->set_client_sni("a");
  m->mutable_ssl()->set_server_ja3("b");
  m->mutable_http()->set_url("/");
  m->mutable_http()->set_user_agent("ua");
  m->mutable_dns()->set_query("q");
  m->mutable_dns()->set_query_type(1);
  m->mutable_dhcp()->set_fingerprint("f");
  m->mutable_ssh()->set_client("c");
  m->mutable_bt()->set_info_hash("h");
  m->mutable_risks()->add_risks(5);
  v1::Event purge;
  purge.mutable_flow_purge()->set_reason(v1::PURGE_REASON_CLOSED);
  v1::Event stats;
  stats.mutable_flow_stats()->mutable_flow()->set_local_bytes(1);
  v1::Event hello;
  hello.mutable_agent_hello()->set_agent_version("1");
  v1::Event definitions;
  auto* tag = definitions.mutable_definitions()->add_protocols();
  tag->set_id(7);
  tag->set_tag("HTTP");
  for (const v1::Event& e : {flow, purge, stats, hello, definitions, FullStatus()}) {
    for (const v1::AgentIdentity* source : {static_cast<const v1::AgentIdentity*>(nullptr),
                                            static_cast<const v1::AgentIdentity*>(&agent)}) {
      const std::string payload = EncodeNetifydPayload(e, source);
      ExpectSortedKeys(nlohmann::ordered_json::parse(payload), std::string(NetifydTypeName(e)));
    }
  }
}

TEST(NetifydJson, StatusKeepsFloatsFloatsAndOrdersMapsByName) {
  const std::string payload = EncodeNetifydPayload(FullStatus(), nullptr);
  EXPECT_NE(payload.find("\"cpu_user\":0.0"), std::string::npos) << payload;
  EXPECT_NE(payload.find("\"version\":1.9"), std::string::npos) << payload;
  EXPECT_NE(payload.find("\"final\":true"), std::string::npos) << payload;
  nlohmann::json j = nlohmann::json::parse(payload);
  EXPECT_EQ(j["interfaces"]["eth0"]["state"], "up");
  EXPECT_EQ(j["interfaces"]["wlan0"]["addr"][0], "192.0.2.1");
  EXPECT_EQ(j["devices"]["02:00:00:00:00:01"][0], "10.0.0.1");
  EXPECT_EQ(j["flow_table"]["active"], 3);
  EXPECT_EQ(j["transport"]["spool_bytes"], 7);
  EXPECT_EQ(j["gateway"]["json_client"][0]["peer"], "unix:/x");
}

TEST(NetifydJson, EscapesControlCharactersQuotesAndBackslashes) {
  v1::Event e = SampleFlow();
  e.mutable_flow()->mutable_flow()->set_host_server_name(std::string("a\"b\\c\n\x01\td", 9));
  const std::string payload = EncodeNetifydPayload(e, nullptr);
  EXPECT_EQ(payload.find('\n'), payload.size() - 1);
  EXPECT_EQ(nlohmann::json::parse(payload)["flow"]["host_server_name"],
            std::string("a\"b\\c\n\x01\td", 9));
  // Valid multi-byte UTF-8 passes through unchanged; overlong and surrogate forms do not.
  e.mutable_flow()->mutable_flow()->set_host_server_name(
      "caf\xC3\xA9 \xE2\x82\xAC \xC0\xAF \xED\xA0\x80");
  nlohmann::json j = nlohmann::json::parse(EncodeNetifydPayload(e, nullptr));
  EXPECT_EQ(
      j["flow"]["host_server_name"],
      "caf\xC3\xA9 \xE2\x82\xAC \xEF\xBF\xBD\xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

}  // namespace
}  // namespace flowgate
