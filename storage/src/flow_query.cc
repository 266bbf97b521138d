#include "flowgate/storage/flow_query.h"

#include <algorithm>
#include <charconv>
#include <optional>
#include <queue>
#include <string_view>
#include <tuple>
#include <unordered_map>

namespace flowgate::storage {
namespace {

constexpr char kTokenVersion[] = "p1";

// Where a flow sits in a query's order: the order's value, then (agent id, digest), which
// make every flow's position unique.
struct SortKey {
  uint64_t value = 0;
  std::string agent_id;
  std::string digest;
};

uint64_t OrderValue(const v1::FlowRecord& flow, v1::FlowOrder order) {
  if (order == v1::FLOW_ORDER_BYTES_DESC) return flow.counters().total_bytes();
  return FlowActivityOf(flow).first_ms;
}

SortKey KeyOf(const v1::FlowRecord& flow, v1::FlowOrder order) {
  return {OrderValue(flow, order), flow.agent().id(), flow.counters().digest()};
}

// True when `a` comes before `b` in `order`.
bool Before(const SortKey& a, const SortKey& b, v1::FlowOrder order) {
  if (a.value != b.value) {
    return order == v1::FLOW_ORDER_FIRST_SEEN_ASC ? a.value < b.value : a.value > b.value;
  }
  return std::tie(a.agent_id, a.digest) < std::tie(b.agent_id, b.digest);
}

std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) {
    out += kDigits[static_cast<uint8_t>(c) >> 4];
    out += kDigits[static_cast<uint8_t>(c) & 0xf];
  }
  return out;
}

bool Unhex(std::string_view hex, std::string* out) {
  if (hex.size() % 2 != 0) return false;
  out->clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    unsigned byte = 0;
    auto [end, ec] = std::from_chars(hex.data() + i, hex.data() + i + 2, byte, 16);
    if (ec != std::errc() || end != hex.data() + i + 2) return false;
    out->push_back(static_cast<char>(byte));
  }
  return true;
}

// A token: "p1.<order>.<value>.<hex agent id>.<hex digest>". Opaque to clients.
std::string EncodeToken(const SortKey& key, v1::FlowOrder order) {
  return std::string(kTokenVersion) + "." + std::to_string(static_cast<int>(order)) + "." +
         std::to_string(key.value) + "." + Hex(key.agent_id) + "." + Hex(key.digest);
}

