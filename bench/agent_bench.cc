// Agent benchmarks: one worker's packets/s and new flows/s over the reference captures
// (loaded into memory, replayed many times with shifted addresses) beside a bare loop that
// feeds the same packets straight to nDPI; and resident memory per active flow at a million
// concurrent classified flows.
//
// Usage: see --help. The reference data comes from $FLOWGATE_TESTDATA, else the path
// CMake compiled in. Each figure is one JSON object per line; throughput figures are
// medians of --repeats runs.
#include <ndpi/ndpi_api.h>
#include <netinet/in.h>
#include <pcap/pcap.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench_report.h"
#include "capture/packet_decoder.h"
#include "capture/packet_source.h"
#include "classify/ndpi_classifier.h"
#include "core/flow_table.h"
#include "core/local_networks.h"
#include "export/event_sink.h"
#include "flowgate/common/flags.h"
#include "flowgate/common/identity.h"

namespace flowgate::bench {
namespace {

constexpr int kDltRaw = 12;

// One decoded reference packet: its innermost IP packet, and which flow of its capture it
// belongs to (for the bare loop, which has no flow table of its own).
struct Packet {
  std::vector<uint8_t> l3;
  uint64_t time_us = 0;
  uint32_t wire_length = 0;
  uint32_t flow = 0;  // index among all captures' flows
  uint8_t ip_protocol = 0;
};

struct Corpus {
  std::vector<Packet> packets;
  uint32_t flows = 0;
};

std::string TestdataDir() {
  const char* env = std::getenv("FLOWGATE_TESTDATA");
  return env != nullptr && *env != '\0' ? env : FLOWGATE_TESTDATA;
}

Corpus LoadCorpus(const std::string& pcap_dir) {
  Corpus corpus;
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(pcap_dir))
    files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());
  for (const std::string& file : files) {
    auto source = capture::OpenCaptureFile(file);
    if (!source.ok()) continue;
    capture::FragmentTracker fragments;
    capture::RawPacket raw;
    capture::DecodedPacket decoded;
    std::unordered_map<agent::FlowKey, uint32_t, agent::FlowKeyHash> flow_ids;
    while (true) {
      Result<bool> more = (*source)->Next(&raw);
      if (!more.ok() || !*more) break;
      if (capture::DecodePacket((*source)->link_type(), raw.data, raw.captured_length, &fragments,
                                &decoded) != capture::DecodeError::kNone) {
        continue;
      }
      bool lower = true;
      const agent::FlowKey key = agent::FlowKey::Of(decoded, 0, &lower);
      auto [it, added] = flow_ids.try_emplace(key, corpus.flows);
      if (added) ++corpus.flows;
      Packet p;
      p.l3.assign(decoded.l3, decoded.l3 + decoded.l3_length);
      p.time_us = raw.timestamp_us;
      p.wire_length = raw.wire_length;
      p.flow = it->second;
      p.ip_protocol = decoded.ip_protocol;
      corpus.packets.push_back(std::move(p));
    }
  }
  return corpus;
}

// Copies `p` with both addresses shifted by `round`, so that every round's flows are new.
void Shift(const Packet& p, uint32_t round, std::vector<uint8_t>* out) {
  out->assign(p.l3.begin(), p.l3.end());
  uint8_t* ip = out->data();
  const uint8_t hi = static_cast<uint8_t>(round >> 8), lo = static_cast<uint8_t>(round);
  if (out->size() >= 20 && (ip[0] >> 4) == 4) {
    for (size_t at : {size_t{13}, size_t{17}}) ip[at] ^= hi, ip[at + 1] ^= lo;
  } else if (out->size() >= 40 && (ip[0] >> 4) == 6) {
    for (size_t at : {size_t{20}, size_t{36}}) ip[at] ^= hi, ip[at + 1] ^= lo;
  }
}

class NullSink final : public agent::EventSink {
 public:
  void Emit(const v1::Event& event) override { events_ += event.body_case() != 0; }
  Status Flush(uint64_t) override { return Status::Ok(); }
  uint64_t events() const { return events_; }

 private:
  uint64_t events_ = 0;
};

// Packets and flows one loop handled, and the time it took, over the rounds it ran.
struct Tally {
  uint64_t packets = 0;
  uint64_t flows = 0;
  double seconds = 0;
  double PacketsPerSecond() const { return static_cast<double>(packets) / seconds; }
  double FlowsPerSecond() const { return static_cast<double>(flows) / seconds; }
};

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// What a capture thread hands a worker for one packet (PacketQueue's QueuedPacket less the
// copy of the bytes): the decoded fields, with offsets into the packet for pointers.
struct Handoff {
  capture::DecodedPacket packet;
  agent::PacketFlow flow;
  size_t l4_payload_offset = 0;
  bool decoded = false;
};

