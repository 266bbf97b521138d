// A minimal agent for gateway tests: speaks the real ZeroMQ protocol (DEALER, one
// Envelope per message, one Ack back) with events the test makes, so gateway tests can
// send exact, large or hostile traffic without depending on captures.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "flowgate/v1/transport.pb.h"

namespace flowgate::testing {

class TestAgent {
 public:
  TestAgent(const std::string& endpoint, const std::string& name, const std::string& site);
  ~TestAgent();
  TestAgent(const TestAgent&) = delete;
  TestAgent& operator=(const TestAgent&) = delete;

  const v1::AgentIdentity& identity() const { return identity_; }

  // Sends `events` as the next batch and waits for its ack (nullopt after `timeout`).
  std::optional<v1::Ack> SendBatch(const std::vector<v1::Event>& events,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Sends raw bytes as one message and waits for the ack.
  std::optional<v1::Ack> SendRaw(const std::string& bytes,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(30));

 private:
  struct Sockets;
  std::unique_ptr<Sockets> sockets_;
  v1::AgentIdentity identity_;
  uint64_t sequence_ = 0;
};

// A `flow` event for flow `n` (distinct digest and ports), labelled `protocol`/`application`.
v1::Event MakeFlowEvent(int n, const std::string& protocol, const std::string& application,
                        const std::string& host);
// The `flow_purge` of flow `n`.
v1::Event MakePurgeEvent(int n, v1::PurgeReason reason = v1::PURGE_REASON_EXPIRED);
std::string FlowDigest(int n);

}  // namespace flowgate::testing
