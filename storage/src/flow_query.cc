#include "flowgate/storage/flow_query.h"

#include <algorithm>
#include <charconv>
#include <queue>
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

Status FlowStore::ScanActiveFlows(uint64_t from_ms, uint64_t to_ms,
                                  const std::function<bool(const v1::FlowRecord&)>& visit) {
  return ScanFlows([&](const v1::FlowRecord& flow) {
    return !FlowActiveIn(flow, from_ms, to_ms) || visit(flow);
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
  FLOWGATE_RETURN_IF_ERROR(store.ScanActiveFlows(
      query.window.from_ms, query.window.to_ms, [&](const v1::FlowRecord& flow) {
        if (!query.filter.Matches(FilterSubject::FromFlow(flow))) return true;
        SortKey key = KeyOf(flow, order);
        if (after && !Before(*after, key, order)) return true;
        if (best.size() == limit + 1 && !Before(key, best.top().key, order)) return true;
        best.push({std::move(key), flow});
        if (best.size() > limit + 1) best.pop();
        return true;
      }));
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

Result<std::vector<v1::TopEntry>> Top(FlowStore& store, const TopQuery& query) {
  FLOWGATE_RETURN_IF_ERROR(ValidateWindow(query.window));
  FLOWGATE_RETURN_IF_ERROR(ValidateLimit(query.limit, kMaxTopLimit, "limit"));
  const size_t limit = query.limit == 0 ? kDefaultTopLimit : query.limit;
  std::unordered_map<std::string, v1::TopEntry> groups;
  FLOWGATE_RETURN_IF_ERROR(store.ScanActiveFlows(
      query.window.from_ms, query.window.to_ms, [&](const v1::FlowRecord& flow) {
        if (!query.filter.Matches(FilterSubject::FromFlow(flow))) return true;
        std::string key = TopKeyOf(flow, query.group_by);
        v1::TopEntry& entry = groups[key];
        entry.set_key(std::move(key));
        entry.set_bytes(entry.bytes() + flow.counters().total_bytes());
        entry.set_packets(entry.packets() + flow.counters().total_packets());
        entry.set_flows(entry.flows() + 1);
        return true;
      }));
  std::vector<v1::TopEntry> entries;
  entries.reserve(groups.size());
  for (auto& [key, entry] : groups) entries.push_back(std::move(entry));
  const v1::Metric metric = query.metric;
  std::sort(entries.begin(), entries.end(), [metric](const v1::TopEntry& a, const v1::TopEntry& b) {
    const uint64_t ma = MetricOf(a, metric), mb = MetricOf(b, metric);
    return ma != mb ? ma > mb : a.key() < b.key();
  });
  if (entries.size() > limit) entries.resize(limit);
  return entries;
}

}  // namespace flowgate::storage