// The agent's path, as its threads split it. The capture stage does a capture thread's
// work per packet (decode, work out the flow that picks the worker); the worker stage does
// a worker's (flow table, nDPI, events to a sink that drops them), from what the capture
// stage handed over. They run in turns, a batch at a time, each timed on its own: the
// worker's figure is the one set against the bare loop, as a worker is what runs nDPI.
// Both stages start by copying the packet with its addresses shifted, as the bare loop
// does: that copy stands for the packet arriving, and the worker pays it as the bare loop
// does (in the agent the worker takes packets off its queue instead, one lock per 64
// packets: not counted).
// Each round ends its flows as the agent ends a capture (flow_purge events, timed), as the
// bare loop frees its flows each round: otherwise unfinished flows of every round would
// stay tracked, and the worker would pay for memory the bare loop keeps reusing.
class AgentLoop {
 public:
  explicit AgentLoop(classify::NdpiModule& ndpi) : table_(Options(), local_, ndpi, sink_) {}

  // Not inlined, so that profiles tell the loops apart.
  [[gnu::noinline]] void Round(const Corpus& corpus, uint32_t round) {
    for (size_t first = 0; first < corpus.packets.size(); first += kBatch) {
      const size_t end = std::min(first + kBatch, corpus.packets.size());
      CaptureStage(corpus, round, first, end);
      WorkerStage(corpus, round, first, end);
    }
    const auto start = std::chrono::steady_clock::now();
    table_.PurgeAll(v1::PURGE_REASON_TERMINATED);
    worker_.seconds += Seconds(start);
    worker_.flows = table_.stats().created();
  }
  const Tally& worker() const { return worker_; }
  const Tally& capture() const { return capture_; }

 private:
  // Packets per turn: the hand-offs of one batch stay in cache, as a worker's queue does
  // when it keeps up.
  static constexpr size_t kBatch = 256;

  [[gnu::noinline]] void CaptureStage(const Corpus& corpus, uint32_t round, size_t first,
                                      size_t end) {
    const auto start = std::chrono::steady_clock::now();
    for (size_t i = first; i < end; ++i) {
      Shift(corpus.packets[i], round, &scratch_);
      Handoff& h = handoffs_[i - first];
      h.decoded = capture::DecodePacket(kDltRaw, scratch_.data(), scratch_.size(), &fragments_,
                                        &h.packet) == capture::DecodeError::kNone;
      if (!h.decoded) continue;
      h.flow = agent::PacketFlow::Of(h.packet, 0);
      h.l4_payload_offset = h.packet.l4_payload != nullptr
                                ? static_cast<size_t>(h.packet.l4_payload - h.packet.l3)
                                : 0;
      ++capture_.packets;
    }
    capture_.seconds += Seconds(start);
  }

  [[gnu::noinline]] void WorkerStage(const Corpus& corpus, uint32_t round, size_t first,
                                     size_t end) {
    const auto start = std::chrono::steady_clock::now();
    for (size_t i = first; i < end; ++i) {
      const Packet& p = corpus.packets[i];
      Shift(p, round, &scratch_);
      Handoff& h = handoffs_[i - first];
      if (!h.decoded) continue;
      if (i + 1 < end) table_.Prefetch(handoffs_[i + 1 - first].flow);  // as the worker does
      // The raw corpus packet is its own innermost IP packet.
      h.packet.l3 = scratch_.data();
      if (h.packet.l4_payload != nullptr)
        h.packet.l4_payload = scratch_.data() + h.l4_payload_offset;
      table_.OnPacket(h.packet, h.flow, p.time_us, p.wire_length);
      ++worker_.packets;
    }
    worker_.seconds += Seconds(start);
  }

  static agent::FlowTableOptions Options() {
    agent::FlowTableOptions options;
    // An agent's own id is a UUID, as in the field (before the digest's salt was hashed
    // ahead in whole blocks, a short id hid one SHA-1 block per flow).
    options.agent_id = MakeUuid();
    options.interfaces = {{"eth0", true}};
    options.max_flows = 1 << 22;
    return options;
  }

  agent::LocalNetworks local_;
  NullSink sink_;
  agent::FlowTable table_;
  std::vector<uint8_t> scratch_;
  capture::FragmentTracker fragments_;
  std::vector<Handoff> handoffs_ = std::vector<Handoff>(kBatch);
  Tally worker_, capture_;
};