Result<SortKey> DecodeToken(std::string_view token, v1::FlowOrder order) {
  std::vector<std::string_view> parts;
  for (size_t start = 0;;) {
    size_t dot = token.find('.', start);
    parts.push_back(token.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  const Status bad = Status::InvalidArgument(
      "page_token does not parse: pass next_page_token from the previous response unchanged");
  if (parts.size() != 5 || parts[0] != kTokenVersion) return bad;
  if (parts[1] != std::to_string(static_cast<int>(order))) {
    return Status::InvalidArgument("page_token belongs to a query with another order");
  }
  SortKey key;
  auto [end, ec] = std::from_chars(parts[2].data(), parts[2].data() + parts[2].size(), key.value);
  if (ec != std::errc() || end != parts[2].data() + parts[2].size()) return bad;
  if (!Unhex(parts[3], &key.agent_id) || !Unhex(parts[4], &key.digest)) return bad;
  return key;
}

Status ValidateLimit(uint32_t limit, uint32_t max, const char* what) {
  if (limit <= max) return Status::Ok();
  return Status::InvalidArgument(std::string(what) + " " + std::to_string(limit) +
                                 " exceeds the maximum of " + std::to_string(max));
}

uint64_t MetricOf(const v1::TopEntry& entry, v1::Metric metric) {
  switch (metric) {
    case v1::METRIC_PACKETS:
      return entry.packets();
    case v1::METRIC_FLOWS:
      return entry.flows();
    default:
      return entry.bytes();
  }
}

}  // namespace

FlowActivity FlowActivityOf(const v1::FlowRecord& flow) {
  FlowActivity activity;
  activity.last_ms = std::max(flow.metadata().last_seen_at(), flow.counters().last_seen_at());
  activity.first_ms = flow.metadata().first_seen_at();
  if (activity.first_ms == 0 || activity.first_ms > activity.last_ms) {
    activity.first_ms =
        std::min(activity.first_ms == 0 ? activity.last_ms : activity.first_ms, activity.last_ms);
  }
  return activity;
}

bool FlowActiveIn(const v1::FlowRecord& flow, uint64_t from_ms, uint64_t to_ms) {
  const FlowActivity activity = FlowActivityOf(flow);
  return activity.last_ms >= from_ms && (to_ms == 0 || activity.first_ms < to_ms);
}

Result<AppendResult> FlowStore::Append(const v1::Envelope& envelope, uint64_t received_at_ms,
                                       std::vector<v1::StoredEvent>* stored) {
  std::vector<AppendItem> items(1);
  items[0].envelope = envelope;
  items[0].received_at_ms = received_at_ms;
  FLOWGATE_RETURN_IF_ERROR(AppendBatch(items, stored != nullptr));
  if (stored != nullptr) *stored = std::move(items[0].stored);
  return std::move(items[0].result);
}

namespace {
// The default PrepareBatch's group: already appended, with the outcome CommitBatch returns.
class AppendedBatch final : public PreparedBatch {
 public:
  explicit AppendedBatch(Status appended) : status(std::move(appended)) {}
  Status status;
};
}  // namespace

std::unique_ptr<PreparedBatch> FlowStore::PrepareBatch(std::vector<AppendItem>& items,
                                                       bool want_stored) {
  return std::make_unique<AppendedBatch>(AppendBatch(items, want_stored));
}

Status FlowStore::CommitBatch(std::unique_ptr<PreparedBatch> prepared,
                              std::vector<AppendItem>& /*items*/) {
  return static_cast<AppendedBatch&>(*prepared).status;
}

Status FlowStore::ScanActiveFlows(uint64_t from_ms, uint64_t to_ms,
                                  const std::function<bool(const v1::FlowRecord&)>& visit) {
  return ScanFlows([&](const v1::FlowRecord& flow) {
    return !FlowActiveIn(flow, from_ms, to_ms) || visit(flow);
  });
}

Status FlowStore::ScanMatchingFlows(const FlowScan& scan,
                                    const std::function<bool(ScannedFlow&)>& visit) {
  return ScanActiveFlows(scan.from_ms, scan.to_ms, [&](const v1::FlowRecord& record) {
    if (scan.filter != nullptr && !scan.filter->Matches(FilterSubject::FromFlow(record))) {
      return true;
    }
    ScannedFlow flow(record);
    return visit(flow);
  });
}

Status ValidateWindow(const TimeWindow& window) {
  if (window.to_ms != 0 && window.from_ms >= window.to_ms) {
    return Status::InvalidArgument("time range is empty or inverted: from " +
                                   std::to_string(window.from_ms) + " ms is not before to " +
                                   std::to_string(window.to_ms) + " ms");
  }
  return Status::Ok();
}

Result<FlowPage> QueryFlows(FlowStore& store, const FlowQuery& query) {
  FLOWGATE_RETURN_IF_ERROR(ValidateWindow(query.window));
  FLOWGATE_RETURN_IF_ERROR(ValidateLimit(query.limit, kMaxPageSize, "limit"));
  const size_t limit = query.limit == 0 ? kDefaultPageSize : query.limit;
  std::optional<SortKey> after;
  if (!query.page_token.empty()) {
    Result<SortKey> token = DecodeToken(query.page_token, query.order);
    if (!token.ok()) return token.status();
    after = std::move(token).value();
  }
  // The best limit + 1 flows after the token, the last in order on top, so memory stays
  // bounded by the page, not by the range.
  struct Entry {
    SortKey key;
    v1::FlowRecord flow;
  };
  const v1::FlowOrder order = query.order;
  auto later = [order](const Entry& a, const Entry& b) { return Before(a.key, b.key, order); };
  std::priority_queue<Entry, std::vector<Entry>, decltype(later)> best(later);
  Status failed = Status::Ok();
  // A flow is placed on its summary; only the few that make the page so far are parsed.
  FLOWGATE_RETURN_IF_ERROR(store.ScanMatchingFlows(
      {.from_ms = query.window.from_ms, .to_ms = query.window.to_ms, .filter = &query.filter},
      [&](ScannedFlow& flow) {
        SortKey key = KeyOf(flow.summary(), order);
        if (after && !Before(*after, key, order)) return true;
        if (best.size() == limit + 1 && !Before(key, best.top().key, order)) return true;
        const v1::FlowRecord* whole = flow.whole();
        if (whole == nullptr) {
          failed = Status::Corruption("flow record does not parse");
          return false;
        }
        best.push({std::move(key), *whole});
        if (best.size() > limit + 1) best.pop();
        return true;
      }));
  FLOWGATE_RETURN_IF_ERROR(failed);
  std::vector<Entry> sorted;
  sorted.reserve(best.size());
  while (!best.empty()) {
    sorted.push_back(std::move(const_cast<Entry&>(best.top())));
    best.pop();
  }
  std::reverse(sorted.begin(), sorted.end());
  FlowPage page;
  if (sorted.size() > limit) {
    sorted.resize(limit);
    page.next_page_token = EncodeToken(sorted.back().key, order);
  }
  page.flows.reserve(sorted.size());
  for (Entry& entry : sorted) page.flows.push_back(std::move(entry.flow));
  return page;
}

std::string TopKeyOf(const v1::FlowRecord& flow, v1::GroupBy group_by) {
  switch (group_by) {
    case v1::GROUP_BY_PROTOCOL:
      return flow.metadata().detected_protocol_name();
    case v1::GROUP_BY_HOST:
      return flow.metadata().host_server_name();
    case v1::GROUP_BY_LOCAL_ADDRESS:
      return flow.metadata().local_ip();
    case v1::GROUP_BY_OTHER_ADDRESS:
      return flow.metadata().other_ip();
    case v1::GROUP_BY_AGENT:
      return flow.agent().name().empty() ? flow.agent().id() : flow.agent().name();
    default:
      return flow.metadata().detected_application_name();
  }
}

namespace {

// Sorts by the metric, largest first, then by key, and keeps the first `limit`.
std::vector<v1::TopEntry> Ranked(std::unordered_map<std::string, v1::TopEntry>* groups,
                                 v1::Metric metric, size_t limit) {
  std::vector<v1::TopEntry> entries;
  entries.reserve(groups->size());
  for (auto& [key, entry] : *groups) entries.push_back(std::move(entry));
  std::sort(entries.begin(), entries.end(), [metric](const v1::TopEntry& a, const v1::TopEntry& b) {
    const uint64_t ma = MetricOf(a, metric), mb = MetricOf(b, metric);
    return ma != mb ? ma > mb : a.key() < b.key();
  });
  if (entries.size() > limit) entries.resize(limit);
  return entries;
}

// The field names a filter compares, read from its canonical rendering (every comparison
// prints as `field op value`, `field in (...)` or `field not in (...)`). Nullopt when the
// rendering holds something this reader does not expect.
std::optional<std::vector<std::string>> FieldsOf(const Filter& filter) {
  const std::string text = filter.ToString();
  std::vector<std::string> tokens;
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (c == ' ') {
      ++i;
    } else if (c == '"') {  // a string value: skip it, escapes included
      size_t j = i + 1;
      while (j < text.size() && text[j] != '"') j += text[j] == '\\' ? 2 : 1;
      if (j >= text.size()) return std::nullopt;
      tokens.emplace_back("\"");
      i = j + 1;
    } else if (c == '(' || c == ')' || c == ',') {
      tokens.emplace_back(1, c);
      ++i;
    } else if (std::string_view("=!<>~").find(c) != std::string_view::npos) {
      size_t j = i;
      while (j < text.size() && std::string_view("=!<>~").find(text[j]) != std::string_view::npos) {
        ++j;
      }
      tokens.emplace_back("op");
      i = j;
    } else {
      size_t j = i;
      while (j < text.size() &&
             std::string_view(" ()\",=!<>~").find(text[j]) == std::string_view::npos) {
        ++j;
      }
      tokens.push_back(text.substr(i, j - i));
      i = j;
    }
  }
  std::vector<std::string> fields;
  for (size_t i = 0; i + 1 < tokens.size(); ++i) {
    const std::string& t = tokens[i];
    if (t == "and" || t == "or" || t == "not" || t == "in" || t == "op" || t == "\"") continue;
    const std::string& next = tokens[i + 1];
    const bool compared = next == "op" || next == "in" ||
                          (next == "not" && i + 2 < tokens.size() && tokens[i + 2] == "in");
    if (compared) fields.push_back(t);
  }
  return fields;
}

RollupDimension DimensionFor(v1::GroupBy group_by) {
  switch (group_by) {
    case v1::GROUP_BY_PROTOCOL:
      return RollupDimension::kProtocol;
    case v1::GROUP_BY_HOST:
      return RollupDimension::kHost;
    default:  // application, and agent: every delta is in exactly one application row
      return RollupDimension::kApplication;
  }
}

Result<TopAnswer> TopFromRollups(FlowStore& store, const TopQuery& query, size_t limit) {
  TopAnswer answer;
  answer.source = v1::TOP_SOURCE_ROLLUPS;
  answer.rollup_window.from_ms = query.window.from_ms / kRollupMinuteMs * kRollupMinuteMs;
  answer.rollup_window.to_ms =
      query.window.to_ms == 0
          ? 0
          : (query.window.to_ms + kRollupMinuteMs - 1) / kRollupMinuteMs * kRollupMinuteMs;
  // The agents as the filter and the agent group see them: by their current identity.
  std::unordered_map<std::string, v1::AgentIdentity> agents;
  {
    Result<std::vector<v1::AgentRecord>> records = store.ListAgents();
    if (!records.ok()) return records.status();
    for (const v1::AgentRecord& record : *records) {
      agents[record.identity().id()] = record.identity();
    }
  }
  // The filter only reads agent, site and the group's own field, so it is decided once per
  // (agent, value) on a record that holds just those.
  const RollupDimension dimension = DimensionFor(query.group_by);
  struct Verdict {
    bool matches = false;
    std::string group;
  };
  std::unordered_map<std::string, Verdict> verdicts;
  std::unordered_map<std::string, v1::TopEntry> groups;
  std::string pair;
  v1::FlowRecord subject;
  FLOWGATE_RETURN_IF_ERROR(store.ScanRollups(
      dimension, answer.rollup_window.from_ms, answer.rollup_window.to_ms,
      [&](const RollupRow& row) {
        pair.assign(row.agent_id);
        pair += '\0';
        pair.append(row.value);
        auto it = verdicts.find(pair);
        if (it == verdicts.end()) {
          subject.Clear();
          auto agent = agents.find(std::string(row.agent_id));
          if (agent != agents.end()) {
            *subject.mutable_agent() = agent->second;
          } else {
            subject.mutable_agent()->set_id(std::string(row.agent_id));
          }
          v1::FlowMetadata* m = subject.mutable_metadata();
          const std::string value(row.value);
          if (dimension == RollupDimension::kProtocol) m->set_detected_protocol_name(value);
          if (dimension == RollupDimension::kHost) m->set_host_server_name(value);
          if (dimension == RollupDimension::kApplication) m->set_detected_application_name(value);
          Verdict verdict;
          verdict.matches = query.filter.Matches(FilterSubject::FromFlow(subject));
          verdict.group = TopKeyOf(subject, query.group_by);
          it = verdicts.emplace(pair, std::move(verdict)).first;
        }
        if (!it->second.matches) return true;
        v1::TopEntry& entry = groups[it->second.group];
        entry.set_bytes(entry.bytes() + row.counters.bytes);
        entry.set_packets(entry.packets() + row.counters.packets);
        entry.set_flows(entry.flows() + row.counters.flows);
        return true;
      }));
  for (auto& [key, entry] : groups) entry.set_key(key);
  answer.entries = Ranked(&groups, query.metric, limit);
  return answer;
}

}  // namespace

