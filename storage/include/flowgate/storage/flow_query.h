// History queries over any FlowStore: flows active in a time range, filtered, ordered and
// paged, and the top talkers. Backend-neutral (they only use FlowStore::ScanMatchingFlows), so
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
  // What answers (see TopSource in flowgate.proto). AUTO: rollups when they can (see
  // RollupsCanAnswer), else flows.
  v1::TopSource source = v1::TOP_SOURCE_AUTO;
};

struct TopAnswer {
  std::vector<v1::TopEntry> entries;
  v1::TopSource source = v1::TOP_SOURCE_FLOWS;  // FLOWS or ROLLUPS: what answered
  // With ROLLUPS: the whole minutes summed, [from_ms, to_ms) (to_ms 0: up to now), which
  // are the minutes that overlap the query's window.
  TimeWindow rollup_window;
  // When AUTO was answered from flows: why rollups could not answer.
  std::string flows_reason;
};

// Two answers, by source (sorted by the metric, largest first, then by key):
//   FLOWS    the groups of the flows active in the window that match the filter: each flow
//            counts once, with its totals so far (total_bytes, total_packets), in the group
//            of its key (see TopKeyOf); `flows` counts those flows.
//   ROLLUPS  the traffic reported inside the window's minutes (see storage/src/rollups.h):
//            byte and packet deltas whose attributed application/protocol/host and agent
//            match the filter, grouped by that attribution (agent: its current name, else
//            its id); `flows` counts flows first seen in those minutes.
// ROLLUPS requested where rollups cannot answer is InvalidArgument with the reason.
[[nodiscard]] Result<TopAnswer> Top(FlowStore& store, const TopQuery& query);

// Empty when rollups of `store` can answer Top grouped by `group_by` under `filter`: the
// group is the application, protocol, host or agent, and the filter names no field but
// agent, site and the group's own field (app, proto or host). Otherwise the reason why not.
std::string WhyRollupsCannotAnswer(const FlowStore& store, v1::GroupBy group_by,
                                   const Filter& filter);

// The group of `flow` under `group_by`: the application or protocol name, the host name,
// the local or other address, or the agent's name (its id when it has none).
std::string TopKeyOf(const v1::FlowRecord& flow, v1::GroupBy group_by);

// Checks a window: InvalidArgument when from_ms >= to_ms (with to_ms != 0).
[[nodiscard]] Status ValidateWindow(const TimeWindow& window);

}  // namespace flowgate::storage
