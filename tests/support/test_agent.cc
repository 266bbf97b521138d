#include "test_agent.h"

#include <cstdio>
#include <zmq.hpp>

#include "flowgate/common/identity.h"

namespace flowgate::testing {

struct TestAgent::Sockets {
  zmq::context_t context{1};
  zmq::socket_t socket{context, zmq::socket_type::dealer};
};

TestAgent::TestAgent(const std::string& endpoint, const std::string& name, const std::string& site)
    : sockets_(std::make_unique<Sockets>()) {
  identity_.set_id(MakeUuid());
  identity_.set_boot_id(MakeUuid());
  identity_.set_name(name);
  identity_.set_site(site);
  identity_.set_version("test");
  sockets_->socket.set(zmq::sockopt::linger, 0);
  sockets_->socket.connect(endpoint);
}

TestAgent::~TestAgent() = default;

std::optional<v1::Ack> TestAgent::SendBatch(const std::vector<v1::Event>& events,
                                            std::chrono::milliseconds timeout) {
  v1::Envelope envelope;
  envelope.set_version(v1::PROTOCOL_VERSION_1);
  *envelope.mutable_agent() = identity_;
  envelope.set_sequence(++sequence_);
  for (const v1::Event& e : events) *envelope.add_events() = e;
  return SendRaw(envelope.SerializeAsString(), timeout);
}

std::optional<v1::Ack> TestAgent::SendRaw(const std::string& bytes,
                                          std::chrono::milliseconds timeout) {
  sockets_->socket.send(zmq::buffer(bytes), zmq::send_flags::none);
  zmq::pollitem_t item{sockets_->socket.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, timeout) <= 0) return std::nullopt;
  zmq::message_t reply;
  if (!sockets_->socket.recv(reply, zmq::recv_flags::none)) return std::nullopt;
  v1::Ack ack;
  if (!ack.ParseFromArray(reply.data(), static_cast<int>(reply.size()))) return std::nullopt;
  return ack;
}

std::string FlowDigest(int n) {
  char digest[41];
  std::snprintf(digest, sizeof digest, "%040x", n);
  return digest;
}

v1::Event MakeFlowEvent(int n, const std::string& protocol, const std::string& application,
                        const std::string& host) {
  v1::Event event;
  v1::FlowEvent* flow = event.mutable_flow();
  flow->mutable_context()->set_interface("eth0");
  flow->mutable_context()->set_internal(true);
  v1::FlowMetadata* m = flow->mutable_flow();
  m->set_digest(FlowDigest(n));
  m->set_ip_version(4);
  m->set_ip_protocol(6);
  m->set_local_ip("10.0." + std::to_string((n >> 8) & 0xff) + "." + std::to_string(n & 0xff));
  m->set_other_ip("198.51.100.7");
  m->set_local_port(static_cast<uint32_t>(1024 + n % 60000));
  m->set_other_port(443);
  m->set_other_type(v1::OTHER_TYPE_REMOTE);
  m->set_detected_protocol_name(protocol);
  m->set_detected_protocol(91);
  m->set_detected_application_name(application);
  m->set_detected_application(application == "Unknown" ? 0 : 124);
  m->set_host_server_name(host);
  m->set_first_seen_at(1'700'000'000'000ULL + static_cast<uint64_t>(n));
  m->set_last_seen_at(1'700'000'000'000ULL + static_cast<uint64_t>(n));
  return event;
}

v1::Event MakePurgeEvent(int n, v1::PurgeReason reason) {
  v1::Event event;
  v1::FlowPurgeEvent* purge = event.mutable_flow_purge();
  purge->mutable_context()->set_interface("eth0");
  purge->set_reason(reason);
  purge->mutable_flow()->set_digest(FlowDigest(n));
  purge->mutable_flow()->set_total_packets(10);
  purge->mutable_flow()->set_total_bytes(1000);
  return event;
}

}  // namespace flowgate::testing