struct NdpiFlowFree {
  void operator()(ndpi_flow_struct* flow) const { ndpi_free_flow(flow); }
};
using NdpiFlow = std::unique_ptr<ndpi_flow_struct, NdpiFlowFree>;

// The same packets straight to nDPI, and nothing else: a flow's state found by index, fed
// until nDPI is done or the packet limit is reached, then freed. The nDPI calls are the
// agent's: a flow that ends (at its limit, or unfinished at the end of the round) without
// an application gets nDPI's guess (ndpi_detection_giveup), as every flow needs an answer.
class BareLoop {
 public:
  BareLoop(const Corpus& corpus, classify::NdpiModule& ndpi)
      : ndpi_(ndpi), flows_(corpus.flows), fed_(corpus.flows), done_(corpus.flows) {}

  [[gnu::noinline]] void Round(const Corpus& corpus, uint32_t round) {
    const size_t flow_size = ndpi_detection_get_sizeof_ndpi_flow_struct();
    const auto start = std::chrono::steady_clock::now();
    std::fill(fed_.begin(), fed_.end(), 0);
    std::fill(done_.begin(), done_.end(), 0);
    for (const Packet& p : corpus.packets) {
      Shift(p, round, &scratch_);
      ++tally_.packets;
      if (done_[p.flow]) continue;
      NdpiFlow& flow = flows_[p.flow];
      if (flow == nullptr) {
        flow.reset(static_cast<ndpi_flow_struct*>(ndpi_flow_malloc(flow_size)));
        std::memset(flow.get(), 0, flow_size);
        ++tally_.flows;
      }
      const ndpi_protocol proto = ndpi_detection_process_packet(
          ndpi_.raw(), flow.get(), scratch_.data(), static_cast<unsigned short>(scratch_.size()),
          p.time_us / 1000);
      const uint32_t limit = p.ip_protocol == IPPROTO_TCP ? 80 : 24;
      if (++fed_[p.flow] > limit || (proto.app_protocol != NDPI_PROTOCOL_UNKNOWN &&
                                     !ndpi_extra_dissection_possible(ndpi_.raw(), flow.get()))) {
        done_[p.flow] = 1;
        Finish(flow);
      }
    }
    for (NdpiFlow& flow : flows_) {
      if (flow != nullptr) Finish(flow);
    }
    tally_.seconds += Seconds(start);
  }
  const Tally& tally() const { return tally_; }

 private:
  void Finish(NdpiFlow& flow) {
    if (flow->detected_protocol_stack[0] == NDPI_PROTOCOL_UNKNOWN) {
      uint8_t guessed = 0;
      ndpi_detection_giveup(ndpi_.raw(), flow.get(), 1, &guessed);
    }
    flow.reset();
  }

  classify::NdpiModule& ndpi_;
  std::vector<NdpiFlow> flows_;
  std::vector<uint32_t> fed_;
  std::vector<uint8_t> done_;
  std::vector<uint8_t> scratch_;
  Tally tally_;
};

// A DNS query or answer for name "www.example.com" between 10.a.b.c:port and 192.0.2.53:53.
std::vector<uint8_t> DnsPacket(uint32_t client, uint16_t port, bool answer) {
  static const uint8_t kQuestion[] = {3,   'w', 'w', 'w', 7,   'e', 'x', 'a', 'm', 'p', 'l',
                                      'e', 3,   'c', 'o', 'm', 0,   0,   1,   0,   1};
  static const uint8_t kAnswer[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1};
  std::vector<uint8_t> dns = {0x12,
                              0x34,
                              static_cast<uint8_t>(answer ? 0x81 : 0x01),
                              static_cast<uint8_t>(answer ? 0x80 : 0x00),
                              0,
                              1,
                              0,
                              static_cast<uint8_t>(answer ? 1 : 0),
                              0,
                              0,
                              0,
                              0};
  dns.insert(dns.end(), std::begin(kQuestion), std::end(kQuestion));
  if (answer) dns.insert(dns.end(), std::begin(kAnswer), std::end(kAnswer));
  const size_t udp_length = 8 + dns.size(), total = 20 + udp_length;
  std::vector<uint8_t> p(20 + 8);
  p[0] = 0x45;
  p[2] = static_cast<uint8_t>(total >> 8), p[3] = static_cast<uint8_t>(total);
  p[8] = 64, p[9] = IPPROTO_UDP;
  const uint8_t client_ip[4] = {10, static_cast<uint8_t>(client >> 16),
                                static_cast<uint8_t>(client >> 8), static_cast<uint8_t>(client)};
  const uint8_t server_ip[4] = {192, 0, 2, 53};
  std::memcpy(&p[answer ? 16 : 12], client_ip, 4);
  std::memcpy(&p[answer ? 12 : 16], server_ip, 4);
  const uint16_t sport = answer ? 53 : port, dport = answer ? port : 53;
  p[20] = static_cast<uint8_t>(sport >> 8), p[21] = static_cast<uint8_t>(sport);
  p[22] = static_cast<uint8_t>(dport >> 8), p[23] = static_cast<uint8_t>(dport);
  p[24] = static_cast<uint8_t>(udp_length >> 8), p[25] = static_cast<uint8_t>(udp_length);
  p.insert(p.end(), dns.begin(), dns.end());
  return p;
}

