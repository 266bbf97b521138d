#include "agent_registry.h"

#include <algorithm>
#include <chrono>
#include <tuple>

#include "flowgate/common/envelope_codec.h"

namespace flowgate::storage {

std::string JoinKey(std::string_view a, std::string_view b) {
  std::string key(a);
  key += '\0';
  key += b;
  return key;
}

uint64_t Fnv1a64(std::string_view bytes) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (char c : bytes) {
    hash ^= static_cast<uint8_t>(c);
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

Status CheckBatchIdentity(const v1::Envelope& envelope) {
  std::string missing = MissingBatchIdentity(envelope);
  return missing.empty() ? Status::Ok() : Status::InvalidArgument(std::move(missing));
}

BatchVerdict JudgeBatch(const AppendItem& item, uint64_t mark, v1::AgentRecord* record) {
  BatchVerdict verdict;
  const v1::Envelope& envelope = item.envelope;
  const uint64_t received_at_ms = item.received_at_ms;
  const v1::AgentIdentity& agent = envelope.agent();
  record->set_batches_received(record->batches_received() + 1);
  if (!item.peer_address.empty()) record->set_address(item.peer_address);
  const bool next_in_order = envelope.sequence() == mark + 1;
  const bool gap_given_up = envelope.resend_floor() == envelope.sequence();
  if (envelope.sequence() > mark && !next_in_order && !gap_given_up) {
    verdict.result.outcome = AppendOutcome::kOutOfOrder;
    verdict.result.expected_sequence = mark + 1;
    if (!record->has_identity()) *record->mutable_identity() = agent;
    record->set_batches_out_of_order(record->batches_out_of_order() + 1);
    return verdict;
  }
  verdict.persist = true;
  if (record->first_seen_ms() == 0) record->set_first_seen_ms(received_at_ms);
  record->set_last_seen_ms(received_at_ms);
  if (envelope.sequence() <= mark) {
    verdict.result.outcome = AppendOutcome::kDuplicate;
    record->set_batches_duplicate(record->batches_duplicate() + 1);
    return verdict;
  }
  verdict.apply = true;
  verdict.result.missing_before = envelope.sequence() - mark - 1;
  *record->mutable_identity() = agent;
  record->set_batches_applied(record->batches_applied() + 1);
  record->set_events_applied(record->events_applied() +
                             static_cast<uint64_t>(envelope.events_size()));
  record->set_sequence_gaps(record->sequence_gaps() + verdict.result.missing_before);
  record->set_high_water_sequence(envelope.sequence());
  return verdict;
}

void FailGroup(const Status& status, std::vector<AppendItem>& items) {
  for (AppendItem& item : items) {
    item.result = status;
    item.stored.clear();
  }
}

void CountRejection(const v1::AgentIdentity& agent, const std::string& reason,
                    const std::string& address, uint64_t received_at_ms, v1::AgentRecord* record) {
  if (!record->has_identity()) *record->mutable_identity() = agent;
  if (record->first_seen_ms() == 0) record->set_first_seen_ms(received_at_ms);
  record->set_last_seen_ms(received_at_ms);
  if (!address.empty()) record->set_address(address);
  record->set_batches_received(record->batches_received() + 1);
  record->set_batches_rejected(record->batches_rejected() + 1);
  (*record->mutable_rejected_by_reason())[reason] += 1;
}

void SetOnline(uint64_t now_ms, uint32_t offline_after_missed_intervals, v1::AgentRecord* record) {
  const uint64_t interval_ms =
      std::max<uint64_t>(record->last_status().update_interval(), 1) * 1000;
  record->set_online(!record->last_status().final() &&
                     now_ms - std::min(now_ms, record->last_seen_ms()) <=
                         interval_ms * offline_after_missed_intervals);
}

void SortAgents(std::vector<v1::AgentRecord>* agents) {
  std::sort(agents->begin(), agents->end(), [](const v1::AgentRecord& a, const v1::AgentRecord& b) {
    return std::tie(a.identity().name(), a.identity().id()) <
           std::tie(b.identity().name(), b.identity().id());
  });
}

uint64_t WallClockMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace flowgate::storage
