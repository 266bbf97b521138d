#include "classify/ndpi_classifier.h"

#include "flowgate/common/hash_mix.h"
#include "flowgate/common/identity.h"
#include "flowgate/common/utf8.h"

#include <ndpi/ndpi_api.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace flowgate::classify {
namespace {

// "0x0303": by hand, snprintf cost more than the rest of the TLS fields.
void AssignHex16(uint16_t value, std::string* out) {
  const uint8_t big_endian[2] = {static_cast<uint8_t>(value >> 8), static_cast<uint8_t>(value)};
  char text[6] = {'0', 'x'};
  WriteHexLower(big_endian, sizeof big_endian, text + 2);
  out->assign(text, sizeof text);
}

const char* ProtocolNameOf(ndpi_detection_module_struct* module, uint16_t id) {
  const char* name = ndpi_get_proto_name(module, id);
  return name == nullptr ? "Unknown" : name;
}

bool AllZero(const uint8_t* bytes, size_t length) {
  return std::all_of(bytes, bytes + length, [](uint8_t b) { return b == 0; });
}

// Text nDPI copied out of a packet is the packet's bytes: made valid UTF-8 (what event
// strings must be; see utf8.h), straight into the reused message's string. nDPI's
// fixed-size char arrays are NUL-terminated, but hostile traffic is not to be trusted with
// that: never read past the array.
template <size_t N>
void AssignText(const char (&text)[N], std::string* out) {
  AssignValidUtf8(std::string_view(text, strnlen(text, N)), out);
}

// Text nDPI allocated (certificate names, URL, ...), NUL-terminated by nDPI itself. Named
// apart from AssignText: as an overload, this one was chosen for arrays too (a non-template
// wins a tie), and arrays were read up to a NUL wherever it was.
void AssignAllocatedText(const char* text, std::string* out) {
  if (text == nullptr) {
    out->clear();
  } else {
    AssignValidUtf8(text, out);
  }
}

// The common name out of a distinguished name such as "C=US, O=Google, CN=*.google.com".
void AssignCommonName(std::string_view dn, std::string* out) {
  const size_t at = dn.find("CN=");
  if (at == std::string_view::npos) {
    out->clear();
    return;
  }
  const size_t end = dn.find(',', at);
  out->assign(
      dn.substr(at + 3, end == std::string_view::npos ? std::string_view::npos : end - at - 3));
}

// Which of nDPI's per-protocol state (the union ndpi_flow_struct::protos, meaningful only
// for the dissector that ran) a flow's details come from, lowest precedence first: a flow
// labelled with two of them (master and application) takes the later one.
enum class Details { kNone, kBittorrent, kDhcp, kSsh, kDns, kTls };

// A switch, not a chain of comparisons against both of a flow's ids: the chain's branches
// showed in the worker's profile.
Details DetailsOf(uint16_t id) {
  switch (id) {
    case NDPI_PROTOCOL_TLS:
    case NDPI_PROTOCOL_QUIC:
    case NDPI_PROTOCOL_DTLS:
    case NDPI_PROTOCOL_MAIL_IMAPS:
    case NDPI_PROTOCOL_MAIL_POPS:
    case NDPI_PROTOCOL_MAIL_SMTPS:
      return Details::kTls;
    case NDPI_PROTOCOL_DNS:
      return Details::kDns;
    case NDPI_PROTOCOL_SSH:
      return Details::kSsh;
    case NDPI_PROTOCOL_DHCP:
      return Details::kDhcp;
    case NDPI_PROTOCOL_BITTORRENT:
      return Details::kBittorrent;
    default:
      return Details::kNone;
  }
}

// `ssl` is empty (cleared) when called.
void FillTls(const ndpi_flow_struct& flow, v1::SslInfo* ssl) {
  const auto& tls = flow.protos.tls_quic;
  if (tls.ssl_version != 0) AssignHex16(tls.ssl_version, ssl->mutable_version());
  if (tls.server_cipher != 0) AssignHex16(tls.server_cipher, ssl->mutable_cipher_suite());
  AssignText(flow.host_server_name, ssl->mutable_client_sni());
  AssignAllocatedText(tls.issuerDN, ssl->mutable_issuer_dn());
  AssignAllocatedText(tls.subjectDN, ssl->mutable_subject_dn());
  AssignCommonName(ssl->subject_dn(), ssl->mutable_server_cn());
  AssignText(tls.ja3_client, ssl->mutable_client_ja3());
  AssignText(tls.ja3_server, ssl->mutable_server_ja3());
  if (!AllZero(tls.sha1_certificate_fingerprint, sizeof tls.sha1_certificate_fingerprint)) {
    AssignHexLower(tls.sha1_certificate_fingerprint, sizeof tls.sha1_certificate_fingerprint, '\0',
                   ssl->mutable_fingerprint());
  }
  AssignAllocatedText(tls.alpn, ssl->mutable_alpn());
}

}  // namespace

