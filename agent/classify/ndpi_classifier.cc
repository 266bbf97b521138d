#include "classify/ndpi_classifier.h"

#include "flowgate/common/identity.h"
#include "flowgate/common/utf8.h"

#include <ndpi/ndpi_api.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace flowgate::classify {
namespace {

std::string Hex16(uint16_t value) {
  char text[8];
  std::snprintf(text, sizeof text, "0x%04x", value);
  return text;
}

const char* ProtocolNameOf(ndpi_detection_module_struct* module, uint16_t id) {
  const char* name = ndpi_get_proto_name(module, id);
  return name == nullptr ? "Unknown" : name;
}

bool AllZero(const uint8_t* bytes, size_t length) {
  return std::all_of(bytes, bytes + length, [](uint8_t b) { return b == 0; });
}

// Text nDPI copied out of a packet is the packet's bytes: made valid UTF-8 (what event
// strings must be; see utf8.h). nDPI's fixed-size char arrays are NUL-terminated, but
// hostile traffic is not to be trusted with that: never read past the array.
template <size_t N>
std::string FromArray(const char (&text)[N]) {
  return ValidUtf8(std::string_view(text, strnlen(text, N)));
}

std::string FromPointer(const char* text) {
  return text == nullptr ? std::string() : ValidUtf8(text);
}

// The common name out of a distinguished name such as "C=US, O=Google, CN=*.google.com".
std::string CommonName(const std::string& dn) {
  size_t at = dn.find("CN=");
  if (at == std::string::npos) return {};
  size_t end = dn.find(',', at);
  return dn.substr(at + 3, end == std::string::npos ? std::string::npos : end - at - 3);
}

bool Is(const ndpi_protocol& p, uint16_t id) {
  return p.master_protocol == id || p.app_protocol == id;
}

// The union ndpi_flow_struct::protos is only meaningful for the dissector that ran.
bool UsesTlsState(const ndpi_protocol& p) {
  return Is(p, NDPI_PROTOCOL_TLS) || Is(p, NDPI_PROTOCOL_QUIC) || Is(p, NDPI_PROTOCOL_DTLS) ||
         Is(p, NDPI_PROTOCOL_MAIL_IMAPS) || Is(p, NDPI_PROTOCOL_MAIL_POPS) ||
         Is(p, NDPI_PROTOCOL_MAIL_SMTPS);
}

void FillTls(const ndpi_flow_struct& flow, v1::SslInfo* ssl) {
  const auto& tls = flow.protos.tls_quic;
  if (tls.ssl_version != 0) ssl->set_version(Hex16(tls.ssl_version));
  if (tls.server_cipher != 0) ssl->set_cipher_suite(Hex16(tls.server_cipher));
  ssl->set_client_sni(FromArray(flow.host_server_name));
  ssl->set_issuer_dn(FromPointer(tls.issuerDN));
  ssl->set_subject_dn(FromPointer(tls.subjectDN));
  ssl->set_server_cn(CommonName(ssl->subject_dn()));
  ssl->set_client_ja3(FromArray(tls.ja3_client));
  ssl->set_server_ja3(FromArray(tls.ja3_server));
  if (!AllZero(tls.sha1_certificate_fingerprint, sizeof tls.sha1_certificate_fingerprint)) {
    ssl->set_fingerprint(
        HexLower(tls.sha1_certificate_fingerprint, sizeof tls.sha1_certificate_fingerprint));
  }
  ssl->set_alpn(FromPointer(tls.alpn));
}

}  // namespace

void NdpiModule::ModuleFree::operator()(ndpi_detection_module_struct* module) const {
  ndpi_exit_detection_module(module);
}

void NdpiFlowFree::operator()(ndpi_flow_struct* flow) const { ndpi_free_flow(flow); }

