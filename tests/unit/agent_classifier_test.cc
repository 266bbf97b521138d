// The agent's classifier (agent/classify/ndpi_classifier.h) beyond what the flow table
// tests show: the fingerprint that decides whether nDPI's final answer is a refinement.
#include "classify/ndpi_classifier.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <gtest/gtest.h>

#include <set>
#include <string>

namespace flowgate::classify {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

void SetNonDefault(Message* message, const FieldDescriptor* field) {
  const auto* reflection = message->GetReflection();
  const bool repeated = field->is_repeated();
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_UINT32:
      repeated ? reflection->AddUInt32(message, field, 7)
               : reflection->SetUInt32(message, field, 7);
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      repeated ? reflection->AddUInt64(message, field, 7)
               : reflection->SetUInt64(message, field, 7);
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      repeated ? reflection->AddBool(message, field, true)
               : reflection->SetBool(message, field, true);
      break;
    case FieldDescriptor::CPPTYPE_STRING:
      repeated ? reflection->AddString(message, field, "x")
               : reflection->SetString(message, field, "x");
      break;
    case FieldDescriptor::CPPTYPE_ENUM:
      repeated ? reflection->AddEnumValue(message, field, 1)
               : reflection->SetEnumValue(message, field, 1);
      break;
    default:
      FAIL() << "no test value for the type of " << field->full_name();
  }
}

// The fingerprint reads fields one by one (not the serialized message), so a detection
// field added to FlowMetadata without it would make refinements of that field go unseen.
// This walks the message's descriptor: every field outside the flow's identity, times and
// counters, and every field of every submessage, must move the fingerprint.
TEST(DetectionFingerprintTest, EveryDetectionFieldCountsAndNothingElseDoes) {
  const std::set<std::string> not_detection = {
      "digest",     "ip_version",   "ip_protocol",       "vlan_id",       "local_ip",
      "other_ip",   "local_port",   "other_port",        "local_mac",     "other_mac",
      "other_type", "local_origin", "detection_updated", "first_seen_at", "last_seen_at"};
  const v1::FlowMetadata empty;
  const uint64_t empty_fingerprint = DetectionFingerprint(empty);
  const Descriptor* descriptor = v1::FlowMetadata::descriptor();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    if (field->message_type() == nullptr) {
      v1::FlowMetadata changed;
      SetNonDefault(&changed, field);
      if (not_detection.count(field->name()) != 0) {
        EXPECT_EQ(DetectionFingerprint(changed), empty_fingerprint) << field->name();
      } else {
        EXPECT_NE(DetectionFingerprint(changed), empty_fingerprint) << field->name();
      }
      continue;
    }
    ASSERT_EQ(not_detection.count(field->name()), 0u) << field->name();
    v1::FlowMetadata present;  // the submessage there, empty
    present.GetReflection()->MutableMessage(&present, field);
    const uint64_t present_fingerprint = DetectionFingerprint(present);
    EXPECT_NE(present_fingerprint, empty_fingerprint) << field->name();
    const Descriptor* submessage = field->message_type();
    for (int k = 0; k < submessage->field_count(); ++k) {
      v1::FlowMetadata changed = present;
      SetNonDefault(changed.GetReflection()->MutableMessage(&changed, field), submessage->field(k));
      EXPECT_NE(DetectionFingerprint(changed), present_fingerprint)
          << field->name() << "." << submessage->field(k)->name();
    }
  }
}

TEST(DetectionFingerprintTest, EqualForEqualFieldsAndOrderMatters) {
  v1::FlowMetadata a;
  a.set_detected_protocol(91);
  a.set_detected_protocol_name("TLS");
  a.mutable_ssl()->set_client_sni("example.com");
  v1::FlowMetadata b = a;
  EXPECT_EQ(DetectionFingerprint(a), DetectionFingerprint(b));
  // The same text in another field is another answer.
  b.mutable_ssl()->clear_client_sni();
  b.mutable_ssl()->set_server_cn("example.com");
  EXPECT_NE(DetectionFingerprint(a), DetectionFingerprint(b));
}

}  // namespace
}  // namespace flowgate::classify