// The detection message's submessages, kept from one detection to the next (one per
// worker, in its module): FlowMetadata::Clear() deletes them, and making them and their
// strings' buffers again for every flow showed in the worker's profile.
class DetectionParts {
 public:
  // One kind of submessage: kept here between fills, set into the message when used. The
  // accessors are template arguments, so that their calls are direct (through member
  // pointers held at run time, they showed in the worker's profile).
  template <typename M, M* (v1::FlowMetadata::*Release)(),
            void (v1::FlowMetadata::*SetAllocated)(M*)>
  class Spare {
   public:
    // Takes *d's submessage, if it has one, and keeps it cleared.
    void Keep(v1::FlowMetadata* d) {
      M* released = (d->*Release)();
      if (released == nullptr) return;
      released->Clear();
      kept_.reset(released);
    }
    // Sets the kept submessage (a new one if none is kept) into *d; returns it, owned by *d.
    M* Use(v1::FlowMetadata* d) {
      std::unique_ptr<M> message = kept_ != nullptr ? std::move(kept_) : std::make_unique<M>();
      M* in_d = message.get();
      (d->*SetAllocated)(message.release());
      return in_d;
    }

   private:
    std::unique_ptr<M> kept_;
  };

  // Takes *d's submessages back (cleared) for the next fill. The other detection fields
  // are all set by every fill, and the rest by the flow table for every event: clearing
  // the whole message first showed in the worker's profile.
  void Reset(v1::FlowMetadata* d) {
    category.Keep(d);
    ssl.Keep(d);
    http.Keep(d);
    dhcp.Keep(d);
    ssh.Keep(d);
    dns.Keep(d);
    bt.Keep(d);
    risks.Keep(d);
  }

  using Metadata = v1::FlowMetadata;
  Spare<v1::Category, &Metadata::release_category, &Metadata::set_allocated_category> category;
  Spare<v1::SslInfo, &Metadata::release_ssl, &Metadata::set_allocated_ssl> ssl;
  Spare<v1::HttpInfo, &Metadata::release_http, &Metadata::set_allocated_http> http;
  Spare<v1::DhcpInfo, &Metadata::release_dhcp, &Metadata::set_allocated_dhcp> dhcp;
  Spare<v1::SshInfo, &Metadata::release_ssh, &Metadata::set_allocated_ssh> ssh;
  Spare<v1::DnsInfo, &Metadata::release_dns, &Metadata::set_allocated_dns> dns;
  Spare<v1::BittorrentInfo, &Metadata::release_bt, &Metadata::set_allocated_bt> bt;
  Spare<v1::Risks, &Metadata::release_risks, &Metadata::set_allocated_risks> risks;
};

void NdpiModule::ModuleFree::operator()(ndpi_detection_module_struct* module) const {
  ndpi_exit_detection_module(module);
}

void NdpiFlowFree::operator()(ndpi_flow_struct* flow) const { ndpi_free_flow(flow); }

Result<std::unique_ptr<NdpiModule>> NdpiModule::Create(const ClassifierOptions& options) {
  std::unique_ptr<NdpiModule> module(new NdpiModule());
  module->options_ = options;
  module->detection_parts_ = std::make_unique<DetectionParts>();
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
  // Every flow event carries these names as they are (no check per event), and an event
  // string that is not UTF-8 would get the agent's batches refused: a bad name is a bad
  // protocols file. Kept as strings: a flow event copies two of them, and nDPI's lookup
  // and a strlen for each showed in the worker's profile.
  for (u_int id = 0; id < ndpi_get_num_supported_protocols(module->raw()); ++id) {
    const char* name = ProtocolNameOf(module->raw(), static_cast<uint16_t>(id));
    if (!IsValidUtf8(name)) {
      return Status::InvalidArgument("nDPI protocols file '" + options.protos_file +
                                     "' names protocol " + std::to_string(id) +
                                     " with text that is not UTF-8: " + ValidUtf8(name));
    }
    module->protocol_names_.emplace_back(name);
  }
  if (module->protocol_names_.empty()) return Status::Internal("nDPI knows no protocols");
  for (int confidence = 0; confidence < NDPI_CONFIDENCE_MAX; ++confidence) {
    const char* name = ndpi_confidence_get_name(static_cast<ndpi_confidence_t>(confidence));
    module->confidence_names_.emplace_back(name != nullptr ? name : "");
  }
  return module;
}