Status FlowStore::ScanRollups(RollupDimension /*dimension*/, uint64_t /*from_ms*/,
                              uint64_t /*to_ms*/,
                              const std::function<bool(const RollupRow&)>& /*visit*/) {
  return Status::NotFound("this store keeps no rollups");
}

std::string WhyRollupsCannotAnswer(const FlowStore& store, v1::GroupBy group_by,
                                   const Filter& filter) {
  if (!store.has_rollups()) return "the store keeps no rollups";
  std::string own;
  switch (group_by) {
    case v1::GROUP_BY_APPLICATION:
      own = "app";
      break;
    case v1::GROUP_BY_PROTOCOL:
      own = "proto";
      break;
    case v1::GROUP_BY_HOST:
      own = "host";
      break;
    case v1::GROUP_BY_AGENT:
      break;
    default:
      return "rollups hold no addresses";
  }
  if (filter.empty()) return "";
  std::optional<std::vector<std::string>> fields = FieldsOf(filter);
  if (!fields) return "the filter could not be analysed";
  for (const std::string& field : *fields) {
    if (field != "agent" && field != "site" && field != own) {
      return "rollups cannot apply a filter on " + field +
             (own.empty() ? std::string(" (only agent and site)")
                          : " (only agent, site and " + own + ")");
    }
  }
  return "";
}

