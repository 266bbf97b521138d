// Where an agent's events go: the netifyd JSON stream (--json-out), the gateway
// (--gateway), or both. The flow table emits into one EventSink and does not know which.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "flowgate/common/status.h"
#include "flowgate/v1/events.pb.h"

namespace flowgate::agent {

class EventSink {
 public:
  virtual ~EventSink() = default;
  // Takes one event. Must not block capture for long: a sink that cannot keep up drops
  // and counts (live capture) or applies back-pressure (offline files, where nothing is
  // lost by waiting).
  virtual void Emit(const v1::Event& event) = 0;
  // Delivers everything emitted so far, waiting at most `timeout_ms`. Fails with a
  // message naming what was not delivered and why.
  [[nodiscard]] virtual Status Flush(uint64_t timeout_ms) = 0;
};

// Sends every event to each of `sinks`, in order.
class FanOutSink final : public EventSink {
 public:
  explicit FanOutSink(std::vector<std::unique_ptr<EventSink>> sinks) : sinks_(std::move(sinks)) {}
  void Emit(const v1::Event& event) override {
    for (auto& sink : sinks_) sink->Emit(event);
  }
  Status Flush(uint64_t timeout_ms) override {
    for (auto& sink : sinks_) FLOWGATE_RETURN_IF_ERROR(sink->Flush(timeout_ms));
    return Status::Ok();
  }

 private:
  std::vector<std::unique_ptr<EventSink>> sinks_;
};

}  // namespace flowgate::agent