Result<std::unique_ptr<NdpiModule>> NdpiModule::Create(const ClassifierOptions& options) {
  std::unique_ptr<NdpiModule> module(new NdpiModule());
  module->options_ = options;
  module->module_.reset(ndpi_init_detection_module(ndpi_no_prefs));
  if (module->module_ == nullptr) return Status::Internal("nDPI failed to initialise");
  NDPI_PROTOCOL_BITMASK all;
  NDPI_BITMASK_SET_ALL(all);
  ndpi_set_protocol_detection_bitmask2(module->raw(), &all);
  if (!options.protos_file.empty()) {
    if (::access(options.protos_file.c_str(), R_OK) != 0) {
      return Status::InvalidArgument("cannot read nDPI protocols file '" + options.protos_file +
                                     "': " + std::strerror(errno));
    }
    if (ndpi_load_protocols_file(module->raw(), options.protos_file.c_str()) < 0) {
      return Status::InvalidArgument("nDPI rejected protocols file '" + options.protos_file + "'");
    }
  }
  ndpi_finalize_initialization(module->raw());
  // Every flow event carries these names as they are (no copy per event), and an event
  // string that is not UTF-8 would get the agent's batches refused: a bad name is a bad
  // protocols file.
  for (u_int id = 0; id < ndpi_get_num_supported_protocols(module->raw()); ++id) {
    const char* name = ProtocolNameOf(module->raw(), static_cast<uint16_t>(id));
    if (!IsValidUtf8(name)) {
      return Status::InvalidArgument("nDPI protocols file '" + options.protos_file +
                                     "' names protocol " + std::to_string(id) +
                                     " with text that is not UTF-8: " + ValidUtf8(name));
    }
  }
  return module;
}

NdpiModule::~NdpiModule() = default;

std::string NdpiModule::ProtocolName(uint16_t id) const { return ProtocolNameOf(raw(), id); }

size_t NdpiModule::FlowStateBytes() { return ndpi_detection_get_sizeof_ndpi_flow_struct(); }

NdpiFlowState NdpiModule::AcquireFlowState() {
  const size_t size = FlowStateBytes();
  if (!spare_flow_states_.empty()) {
    NdpiFlowState state = std::move(spare_flow_states_.back());
    spare_flow_states_.pop_back();
    return state;  // zeroed when released
  }
  NdpiFlowState state(static_cast<ndpi_flow_struct*>(ndpi_flow_malloc(size)));
  if (state != nullptr) std::memset(state.get(), 0, size);
  return state;
}

void NdpiModule::ReleaseFlowState(NdpiFlowState state) {
  // Enough spares for a burst of new flows; beyond that the memory goes back to the heap.
  constexpr size_t kMaxSpareFlowStates = 1024;
  if (state == nullptr) return;
  if (spare_flow_states_.size() >= kMaxSpareFlowStates) return;  // `state` frees it all
  // What nDPI allocated for this flow (names, certificates, ...); it leaves the pointers
  // dangling, so the state is zeroed at once: a spare is always a valid empty flow.
  ndpi_free_flow_data(state.get());
  std::memset(state.get(), 0, FlowStateBytes());
  spare_flow_states_.push_back(std::move(state));
}

v1::Definitions NdpiModule::Definitions() const {
  // nDPI has one id space for protocols and applications, and both kinds of id appear in
  // `detected_protocol` and `detected_application`: both lists carry the whole catalogue.
  v1::Definitions definitions;
  const u_int count = ndpi_get_num_supported_protocols(raw());
  for (u_int id = 0; id < count; ++id) {
    std::string name = ProtocolName(static_cast<uint16_t>(id));
    v1::ProtocolTag tag;
    tag.set_id(id);
    tag.set_tag(name);
    *definitions.add_protocols() = tag;
    *definitions.add_applications() = std::move(tag);
  }
  return definitions;
}

FlowClassifier::FlowClassifier(NdpiModule& module, uint8_t ip_protocol)
    : ndpi_flow_(module.AcquireFlowState()), ip_protocol_(ip_protocol) {}

