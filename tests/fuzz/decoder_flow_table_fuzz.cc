// libFuzzer target over the agent's packet path: link-layer decoding (every link type the
// agent accepts), fragment tracking, the flow table and nDPI. Hostile frames must never
// crash, hang or read out of bounds; they are decoded or counted as discarded, and what
// the agent makes of them must still be deliverable.
//
// Input: byte 0 picks the link type; then frames, each a 2-byte big-endian length and
// that many bytes (a short last frame is taken as it is, like a snaplen-cut packet).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "capture/packet_decoder.h"
#include "classify/ndpi_classifier.h"
#include "core/flow_table.h"
#include "core/local_networks.h"
#include "export/event_sink.h"

namespace {

using namespace flowgate;

// Link types as pcap_datalink() reports them, plus one the decoder does not know.
constexpr int kLinkTypes[] = {1, 0, 12, 14, 101, 108, 113, 228, 229, 276, 147};

// Every event must reach the gateway: it serializes and parses back, as the gateway parses
// it (proto3 refuses strings that are not UTF-8, and with them the agent's whole batch).
class DeliverableSink final : public agent::EventSink {
 public:
  void Emit(const v1::Event& event) override {
    if (!event.SerializeToString(&bytes_) || !parsed_.ParseFromString(bytes_)) __builtin_trap();
  }
  Status Flush(uint64_t) override { return Status::Ok(); }

 private:
  std::string bytes_;
  v1::Event parsed_;
};

struct World {
  World() {
    classify::ClassifierOptions options;
    auto module = classify::NdpiModule::Create(options);
    if (!module.ok()) __builtin_trap();
    ndpi = std::move(module).value();
    agent::IpNetwork lan;
    lan.base.version = 4;
    lan.base.bytes[0] = 10;
    lan.prefix_length = 8;
    local.Add(lan);
  }
  std::unique_ptr<classify::NdpiModule> ndpi;
  agent::LocalNetworks local;
  DeliverableSink sink;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* world = new World();  // one nDPI module for the whole run, as a worker has
  if (size < 1) return 0;
  const int link_type = kLinkTypes[data[0] % (sizeof kLinkTypes / sizeof kLinkTypes[0])];
  agent::FlowTableOptions options;
  options.agent_id = "fuzz";
  options.interfaces = {{"fuzz0", true}};
  options.max_flows = 8;  // small, so that eviction runs too
  options.idle_timeout_ms = 2'000;
  options.tcp_idle_timeout_ms = 5'000;
  agent::FlowTable table(options, world->local, *world->ndpi, world->sink);
  capture::FragmentTracker fragments(4);
  capture::DecodedPacket packet;
  uint64_t time_us = 1'600'000'000'000'000;
  size_t offset = 1;
  while (offset < size) {
    size_t length = size - offset;
    if (length >= 2) {
      length = std::min<size_t>((size_t{data[offset]} << 8) | data[offset + 1], size - offset - 2);
      offset += 2;
    }
    const uint8_t* frame = data + offset;
    offset += length;
    if (capture::DecodePacket(link_type, frame, length, &fragments, &packet) ==
        capture::DecodeError::kNone) {
      table.OnPacket(packet, time_us, static_cast<uint32_t>(length));
    }
    time_us += 700'000;  // 0.7 s a packet: idle timeouts fire within one input
    table.ExpireIdle(time_us / 1000);
  }
  table.EmitStats();
  table.PurgeAll(v1::PURGE_REASON_TERMINATED);
  return 0;
}