Result<TopAnswer> Top(FlowStore& store, const TopQuery& query) {
  FLOWGATE_RETURN_IF_ERROR(ValidateWindow(query.window));
  FLOWGATE_RETURN_IF_ERROR(ValidateLimit(query.limit, kMaxTopLimit, "limit"));
  const size_t limit = query.limit == 0 ? kDefaultTopLimit : query.limit;
  TopAnswer answer;
  if (query.source != v1::TOP_SOURCE_FLOWS) {
    std::string why_not = WhyRollupsCannotAnswer(store, query.group_by, query.filter);
    if (why_not.empty()) return TopFromRollups(store, query, limit);
    if (query.source == v1::TOP_SOURCE_ROLLUPS) {
      return Status::InvalidArgument("rollups cannot answer: " + why_not);
    }
    answer.flows_reason = std::move(why_not);
  }
  answer.source = v1::TOP_SOURCE_FLOWS;
  std::unordered_map<std::string, v1::TopEntry> groups;
  // The group and the totals are in every flow's summary: no flow is parsed whole.
  FLOWGATE_RETURN_IF_ERROR(store.ScanMatchingFlows(
      {.from_ms = query.window.from_ms, .to_ms = query.window.to_ms, .filter = &query.filter},
      [&](ScannedFlow& scanned) {
        const v1::FlowRecord& flow = scanned.summary();
        std::string key = TopKeyOf(flow, query.group_by);
        v1::TopEntry& entry = groups[key];
        entry.set_key(std::move(key));
        entry.set_bytes(entry.bytes() + flow.counters().total_bytes());
        entry.set_packets(entry.packets() + flow.counters().total_packets());
        entry.set_flows(entry.flows() + 1);
        return true;
      }));
  answer.entries = Ranked(&groups, query.metric, limit);
  return answer;
}

}  // namespace flowgate::storage
