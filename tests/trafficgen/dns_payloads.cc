#include "payloads.h"

namespace flowgate::trafficgen {
namespace {

constexpr uint16_t kTypeA = 1;
constexpr uint16_t kClassIn = 1;
constexpr uint16_t kFlagsRecursiveQuery = 0x0100;     // RD
constexpr uint16_t kFlagsRecursiveResponse = 0x8180;  // QR, RD, RA, NOERROR

// The question section: the name as length-prefixed labels, then type and class.
void WriteQuestion(ByteWriter& w, std::string_view name) {
  while (!name.empty()) {
    const size_t dot = name.find('.');
    const std::string_view label = name.substr(0, dot);
    w.U8(static_cast<uint8_t>(label.size()));
    w.Append(label);
    name = dot == std::string_view::npos ? std::string_view() : name.substr(dot + 1);
  }
  w.U8(0);  // root label
  w.U16(kTypeA);
  w.U16(kClassIn);
}

void WriteHeader(ByteWriter& w, uint16_t id, uint16_t flags, uint16_t answers) {
  w.U16(id);
  w.U16(flags);
  w.U16(1);  // questions
  w.U16(answers);
  w.U16(0);  // authority records
  w.U16(0);  // additional records
}

}  // namespace

Bytes DnsQuery(uint16_t id, std::string_view name) {
  ByteWriter w;
  WriteHeader(w, id, kFlagsRecursiveQuery, 0);
  WriteQuestion(w, name);
  return w.Take();
}

Bytes DnsAnswer(uint16_t id, std::string_view name, std::span<const uint32_t> addresses,
                uint32_t ttl_seconds) {
  ByteWriter w;
  WriteHeader(w, id, kFlagsRecursiveResponse, static_cast<uint16_t>(addresses.size()));
  WriteQuestion(w, name);
  for (uint32_t address : addresses) {
    w.U16(0xc00c);  // compression pointer to the question name at offset 12
    w.U16(kTypeA);
    w.U16(kClassIn);
    w.U32(ttl_seconds);
    w.U16(4);  // RDLENGTH
    w.U32(address);
  }
  return w.Take();
}

}  // namespace flowgate::trafficgen