FlowClassifier::~FlowClassifier() = default;
FlowClassifier::FlowClassifier(FlowClassifier&&) noexcept = default;
FlowClassifier& FlowClassifier::operator=(FlowClassifier&&) noexcept = default;

ClassifyStep FlowClassifier::Process(NdpiModule& module, const uint8_t* l3, size_t l3_length,
                                     uint64_t time_ms, v1::FlowMetadata* detection) {
  if (final()) return ClassifyStep::kUnchanged;
  ++packets_;
  const auto length = static_cast<unsigned short>(std::min<size_t>(l3_length, 0xffff));
  ndpi_protocol proto =
      ndpi_detection_process_packet(module.raw(), ndpi_flow_.get(), l3, length, time_ms);
  // As ndpiReader: nDPI gives up after the packet that takes the flow past the limit.
  // Protocols other than TCP share UDP's limit (the reader has none for them), so that an
  // ICMP flow's state is freed too.
  const uint32_t limit = ip_protocol_ == IPPROTO_TCP ? module.options().max_tcp_packets
                                                     : module.options().max_udp_packets;
  const bool enough = packets_ > limit;
  const bool answered = proto.app_protocol != NDPI_PROTOCOL_UNKNOWN;
  if (!answered && !enough) return ClassifyStep::kPending;
  // With an answer, keep feeding while nDPI can still learn more (certificates, ...).
  const bool finishing = enough || !ndpi_extra_dissection_possible(module.raw(), ndpi_flow_.get());
  return Update(module, finishing, detection);
}

ClassifyStep FlowClassifier::Finish(NdpiModule& module, v1::FlowMetadata* detection) {
  if (final()) return ClassifyStep::kUnchanged;
  return Update(module, true, detection);
}

namespace {

// Copies what nDPI found for `flow` (labelled `proto`) into the detection fields of a `flow`
// event.
void FillDetection(const NdpiModule& module, const ndpi_flow_struct& flow, ndpi_protocol proto,
                   bool guessed, v1::FlowMetadata* d) {
  // Match ndpiReader's naming: "TLS.Google" is protocol TLS, application Google; a lone
  // "HTTP" is protocol HTTP with no application.
  uint16_t protocol = proto.app_protocol;
  uint16_t application = NDPI_PROTOCOL_UNKNOWN;
  if (proto.master_protocol != NDPI_PROTOCOL_UNKNOWN &&
      proto.master_protocol != proto.app_protocol) {
    protocol = proto.master_protocol;
    application = proto.app_protocol;
  }
  d->set_detected_protocol(protocol);
  // Names as nDPI's own C strings: assigned into the reused message, no temporary string.
  d->set_detected_protocol_name(ProtocolNameOf(module.raw(), protocol));
  d->set_detected_application(application);
  d->set_detected_application_name(ProtocolNameOf(module.raw(), application));
  d->set_detection_guessed(guessed);
  const char* confidence = ndpi_confidence_get_name(flow.confidence);
  if (confidence != nullptr) d->set_detection_confidence(confidence);
  d->mutable_category()->set_application(proto.category);
  ndpi_proto_defaults_t* defaults = ndpi_get_proto_defaults(module.raw());
  if (defaults != nullptr && protocol < ndpi_get_num_supported_protocols(module.raw())) {
    d->mutable_category()->set_protocol(defaults[protocol].protoCategory);
  }
  d->set_host_server_name(FromArray(flow.host_server_name));
  if (UsesTlsState(proto)) {
    FillTls(flow, d->mutable_ssl());
  } else if (Is(proto, NDPI_PROTOCOL_DNS)) {
    d->mutable_dns()->set_query(FromArray(flow.host_server_name));
    d->mutable_dns()->set_query_type(flow.protos.dns.query_type);
    d->mutable_dns()->set_reply_code(flow.protos.dns.reply_code);
  } else if (Is(proto, NDPI_PROTOCOL_SSH)) {
    d->mutable_ssh()->set_client(FromArray(flow.protos.ssh.client_signature));
    d->mutable_ssh()->set_server(FromArray(flow.protos.ssh.server_signature));
  } else if (Is(proto, NDPI_PROTOCOL_DHCP)) {
    d->mutable_dhcp()->set_fingerprint(FromArray(flow.protos.dhcp.fingerprint));
    d->mutable_dhcp()->set_class_ident(FromArray(flow.protos.dhcp.class_ident));
  } else if (Is(proto, NDPI_PROTOCOL_BITTORRENT)) {
    const auto& hash = flow.protos.bittorrent.hash;
    if (!AllZero(hash, sizeof hash)) d->mutable_bt()->set_info_hash(HexLower(hash, sizeof hash));
  }
  // Only flows that have them get an http message: one made and freed for every flow cost
  // more than the flow's other detection fields.
  if (flow.http.url != nullptr || flow.http.user_agent != nullptr) {
    d->mutable_http()->set_url(FromPointer(flow.http.url));
    d->mutable_http()->set_user_agent(FromPointer(flow.http.user_agent));
  }
  if (flow.risk != 0) {
    uint16_t client = 0, server = 0;
    v1::Risks* risks = d->mutable_risks();
    risks->set_ndpi_risk_score(ndpi_risk2score(flow.risk, &client, &server));
    risks->set_ndpi_risk_score_client(client);
    risks->set_ndpi_risk_score_server(server);
    for (uint32_t bit = 1; bit < NDPI_MAX_RISK; ++bit) {
      if ((flow.risk & (ndpi_risk{1} << bit)) != 0) risks->add_risks(bit);
    }
  }
}

}  // namespace