NdpiModule::~NdpiModule() = default;

const std::string& NdpiModule::ConfidenceName(int confidence) const {
  static const std::string kNone;
  return confidence >= 0 && static_cast<size_t>(confidence) < confidence_names_.size()
             ? confidence_names_[static_cast<size_t>(confidence)]
             : kNone;
}

const std::string& NdpiModule::ProtocolName(uint16_t id) const {
  // nDPI names every id it does not know "Unknown", its name for id 0.
  return id < protocol_names_.size() ? protocol_names_[id] : protocol_names_[0];
}

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
  if (answered_) fed_since_answer_ = true;
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

// Sets every detection field of a `flow` event in *d to what nDPI found for `flow`
// (labelled `proto`); leaves its other fields alone.
void FillDetection(NdpiModule& module, const ndpi_flow_struct& flow, ndpi_protocol proto,
                   bool guessed, v1::FlowMetadata* d) {
  DetectionParts& parts = module.detection_parts();
  parts.Reset(d);
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
  d->set_detected_protocol_name(module.ProtocolName(protocol));
  d->set_detected_application(application);
  d->set_detected_application_name(module.ProtocolName(application));
  d->set_detection_guessed(guessed);
  d->set_detection_confidence(module.ConfidenceName(flow.confidence));
  v1::Category* category = parts.category.Use(d);
  category->set_application(proto.category);
  ndpi_proto_defaults_t* defaults = ndpi_get_proto_defaults(module.raw());
  if (defaults != nullptr && protocol < ndpi_get_num_supported_protocols(module.raw())) {
    category->set_protocol(defaults[protocol].protoCategory);
  }
  AssignText(flow.host_server_name, d->mutable_host_server_name());
  switch (std::max(DetailsOf(proto.master_protocol), DetailsOf(proto.app_protocol))) {
    case Details::kTls:
      FillTls(flow, parts.ssl.Use(d));
      break;
    case Details::kDns: {
      v1::DnsInfo* dns = parts.dns.Use(d);
      dns->set_query(d->host_server_name());
      dns->set_query_type(flow.protos.dns.query_type);
      dns->set_reply_code(flow.protos.dns.reply_code);
      break;
    }
    case Details::kSsh: {
      v1::SshInfo* ssh = parts.ssh.Use(d);
      AssignText(flow.protos.ssh.client_signature, ssh->mutable_client());
      AssignText(flow.protos.ssh.server_signature, ssh->mutable_server());
      break;
    }
    case Details::kDhcp: {
      v1::DhcpInfo* dhcp = parts.dhcp.Use(d);
      AssignText(flow.protos.dhcp.fingerprint, dhcp->mutable_fingerprint());
      AssignText(flow.protos.dhcp.class_ident, dhcp->mutable_class_ident());
      break;
    }
    case Details::kBittorrent: {
      const auto& hash = flow.protos.bittorrent.hash;
      if (!AllZero(hash, sizeof hash)) {
        AssignHexLower(hash, sizeof hash, '\0', parts.bt.Use(d)->mutable_info_hash());
      }
      break;
    }
    case Details::kNone:
      break;
  }
  // Only flows that have them get an http message (an empty one would still be sent).
  if (flow.http.url != nullptr || flow.http.user_agent != nullptr) {
    v1::HttpInfo* http = parts.http.Use(d);
    AssignAllocatedText(flow.http.url, http->mutable_url());
    AssignAllocatedText(flow.http.user_agent, http->mutable_user_agent());
  }
  if (flow.risk != 0) {
    uint16_t client = 0, server = 0;
    v1::Risks* risks = parts.risks.Use(d);
    risks->set_ndpi_risk_score(ndpi_risk2score(flow.risk, &client, &server));
    risks->set_ndpi_risk_score_client(client);
    risks->set_ndpi_risk_score_server(server);
    // nDPI's risks are bits 1 to NDPI_MAX_RISK - 1 (0 is "no risk"): visit the set ones.
    static_assert(NDPI_MAX_RISK < 64);
    constexpr ndpi_risk kRiskBits = ((ndpi_risk{1} << NDPI_MAX_RISK) - 1) & ~ndpi_risk{1};
    for (ndpi_risk bits = flow.risk & kRiskBits; bits != 0; bits &= bits - 1) {
      risks->add_risks(static_cast<uint32_t>(std::countr_zero(bits)));
    }
  }
}

