// The wire readers that let flow scans skip the full parse (storage/src/flow_wire.h): they
// must agree with a protobuf parse on every record and never read past the end of one.
#include "../../storage/src/flow_wire.h"

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "flowgate/common/filter.h"

namespace flowgate::storage {
namespace {

// A random stored flow: any sub-message and any field may be missing, times in any order,
// and the parts a summary skips (TLS, DNS, risks) present or not.
v1::FlowRecord RandomFlow(std::mt19937_64& rng) {
  auto chance = [&](int percent) { return static_cast<int>(rng() % 100) < percent; };
  auto pick = [&](std::initializer_list<const char*> values) {
    return std::string(values.begin()[rng() % values.size()]);
  };
  auto time = [&] { return chance(20) ? 0 : 1'700'000'000'000ULL + rng() % 100'000; };
  v1::FlowRecord flow;
  if (chance(90)) {
    v1::AgentIdentity* agent = flow.mutable_agent();
    agent->set_id(pick({"agent-id-1", "agent-id-2", ""}));
    agent->set_name(pick({"probe-1", "Probe-2", ""}));
    agent->set_site(pick({"site-a", "site-b"}));
    if (chance(50)) agent->set_version("1.2.3");
  }
  if (chance(70)) {
    flow.mutable_context()->set_interface(pick({"eth0", "wlan0", ""}));
    flow.mutable_context()->set_established(chance(50));
  }
  if (chance(85)) {
    v1::FlowMetadata* m = flow.mutable_metadata();
    m->set_digest(std::string(40, static_cast<char>('a' + rng() % 6)));
    m->set_ip_version(chance(80) ? 4 : 6);
    m->set_ip_protocol(chance(70) ? 6 : 17);
    if (chance(20)) m->set_vlan_id(static_cast<uint32_t>(rng() % 4096));
    m->set_local_ip(pick({"10.0.0.1", "192.168.1.7", "2001:db8::1"}));
    m->set_other_ip(pick({"198.51.100.3", "203.0.113.9", ""}));
    m->set_local_port(static_cast<uint32_t>(rng() % 65536));
    m->set_other_port(chance(50) ? 443 : static_cast<uint32_t>(rng() % 65536));
    m->set_local_mac("02:00:00:00:00:01");
    m->set_detected_protocol_name(pick({"TLS", "DNS", "HTTP", ""}));
    m->set_detected_application_name(pick({"YouTube", "Netflix", "Unknown", ""}));
    m->set_detection_guessed(chance(30));
    m->set_host_server_name(pick({"www.youtube.com", "example.org", ""}));
    if (chance(50)) m->mutable_ssl()->set_client_sni("www.youtube.com");
    if (chance(30)) m->mutable_dns()->set_query("example.org");
    m->set_first_seen_at(time());
    m->set_last_seen_at(time());
    if (chance(30)) m->set_detection_confidence("DPI");
  }
  if (chance(80)) {
    v1::FlowCounters* c = flow.mutable_counters();
    c->set_digest(std::string(40, static_cast<char>('a' + rng() % 6)));
    c->set_last_seen_at(time());
    c->set_local_bytes(rng() % 1'000'000);
    c->set_total_bytes(rng() % 10'000'000);
    c->set_total_packets(rng() % 10'000);
  }
  if (chance(20)) flow.set_purge_reason(v1::PURGE_REASON_EXPIRED);
  return flow;
}

// `bytes` copied into a buffer of exactly its size, so that a read past the end is a
// heap overflow the sanitizers report.
std::unique_ptr<char[]> ExactCopy(std::string_view bytes) {
  auto copy = std::make_unique<char[]>(bytes.size() + 1);  // never empty
  std::copy(bytes.begin(), bytes.end(), copy.get());
  return copy;
}

void ExpectSameActivity(const FlowActivity& actual, const FlowActivity& expected) {
  EXPECT_EQ(actual.first_ms, expected.first_ms);
  EXPECT_EQ(actual.last_ms, expected.last_ms);
}

TEST(FlowWireTest, TimesAgreeWithAFullParseOnRandomRecords) {
  std::mt19937_64 rng(5);
  for (int i = 0; i < 2000; ++i) {
    const v1::FlowRecord flow = RandomFlow(rng);
    const std::string bytes = flow.SerializeAsString();
    std::optional<FlowActivity> activity = SerializedFlowActivity(bytes);
    ASSERT_TRUE(activity.has_value()) << flow.ShortDebugString();
    ExpectSameActivity(*activity, FlowActivityOf(flow));
  }
}

TEST(FlowWireTest, SummaryHoldsWhatFiltersOrdersAndTopRead) {
  std::mt19937_64 rng(6);
  v1::FlowRecord summary;  // reused, as scans do: nothing of one record may stay for the next
  for (int i = 0; i < 2000; ++i) {
    const v1::FlowRecord flow = RandomFlow(rng);
    FlowActivity activity;
    ASSERT_TRUE(DecodeFlowSummary(flow.SerializeAsString(), &summary, &activity));
    ExpectSameActivity(activity, FlowActivityOf(flow));
    EXPECT_EQ(summary.agent().id(), flow.agent().id());
    EXPECT_EQ(summary.agent().name(), flow.agent().name());
    EXPECT_EQ(summary.agent().site(), flow.agent().site());
    EXPECT_EQ(summary.context().interface(), flow.context().interface());
    const v1::FlowMetadata &m = summary.metadata(), &want = flow.metadata();
    EXPECT_EQ(m.digest(), want.digest());
    EXPECT_EQ(m.ip_version(), want.ip_version());
    EXPECT_EQ(m.ip_protocol(), want.ip_protocol());
    EXPECT_EQ(m.vlan_id(), want.vlan_id());
    EXPECT_EQ(m.local_ip(), want.local_ip());
    EXPECT_EQ(m.other_ip(), want.other_ip());
    EXPECT_EQ(m.local_port(), want.local_port());
    EXPECT_EQ(m.other_port(), want.other_port());
    EXPECT_EQ(m.detected_protocol_name(), want.detected_protocol_name());
    EXPECT_EQ(m.detected_application_name(), want.detected_application_name());
    EXPECT_EQ(m.detection_guessed(), want.detection_guessed());
    EXPECT_EQ(m.host_server_name(), want.host_server_name());
    EXPECT_EQ(m.first_seen_at(), want.first_seen_at());
    EXPECT_EQ(m.last_seen_at(), want.last_seen_at());
    EXPECT_EQ(summary.counters().digest(), flow.counters().digest());
    EXPECT_EQ(summary.counters().last_seen_at(), flow.counters().last_seen_at());
    EXPECT_EQ(summary.counters().total_bytes(), flow.counters().total_bytes());
    EXPECT_EQ(summary.counters().total_packets(), flow.counters().total_packets());
    // What the summary leaves out stays out.
    EXPECT_FALSE(m.has_ssl());
    EXPECT_TRUE(m.local_mac().empty());
    EXPECT_EQ(summary.counters().local_bytes(), 0u);
  }
}

// Scans decide on the summary what they would decide on the whole record: for every field
// of the filter language (filter.h), the summary and the record match alike.
TEST(FlowWireTest, FiltersMatchTheSummaryAsTheWholeRecord) {
  const char* kFilters[] = {"app == \"YouTube\"",
                            "proto ~ \"T*\"",
                            "host == \"example.org\"",
                            "agent == \"probe-1\"",
                            "agent == \"agent-id-2\"",
                            "site != \"site-a\"",
                            "iface == \"eth0\"",
                            "type == \"flow\"",
                            "digest ~ \"a*\"",
                            "ip in 10.0.0.0/8",
                            "local_ip == 192.168.1.7",
                            "other_ip in 203.0.113.0/24",
                            "port == 443",
                            "local_port < 1000",
                            "other_port >= 443",
                            "vlan > 100",
                            "ip_version == 6",
                            "l4 == udp",
                            "bytes > 5000000",
                            "packets <= 5000",
                            "guessed",
                            "not app == \"Unknown\" and (port == 443 or host ~ \"*.youtube.com\")"};
  std::vector<Filter> filters;
  for (const char* text : kFilters) {
    Result<Filter> filter = Filter::Parse(text);
    ASSERT_TRUE(filter.ok()) << text << ": " << filter.status().message();
    filters.push_back(std::move(filter).value());
  }
  std::mt19937_64 rng(7);
  v1::FlowRecord summary;
  for (int i = 0; i < 2000; ++i) {
    const v1::FlowRecord flow = RandomFlow(rng);
    FlowActivity activity;
    ASSERT_TRUE(DecodeFlowSummary(flow.SerializeAsString(), &summary, &activity));
    for (size_t f = 0; f < filters.size(); ++f) {
      EXPECT_EQ(filters[f].Matches(FilterSubject::FromFlow(summary)),
                filters[f].Matches(FilterSubject::FromFlow(flow)))
          << kFilters[f] << " on " << flow.ShortDebugString();
    }
  }
}

TEST(FlowWireTest, ReusingParseEqualsAFreshParse) {
  std::mt19937_64 rng(8);
  v1::FlowRecord reused;
  for (int i = 0; i < 500; ++i) {
    const std::string bytes = RandomFlow(rng).SerializeAsString();
    v1::FlowRecord fresh;
    ASSERT_TRUE(fresh.ParseFromString(bytes));
    ASSERT_TRUE(ParseFlowRecordReusing(bytes, &reused));
    EXPECT_EQ(reused.SerializeAsString(), fresh.SerializeAsString());
    EXPECT_EQ(reused.has_agent(), fresh.has_agent());
    EXPECT_EQ(reused.has_context(), fresh.has_context());
    EXPECT_EQ(reused.has_metadata(), fresh.has_metadata());
    EXPECT_EQ(reused.has_counters(), fresh.has_counters());
  }
}

// Every prefix of a record is read within its bounds, and the readers accept it exactly
// when a parse does (a prefix that ends between two fields is a well-formed record).
TEST(FlowWireTest, TruncatedRecordsAreRejectedWithinBounds) {
  std::mt19937_64 rng(9);
  v1::FlowRecord summary;
  for (int i = 0; i < 40; ++i) {
    const v1::FlowRecord flow = RandomFlow(rng);
    const std::string bytes = flow.SerializeAsString();
    for (size_t length = 0; length < bytes.size(); ++length) {
      const std::unique_ptr<char[]> copy = ExactCopy(std::string_view(bytes).substr(0, length));
      const std::string_view prefix(copy.get(), length);
      v1::FlowRecord parsed;
      const bool parses = parsed.ParseFromArray(prefix.data(), static_cast<int>(length));
      std::optional<FlowActivity> activity = SerializedFlowActivity(prefix);
      EXPECT_EQ(activity.has_value(), parses) << "prefix of " << length << " bytes";
      FlowActivity decoded;
      EXPECT_EQ(DecodeFlowSummary(prefix, &summary, &decoded), parses);
      if (parses && activity) ExpectSameActivity(*activity, FlowActivityOf(parsed));
    }
  }
}

TEST(FlowWireTest, MalformedWireFormatIsRejected) {
  FlowActivity activity;
  v1::FlowRecord summary;
  const std::string cases[] = {
      std::string("\x1a\x05\xe0\x01", 4),      // metadata says 5 bytes, 2 follow
      std::string("\x1a\x03\xe0\x81\x80", 5),  // a varint cut inside the nested message
      std::string(11, '\xff'),                 // a tag varint longer than 10 bytes
      std::string("\x00\x01", 2),              // field number 0
      std::string("\x1b", 1),                  // a group (wire type 3)
      std::string("\x09\x01\x02", 3),          // a fixed64 with 2 of its 8 bytes
  };
  for (const std::string& bytes : cases) {
    const std::unique_ptr<char[]> copy = ExactCopy(bytes);
    const std::string_view view(copy.get(), bytes.size());
    EXPECT_FALSE(SerializedFlowActivity(view).has_value()) << ::testing::PrintToString(bytes);
    EXPECT_FALSE(DecodeFlowSummary(view, &summary, &activity)) << ::testing::PrintToString(bytes);
  }
}

TEST(FlowWireTest, ScannedFlowParsesOnDemandAndReportsCorruption) {
  std::mt19937_64 rng(10);
  const v1::FlowRecord flow = RandomFlow(rng);
  const std::string bytes = flow.SerializeAsString();
  v1::FlowRecord summary, scratch;
  FlowActivity activity;
  ASSERT_TRUE(DecodeFlowSummary(bytes, &summary, &activity));
  ScannedFlow scanned(summary, bytes, &scratch);
  ASSERT_NE(scanned.whole(), nullptr);
  EXPECT_EQ(scanned.whole()->SerializeAsString(), bytes);

  // A string that is not UTF-8 passes the wire reader but not the parse.
  v1::FlowRecord bad;
  bad.mutable_agent()->set_id("agent");
  std::string bad_bytes = bad.SerializeAsString();
  bad_bytes.back() = '\xff';
  ASSERT_TRUE(DecodeFlowSummary(bad_bytes, &summary, &activity));
  ScannedFlow corrupt(summary, bad_bytes, &scratch);
  EXPECT_EQ(corrupt.whole(), nullptr);
}

}  // namespace
}  // namespace flowgate::storage