ClassifyStep FlowClassifier::Update(NdpiModule& module, bool finishing,
                                    v1::FlowMetadata* detection) {
  // Between the first answer and the final one nDPI only adds detail (server hello,
  // certificate, ...): readers get the first answer at once and one refinement at the end,
  // not a message per packet, so nothing is built in between.
  if (answered_ && !finishing) return ClassifyStep::kUnchanged;
  ndpi_flow_struct& flow = *ndpi_flow_;
  ndpi_protocol proto{};
  proto.app_protocol = flow.detected_protocol_stack[0];
  proto.master_protocol = flow.detected_protocol_stack[1];
  proto.category = flow.category;
  bool guessed = false;
  if (finishing && proto.app_protocol == NDPI_PROTOCOL_UNKNOWN) {
    uint8_t was_guessed = 0;
    proto = ndpi_detection_giveup(module.raw(), &flow, 1, &was_guessed);
    guessed = true;  // nDPI gave up: whatever label it offers is not a DPI answer
  }
  const bool has_answer = proto.app_protocol != NDPI_PROTOCOL_UNKNOWN ||
                          proto.master_protocol != NDPI_PROTOCOL_UNKNOWN || finishing;
  if (!has_answer) return ClassifyStep::kPending;

  detection->Clear();
  FillDetection(module, flow, proto, guessed, detection);
  // The answer is final: nDPI's per-flow state goes back to the module, never touched again.
  if (finishing) module.ReleaseFlowState(std::move(ndpi_flow_));

  const bool first = !answered_;
  answered_ = true;
  // A first answer that is also final has nothing to be compared with later.
  if (first && finishing) return ClassifyStep::kDetected;
  std::string& serialized = module.scratch();
  detection->SerializeToString(&serialized);
  const uint64_t hash = std::hash<std::string>()(serialized);
  const bool changed = hash != answer_hash_;
  answer_hash_ = hash;
  if (!first && !changed) return ClassifyStep::kUnchanged;
  return first ? ClassifyStep::kDetected : ClassifyStep::kRefined;
}

}  // namespace flowgate::classify
