// History queries over any FlowStore: flows active in a time range, filtered, ordered and
// paged, and the top talkers. Backend-neutral (they only use FlowStore::ScanActiveFlows), so
// the gRPC API and tests share one definition of what a query answers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "flowgate/common/filter.h"
#include "flowgate/common/status.h"
#include "flowgate/storage/flow_store.h"

namespace flowgate::storage {

// Limits on what one call may ask for.
constexpr uint32_t kDefaultPageSize = 100;
constexpr uint32_t kMaxPageSize = 10'000;
constexpr uint32_t kDefaultTopLimit = 10;
constexpr uint32_t kMaxTopLimit = 10'000;

// [from_ms, to_ms): flows active at any time in it. to_ms == 0 means "now" (no upper bound).
struct TimeWindow {
  uint64_t from_ms = 0;
  uint64_t to_ms = 0;
};

struct FlowQuery {
  TimeWindow window;
  Filter filter;  // Default: every flow
  v1::FlowOrder order = v1::FLOW_ORDER_FIRST_SEEN_DESC;
  // Page size. Default (0): kDefaultPageSize; more than kMaxPageSize is rejected.
  uint32_t limit = 0;
  // From the previous page's next_page_token; empty for the first page.
  std::string page_token;
};

struct FlowPage {
  std::vector<v1::FlowRecord> flows;
  std::string next_page_token;  // empty on the last page
};

// One page of the flows active in the window that match the filter, in `order`.
// Paging is stable under concurrent ingest for the first-seen orders: a token holds the
// last flow's (first seen, agent id, digest), which never change, so each matching flow
// appears on exactly one page (flows arriving meanwhile appear if they sort after the
// token). In FLOW_ORDER_BYTES_DESC a flow whose bytes grow between pages may move across
// the token. Errors: InvalidArgument for an inverted window, a limit over the maximum or a
// token that does not parse or belongs to another order; store errors as they come.
[[nodiscard]] Result<FlowPage> QueryFlows(FlowStore& store, const FlowQuery& query);

struct TopQuery {
  TimeWindow window;
  Filter filter;
  v1::GroupBy group_by = v1::GROUP_BY_APPLICATION;
  v1::Metric metric = v1::METRIC_BYTES;
  // Entries. Default (0): kDefaultTopLimit; more than kMaxTopLimit is rejected.
  uint32_t limit = 0;
};

// The groups with the most traffic among the flows active in the window that match the
// filter: each flow counts once, with its totals so far (total_bytes, total_packets), in
// the group of its key (see TopKeyOf). Sorted by the metric, largest first, then by key.
[[nodiscard]] Result<std::vector<v1::TopEntry>> Top(FlowStore& store, const TopQuery& query);

// The group of `flow` under `group_by`: the application or protocol name, the host name,
// the local or other address, or the agent's name (its id when it has none).
std::string TopKeyOf(const v1::FlowRecord& flow, v1::GroupBy group_by);

// Checks a window: InvalidArgument when from_ms >= to_ms (with to_ms != 0).
[[nodiscard]] Status ValidateWindow(const TimeWindow& window);

}  // namespace flowgate::storage
