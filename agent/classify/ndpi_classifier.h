// Deep packet inspection with nDPI 4.2: one NdpiModule per worker thread (nDPI modules
// are not thread-safe), one FlowClassifier per flow.
//
// A flow's packets go to nDPI until it has its answer and wants no more (no further
// dissection), or until a per-flow packet limit is reached, at which point nDPI gives up
// and guesses. Then nDPI's per-flow state is freed. The classifier keeps only a few bytes
// per flow: the detection fields are built from nDPI's state at the moment a `flow` event
// is due and handed to the caller, never stored, so a long-lived flow costs little memory.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "flowgate/common/status.h"
#include "flowgate/v1/events.pb.h"

struct ndpi_detection_module_struct;
struct ndpi_flow_struct;

namespace flowgate::classify {

struct ClassifierOptions {
  // An nDPI protocol rules file (ndpi_load_protocols_file format). Default: none.
  std::string protos_file;
  // Packets of a TCP flow given to nDPI before it must give up. Default: 80 (ndpiReader).
  uint32_t max_tcp_packets = 80;
  // Packets of any other flow given to nDPI before it must give up. Default: 24.
  uint32_t max_udp_packets = 24;
};

class NdpiModule;
class DetectionParts;  // ndpi_classifier.cc

// What a packet did to a flow's classification.
enum class ClassifyStep {
  kPending,    // no answer yet
  kDetected,   // first answer: the flow's `flow` event is due
  kRefined,    // the answer changed (or got more detail) after it was first given
  kUnchanged,  // nothing new
};

// nDPI's per-flow state, freed with ndpi_free_flow.
struct NdpiFlowFree {
  void operator()(ndpi_flow_struct* flow) const;
};
using NdpiFlowState = std::unique_ptr<ndpi_flow_struct, NdpiFlowFree>;

// The DPI state of one flow. Owned by the worker's flow table; used on that thread only.
// Compact on purpose (24 bytes): a million classified flows must fit in a small probe.
class FlowClassifier {
 public:
  // A classifier with no flow: final, nothing to inspect (a free slot of the flow table).
  FlowClassifier() = default;
  // A new flow's classifier, with nDPI state taken from `module` (given back to it when
  // the classification becomes final).
  FlowClassifier(NdpiModule& module, uint8_t ip_protocol);
  ~FlowClassifier();
  FlowClassifier(FlowClassifier&&) noexcept;
  FlowClassifier& operator=(FlowClassifier&&) noexcept;

  // Gives one packet (starting at its IP header) to nDPI, unless classification is final.
  // When the result is kDetected or kRefined, *detection holds the detection fields of the
  // `flow` event that is due (detected_*, category, host name, ssl, http, dns, dhcp, ssh,
  // bt, risks, detection_guessed, detection_confidence), every one of them set; its other
  // fields are left as they were, for the caller to set. Otherwise its content is
  // unspecified: callers pass a reused message, so nothing is built per packet.
  ClassifyStep Process(NdpiModule& module, const uint8_t* l3, size_t l3_length, uint64_t time_ms,
                       v1::FlowMetadata* detection);
  // Makes the classification final now (a guess if nDPI has no answer): at flow end.
  // Fills *detection as Process() does.
  ClassifyStep Finish(NdpiModule& module, v1::FlowMetadata* detection);

  // True once nDPI's state is freed and the answer cannot change.
  bool final() const { return ndpi_flow_ == nullptr; }
  bool has_answer() const { return answered_; }
  uint32_t packets_inspected() const { return packets_; }

 private:
  ClassifyStep Update(NdpiModule& module, bool finishing, v1::FlowMetadata* detection);

  NdpiFlowState ndpi_flow_;
  // The first answer's DetectionFingerprint: the final answer is a refinement only if its
  // fingerprint differs.
  uint64_t answer_fingerprint_ = 0;
  uint32_t packets_ = 0;
  uint8_t ip_protocol_ = 0;
  bool answered_ = false;
  bool fed_since_answer_ = false;  // nDPI was given a packet after the first answer
};

// A hash of the detection fields of `detection` (those FlowClassifier fills; not the
// flow's identity, counters or times), equal for equal fields.
uint64_t DetectionFingerprint(const v1::FlowMetadata& detection);

class NdpiModule {
 public:
  // Initialises nDPI with every protocol enabled and loads options.protos_file. Fails
  // with a message naming the file when it cannot be read.
  static Result<std::unique_ptr<NdpiModule>> Create(const ClassifierOptions& options);
  ~NdpiModule();
  NdpiModule(const NdpiModule&) = delete;
  NdpiModule& operator=(const NdpiModule&) = delete;

  // The protocol and application catalogue for `definitions` messages.
  v1::Definitions Definitions() const;
  // nDPI's name for a protocol id ("TLS", "YouTube", "Unknown").
  const std::string& ProtocolName(uint16_t id) const;
  // nDPI's name for a confidence value ("DPI", "Match by port", ...); empty if it has none.
  const std::string& ConfidenceName(int confidence) const;
  // Bytes nDPI allocates per flow for its state while a flow is being inspected.
  static size_t FlowStateBytes();

  // Zeroed per-flow state for a new flow, recycled from ReleaseFlowState() when there is
  // some: a busy worker starts and finishes flows all the time, and fresh allocations of
  // nDPI's large state among the flow table's small ones fragment the heap. Null when out
  // of memory.
  NdpiFlowState AcquireFlowState();
  // Takes back a flow's state once its classification is final (frees what nDPI allocated
  // for it, keeps the state itself for the next flow).
  void ReleaseFlowState(NdpiFlowState state);
  // The submessages of the worker's detection fields, reused from flow to flow.
  DetectionParts& detection_parts() { return *detection_parts_; }

  const ClassifierOptions& options() const { return options_; }
  ndpi_detection_module_struct* raw() const { return module_.get(); }

 private:
  NdpiModule() = default;
  struct ModuleFree {
    void operator()(ndpi_detection_module_struct* module) const;
  };
  std::unique_ptr<ndpi_detection_module_struct, ModuleFree> module_;
  ClassifierOptions options_;
  std::vector<NdpiFlowState> spare_flow_states_;
  std::unique_ptr<DetectionParts> detection_parts_;
  std::vector<std::string> protocol_names_;    // by nDPI protocol id
  std::vector<std::string> confidence_names_;  // by ndpi_confidence_t
};

}  // namespace flowgate::classify