// Resident bytes per flow with `count` concurrent flows, each classified (DNS query and
// answer: nDPI is done and its state freed) and still tracked.
double BytesPerFlow(uint32_t count, classify::NdpiModule& ndpi, uint64_t* classified) {
  agent::LocalNetworks local;
  NullSink sink;
  agent::FlowTableOptions options;
  options.agent_id = "bench";
  options.interfaces = {{"bench0", true}};
  options.max_flows = count;
  options.idle_timeout_ms = options.tcp_idle_timeout_ms = 1ULL << 40;
  const uint64_t before = CurrentProcessUsage().resident_bytes;
  agent::FlowTable table(options, local, ndpi, sink);
  capture::DecodedPacket decoded;
  for (uint32_t i = 0; i < count; ++i) {
    const uint16_t port = static_cast<uint16_t>(1024 + (i % 60000));
    const uint32_t client = i / 60000 * 256 + 1;  // distinct (address, port) per flow
    for (bool answer : {false, true}) {
      const std::vector<uint8_t> packet = DnsPacket(client, port, answer);
      if (capture::DecodePacket(kDltRaw, packet.data(), packet.size(), nullptr, &decoded) ==
          capture::DecodeError::kNone) {
        table.OnPacket(decoded, 1'600'000'000'000'000ULL + i, static_cast<uint32_t>(packet.size()));
      }
    }
  }
  const uint64_t after = CurrentProcessUsage().resident_bytes;
  *classified = table.stats().detected();
  const double per_flow = static_cast<double>(after - before) / static_cast<double>(table.size());
  return per_flow;
}

int Main(int argc, char** argv) {
  uint64_t rounds_flag = 20, repeats_flag = 5, flows_flag = 1'000'000;
  FlagParser flag_parser(
      "flowgate_bench", "flowgate_bench [--rounds N] [--repeats N] [--flows N]",
      "Agent benchmarks (issue 3): one worker's packets/s and new flows/s over the nDPI\n"
      "reference captures, loaded into memory and replayed with shifted addresses, beside a\n"
      "bare loop feeding the same packets straight to nDPI (target: 0.75 of it); the capture\n"
      "thread's share (decoding, picking the worker) beside them, and both on one thread; and\n"
      "resident memory per active flow at --flows concurrent classified flows (target: 600\n"
      "bytes).\n"
      "Prints one JSON object per figure on stdout (bench/bench_report.h), progress on\n"
      "stderr. Reference data: $FLOWGATE_TESTDATA, else " FLOWGATE_TESTDATA ".");
  flag_parser.AddUint("rounds", "N", "Replays of the captures per run", &rounds_flag, 1, 1'000'000);
  flag_parser.AddUint("repeats", "N", "Runs per figure (the median is reported)", &repeats_flag, 1,
                      1000);
  flag_parser.AddUint("flows", "N", "Concurrent flows for the memory figure", &flows_flag, 1,
                      100'000'000);
  if (std::optional<int> exit_code = ParseMainFlags(flag_parser, argc, argv)) {
    return *exit_code;
  }
  const auto rounds = static_cast<uint32_t>(rounds_flag);
  const auto repeats = static_cast<uint32_t>(repeats_flag);
  const auto flows = static_cast<uint32_t>(flows_flag);
  const std::string testdata = TestdataDir();
  classify::ClassifierOptions classifier;
  classifier.protos_file = testdata + "/ndpi-4.2/config/protos.txt";
  auto ndpi = classify::NdpiModule::Create(classifier);
  if (!ndpi.ok()) {
    std::fprintf(stderr, "flowgate_bench: %s\n", ndpi.status().message().c_str());
    return 1;
  }
  const Corpus corpus = LoadCorpus(testdata + "/ndpi-4.2/pcap");
  if (corpus.packets.empty()) {
    std::fprintf(stderr, "flowgate_bench: no packets under %s\n", testdata.c_str());
    return 1;
  }
  std::fprintf(stderr,
               "%zu packets, %u flows per round, %u rounds, median of %u runs; "
               "agent and bare loop take turns round by round and end every flow at the end of "
               "each round\n",
               corpus.packets.size(), corpus.flows, rounds, repeats);

  // Memory first, while the heap holds nothing freed by the throughput runs: memory they
  // leave in the allocator's free lists would be reused uncounted and flatter the figure.
  uint64_t classified = 0;
  const double per_flow = BytesPerFlow(flows, **ndpi, &classified);

  std::vector<double> agent_pps, agent_fps, bare_pps, bare_fps, capture_pps, both_pps;
  for (uint32_t i = 0; i < repeats; ++i) {
    // Each run gets modules of its own, because nDPI keeps per-module caches keyed by
    // address (e.g. for BitTorrent, STUN, Ookla) that a run would otherwise inherit.
    auto bare_ndpi = classify::NdpiModule::Create(classifier);
    auto agent_ndpi = classify::NdpiModule::Create(classifier);
    if (!bare_ndpi.ok() || !agent_ndpi.ok()) return 1;
    BareLoop bare(corpus, **bare_ndpi);
    AgentLoop agent(**agent_ndpi);
    // Round by round, taking turns at going first: a round lasts milliseconds, the host's
    // slow spells (BENCHMARKS.md) a few hundred, so both loops see the same machine.
    for (uint32_t round = 0; round < rounds; ++round) {
      if (round % 2 == 0) bare.Round(corpus, round);
      agent.Round(corpus, round);
      if (round % 2 == 1) bare.Round(corpus, round);
    }
    bare_pps.push_back(bare.tally().PacketsPerSecond());
    bare_fps.push_back(bare.tally().FlowsPerSecond());
    agent_pps.push_back(agent.worker().PacketsPerSecond());
    agent_fps.push_back(agent.worker().FlowsPerSecond());
    capture_pps.push_back(agent.capture().PacketsPerSecond());
    both_pps.push_back(static_cast<double>(agent.worker().packets) /
                       (agent.worker().seconds + agent.capture().seconds));
    // Each run's own ratio, so that a reader sees the spread behind the median.
    std::fprintf(stderr,
                 "run %u of %u: worker %.3gM, bare loop %.3gM packets/s, ratio %.3f "
                 "(capture stage %.3gM; both stages on one thread: ratio %.3f)\n",
                 i + 1, repeats, agent_pps.back() / 1e6, bare_pps.back() / 1e6,
                 agent_pps.back() / bare_pps.back(), capture_pps.back() / 1e6,
                 both_pps.back() / bare_pps.back());
  }
  Report({"ndpi_bare_packets_per_s", Median(bare_pps), "packets/s", true, std::nullopt, "", 0,
          std::nullopt});
  Report({"agent_worker_packets_per_s", Median(agent_pps), "packets/s", true, std::nullopt,
          "ndpi_bare_packets_per_s", Median(bare_pps), 0.75});
  Report({"ndpi_bare_new_flows_per_s", Median(bare_fps), "flows/s", true, std::nullopt, "", 0,
          std::nullopt});
  Report({"agent_worker_new_flows_per_s", Median(agent_fps), "flows/s", true, std::nullopt,
          "ndpi_bare_new_flows_per_s", Median(bare_fps), 0.75});
  // No targets: what the worker's figure leaves to the capture thread, and what a thread
  // doing both would manage (it copies each packet twice, once per stage).
  Report({"agent_capture_packets_per_s", Median(capture_pps), "packets/s", true, std::nullopt,
          "ndpi_bare_packets_per_s", Median(bare_pps), std::nullopt});
  Report({"agent_capture_and_worker_packets_per_s", Median(both_pps), "packets/s", true,
          std::nullopt, "ndpi_bare_packets_per_s", Median(bare_pps), std::nullopt});

  std::fprintf(stderr, "%u flows tracked, %llu classified\n", flows,
               static_cast<unsigned long long>(classified));
  Report({"agent_resident_bytes_per_active_flow", per_flow, "bytes", false, 600.0, "", 0,
          std::nullopt});
  return 0;
}

}  // namespace
}  // namespace flowgate::bench

int main(int argc, char** argv) { return flowgate::bench::Main(argc, argv); }