// Mixes values into a 64-bit hash.
class Fingerprinter {
 public:
  void Add(uint64_t value) { hash_ = MixHash(hash_, value); }
  void Add(const std::string& text) {
    Add(text.size());
    Add(std::hash<std::string_view>()(text));
  }
  uint64_t hash() const { return hash_; }

 private:
  uint64_t hash_ = 0;
};

}  // namespace

uint64_t DetectionFingerprint(const v1::FlowMetadata& d) {
  // Reads the fields back rather than serializing the message: half the work, and the
  // detection is fingerprinted twice for every flow nDPI refines. A submessage's presence
  // counts too (an empty ssl is still an ssl).
  Fingerprinter f;
  f.Add(d.detected_protocol());
  f.Add(d.detected_protocol_name());
  f.Add(d.detected_application());
  f.Add(d.detected_application_name());
  f.Add(d.detection_guessed());
  f.Add(d.detection_confidence());
  f.Add(d.host_server_name());
  f.Add(uint64_t{d.has_category()} | uint64_t{d.has_ssl()} << 1 | uint64_t{d.has_http()} << 2 |
        uint64_t{d.has_dhcp()} << 3 | uint64_t{d.has_ssh()} << 4 | uint64_t{d.has_dns()} << 5 |
        uint64_t{d.has_bt()} << 6 | uint64_t{d.has_risks()} << 7);
  f.Add(uint64_t{d.category().application()} << 32 | d.category().protocol());
  if (d.has_ssl()) {
    const v1::SslInfo& ssl = d.ssl();
    for (const std::string* text :
         {&ssl.version(), &ssl.cipher_suite(), &ssl.client_sni(), &ssl.server_cn(),
          &ssl.issuer_dn(), &ssl.subject_dn(), &ssl.client_ja3(), &ssl.server_ja3(),
          &ssl.fingerprint(), &ssl.alpn()}) {
      f.Add(*text);
    }
  }
  if (d.has_http()) {
    f.Add(d.http().user_agent());
    f.Add(d.http().url());
  }
  if (d.has_dhcp()) {
    f.Add(d.dhcp().fingerprint());
    f.Add(d.dhcp().class_ident());
  }
  if (d.has_ssh()) {
    f.Add(d.ssh().client());
    f.Add(d.ssh().server());
  }
  if (d.has_dns()) {
    f.Add(d.dns().query());
    f.Add(uint64_t{d.dns().query_type()} << 32 | d.dns().reply_code());
  }
  if (d.has_bt()) f.Add(d.bt().info_hash());
  if (d.has_risks()) {
    const v1::Risks& risks = d.risks();
    f.Add(uint64_t{risks.ndpi_risk_score()} << 32 | risks.ndpi_risk_score_client());
    f.Add(risks.ndpi_risk_score_server());
    f.Add(static_cast<uint64_t>(risks.risks_size()));
    for (uint32_t risk : risks.risks()) f.Add(risk);
  }
  return f.hash();
}

ClassifyStep FlowClassifier::Update(NdpiModule& module, bool finishing,
                                    v1::FlowMetadata* detection) {
  // Between the first answer and the final one nDPI only adds detail (server hello,
  // certificate, ...): readers get the first answer at once and one refinement at the end,
  // not a message per packet, so nothing is built in between.
  if (answered_ && !finishing) return ClassifyStep::kUnchanged;
  // nDPI's state changes only with the packets it is given: with none since the first
  // answer, the final answer is the first one (a flow that ends before another packet of
  // it reaches nDPI).
  if (answered_ && !fed_since_answer_) {
    module.ReleaseFlowState(std::move(ndpi_flow_));
    return ClassifyStep::kUnchanged;
  }
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

  FillDetection(module, flow, proto, guessed, detection);
  // The answer is final: nDPI's per-flow state goes back to the module, never touched again.
  if (finishing) module.ReleaseFlowState(std::move(ndpi_flow_));

  const bool first = !answered_;
  answered_ = true;
  // A first answer that is also final has nothing to be compared with later.
  if (first && finishing) return ClassifyStep::kDetected;
  const uint64_t fingerprint = DetectionFingerprint(*detection);
  const bool changed = fingerprint != answer_fingerprint_;
  answer_fingerprint_ = fingerprint;
  if (!first && !changed) return ClassifyStep::kUnchanged;
  return first ? ClassifyStep::kDetected : ClassifyStep::kRefined;
}

}  // namespace flowgate::classify
