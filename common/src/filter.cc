// The filter language (see filter.h): a lexer, a recursive-descent parser that compiles
// the text once into a flat expression tree, and an evaluator that walks the tree without
// allocating (literals are decoded, networks masked and keywords resolved at parse time).
#include "flowgate/common/filter.h"

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "flowgate/v1/flowgate.pb.h"

namespace flowgate {
namespace {

// ---------------------------------------------------------------------------------------
// Fields and operators

// The subject's pointers, copied out by Filter::Matches (FilterSubject's friend).
struct View {
  const v1::AgentIdentity* agent;
  const v1::FlowContext* context;
  const v1::FlowMetadata* metadata;
  const v1::FlowCounters* counters;
  std::string_view type;
};

// A field's values in one subject: up to two (the two sides of a flow; an agent's name and
// id). None means that the field does not apply to the subject.
struct Values {
  int count = 0;
  std::array<std::string_view, 2> text;  // string and address fields
  std::array<uint64_t, 2> number{};      // number and bool fields
  void Add(std::string_view value) { text[count++] = value; }
  void Add(uint64_t value) { number[count++] = value; }
};

template <auto kGetter>
void FromMetadata(const View& s, Values* v) {
  if (s.metadata != nullptr) v->Add((s.metadata->*kGetter)());
}
template <auto kGetter>
void FromCounters(const View& s, Values* v) {
  if (s.counters != nullptr) v->Add((s.counters->*kGetter)());
}
void BothIps(const View& s, Values* v) {
  if (s.metadata == nullptr) return;
  v->Add(s.metadata->local_ip());
  v->Add(s.metadata->other_ip());
}
void BothPorts(const View& s, Values* v) {
  if (s.metadata == nullptr) return;
  v->Add(uint64_t{s.metadata->local_port()});
  v->Add(uint64_t{s.metadata->other_port()});
}
void AgentNameAndId(const View& s, Values* v) {
  if (s.agent == nullptr) return;
  v->Add(s.agent->name());
  v->Add(s.agent->id());
}
void AgentSite(const View& s, Values* v) {
  if (s.agent != nullptr) v->Add(s.agent->site());
}
void Interface(const View& s, Values* v) {
  if (s.context != nullptr) v->Add(s.context->interface());
}
void EventType(const View& s, Values* v) { v->Add(s.type); }
void Digest(const View& s, Values* v) {
  // A FlowRecord carries both; its metadata may be missing while its counters are not.
  const v1::FlowMetadata* m = s.metadata;
  if (m != nullptr && (!m->digest().empty() || s.counters == nullptr)) {
    v->Add(m->digest());
  } else if (s.counters != nullptr) {
    v->Add(s.counters->digest());
  }
}

enum class ValueType : uint8_t { kString, kAddress, kNumber, kBool };
constexpr std::string_view kTypeNames[] = {"string", "address", "number", "bool"};

struct FieldInfo {
  std::string_view name;   // canonical: what ToString() prints
  std::string_view alias;  // empty if none
  ValueType type;
  bool exact;  // strings compare case-sensitively (digests are hex, not names)
  void (*get)(const View&, Values*);
};

using Meta = v1::FlowMetadata;
using Counts = v1::FlowCounters;
// One row per field: adding a field is adding a row (and a line in filter.h).
constexpr FieldInfo kFields[] = {
    {"app", "application", ValueType::kString, false,
     FromMetadata<&Meta::detected_application_name>},
    {"proto", "protocol", ValueType::kString, false, FromMetadata<&Meta::detected_protocol_name>},
    {"host", "", ValueType::kString, false, FromMetadata<&Meta::host_server_name>},
    {"agent", "", ValueType::kString, false, AgentNameAndId},
    {"site", "", ValueType::kString, false, AgentSite},
    {"iface", "interface", ValueType::kString, false, Interface},
    {"type", "", ValueType::kString, false, EventType},
    {"digest", "", ValueType::kString, true, Digest},
    {"ip", "", ValueType::kAddress, false, BothIps},
    {"local_ip", "", ValueType::kAddress, false, FromMetadata<&Meta::local_ip>},
    {"other_ip", "", ValueType::kAddress, false, FromMetadata<&Meta::other_ip>},
    {"port", "", ValueType::kNumber, false, BothPorts},
    {"local_port", "", ValueType::kNumber, false, FromMetadata<&Meta::local_port>},
    {"other_port", "", ValueType::kNumber, false, FromMetadata<&Meta::other_port>},
    {"vlan", "", ValueType::kNumber, false, FromMetadata<&Meta::vlan_id>},
    {"ip_version", "", ValueType::kNumber, false, FromMetadata<&Meta::ip_version>},
    {"l4", "", ValueType::kNumber, false, FromMetadata<&Meta::ip_protocol>},
    {"bytes", "", ValueType::kNumber, false, FromCounters<&Counts::total_bytes>},
    {"packets", "", ValueType::kNumber, false, FromCounters<&Counts::total_packets>},
    {"guessed", "", ValueType::kBool, false, FromMetadata<&Meta::detection_guessed>},
};

constexpr std::string_view kEventTypes[] = {"flow",         "flow_stats",  "flow_purge",
                                            "agent_status", "agent_hello", "definitions"};

struct L4Name {
  std::string_view name;
  uint64_t number;
};
constexpr L4Name kL4Names[] = {{"icmp", 1}, {"tcp", 6},     {"udp", 17},
                               {"gre", 47}, {"icmpv6", 58}, {"sctp", 132}};

enum class Op : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe, kGlob, kNotGlob, kIn, kNotIn };
constexpr std::string_view kOpText[] = {"==", "!=", "<",  "<=", ">",
                                        ">=", "~",  "!~", "in", "not in"};

std::string_view OpText(Op op) { return kOpText[static_cast<size_t>(op)]; }
std::string_view TypeName(ValueType type) { return kTypeNames[static_cast<size_t>(type)]; }

// !=, !~ and `not in` are evaluated as the negation of ==, ~ and in.
bool IsNegated(Op op) { return op == Op::kNe || op == Op::kNotGlob || op == Op::kNotIn; }

bool OpAllowed(ValueType type, Op op) {
  bool equality = op == Op::kEq || op == Op::kNe || op == Op::kIn || op == Op::kNotIn;
  bool glob = op == Op::kGlob || op == Op::kNotGlob;
  switch (type) {
    case ValueType::kString:
      return equality || glob;
    case ValueType::kAddress:
      return equality;
    case ValueType::kNumber:
      return !glob;
    case ValueType::kBool:
      return op == Op::kEq || op == Op::kNe;
  }
  return false;
}

// ---------------------------------------------------------------------------------------
// Small text helpers (ASCII only, locale-free)

char LowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (LowerAscii(a[i]) != LowerAscii(b[i])) return false;
  }
  return true;
}

bool CharEquals(char a, char b, bool exact) {
  return exact ? a == b : LowerAscii(a) == LowerAscii(b);
}

// `*` matches any run (also empty), `?` exactly one byte. Iterative with one backtrack
// point, so hostile patterns cost O(pattern * text) time and no stack.
bool GlobMatch(std::string_view pattern, std::string_view text, bool exact) {
  size_t p = 0, t = 0;
  size_t star = std::string_view::npos, resume = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (p < pattern.size() &&
               (pattern[p] == '?' || CharEquals(pattern[p], text[t], exact))) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

// Quotes `text` for an error message: bounded in length, odd bytes as \xNN.
std::string Quote(std::string_view text, char quote) {
  constexpr size_t kMaxShown = 40;
  std::string out(1, quote);
  for (size_t i = 0; i < text.size() && i < kMaxShown; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c >= 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > kMaxShown) out += "...";
  out += quote;
  return out;
}

// ---------------------------------------------------------------------------------------
// Addresses

struct Network {
  uint8_t family = 0;  // 4 or 6
  uint8_t prefix = 0;  // bits that must match; 32 or 128 for a single address
  std::array<uint8_t, 16> bytes{};
};

uint8_t FullPrefix(uint8_t family) { return family == 4 ? 32 : 128; }

// Parses an address without a prefix. Copies into a stack buffer because inet_pton wants a
// NUL-terminated string; evaluation calls this for every stored address, so no heap.
bool ParseAddress(std::string_view text, Network* out) {
  char buffer[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof(buffer)) return false;
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  out->bytes.fill(0);
  if (inet_pton(AF_INET, buffer, out->bytes.data()) == 1) {
    out->family = 4;
  } else if (inet_pton(AF_INET6, buffer, out->bytes.data()) == 1) {
    out->family = 6;
  } else {
    return false;
  }
  out->prefix = FullPrefix(out->family);
  return true;
}

// Parses "ADDRESS" or "ADDRESS/PREFIX"; clears the host bits so that matching and
// ToString() see the network itself.
bool ParseNetwork(std::string_view text, Network* out) {
  size_t slash = text.find('/');
  if (!ParseAddress(text.substr(0, slash), out)) return false;
  if (slash == std::string_view::npos) return true;
  std::string_view digits = text.substr(slash + 1);
  if (digits.empty() || digits.size() > 3) return false;
  unsigned prefix = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    prefix = prefix * 10 + static_cast<unsigned>(c - '0');
  }
  if (prefix > FullPrefix(out->family)) return false;
  out->prefix = static_cast<uint8_t>(prefix);
  for (unsigned bit = prefix; bit < 128; ++bit) {
    out->bytes[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
  }
  return true;
}

bool Contains(const Network& network, const Network& address) {
  if (network.family != address.family) return false;
  size_t whole = network.prefix / 8;
  if (std::memcmp(network.bytes.data(), address.bytes.data(), whole) != 0) return false;
  unsigned rest = network.prefix % 8;
  if (rest == 0) return true;
  auto mask = static_cast<uint8_t>(0xffu << (8 - rest));
  return (address.bytes[whole] & mask) == network.bytes[whole];
}

std::string NetworkToString(const Network& network) {
  char buffer[INET6_ADDRSTRLEN] = {};
  inet_ntop(network.family == 4 ? AF_INET : AF_INET6, network.bytes.data(), buffer, sizeof(buffer));
  std::string out = buffer;
  if (network.prefix != FullPrefix(network.family)) out += "/" + std::to_string(network.prefix);
  return out;
}

// ---------------------------------------------------------------------------------------
// The compiled form

struct Node {
  enum class Kind : uint8_t { kOr, kAnd, kNot, kCompare };  // loosest binding first
  Kind kind = Kind::kCompare;
  std::vector<uint32_t> children;  // kOr, kAnd: two or more; kNot: one
  // kCompare only:
  const FieldInfo* field = nullptr;
  Op op = Op::kEq;
  bool list = false;                 // written as `in (...)`: ToString() keeps the form
  std::vector<std::string> strings;  // kString fields (the glob pattern for ~ and !~)
  std::vector<uint64_t> numbers;     // kNumber fields; kBool as 0 or 1
  std::vector<Network> networks;     // kAddress fields
};

// The positive form of the comparison (==, ~, in, <, ...) for one value.
bool StringSatisfies(const Node& n, std::string_view value) {
  bool exact = n.field->exact;
  if (n.op == Op::kGlob || n.op == Op::kNotGlob) return GlobMatch(n.strings[0], value, exact);
  for (const std::string& s : n.strings) {
    if (exact ? s == value : EqualsIgnoreCase(s, value)) return true;
  }
  return false;
}

bool NumberSatisfies(const Node& n, uint64_t value) {
  switch (n.op) {
    case Op::kLt:
      return value < n.numbers[0];
    case Op::kLe:
      return value <= n.numbers[0];
    case Op::kGt:
      return value > n.numbers[0];
    case Op::kGe:
      return value >= n.numbers[0];
    default:
      for (uint64_t number : n.numbers) {
        if (value == number) return true;
      }
      return false;
  }
}

bool AddressSatisfies(const Node& n, std::string_view text) {
  Network address;
  if (!ParseAddress(text, &address)) return false;
  for (const Network& network : n.networks) {
    if (Contains(network, address)) return true;
  }
  return false;
}

bool EvalCompare(const Node& n, const View& s) {
  Values values;
  n.field->get(s, &values);
  if (values.count == 0) return false;  // the field does not apply: every comparison is false
  bool any = false;
  for (int i = 0; i < values.count && !any; ++i) {
    switch (n.field->type) {
      case ValueType::kString:
        any = StringSatisfies(n, values.text[i]);
        break;
      case ValueType::kAddress:
        any = AddressSatisfies(n, values.text[i]);
        break;
      case ValueType::kNumber:
      case ValueType::kBool:
        any = NumberSatisfies(n, values.number[i]);
        break;
    }
  }
  return IsNegated(n.op) ? !any : any;
}

// Recursion depth is bounded by Filter::kMaxDepth: only parentheses and `not` nest nodes.
bool Eval(const std::vector<Node>& nodes, uint32_t index, const View& s) {
  const Node& n = nodes[index];
  switch (n.kind) {
    case Node::Kind::kOr:
      for (uint32_t child : n.children) {
        if (Eval(nodes, child, s)) return true;
      }
      return false;
    case Node::Kind::kAnd:
      for (uint32_t child : n.children) {
        if (!Eval(nodes, child, s)) return false;
      }
      return true;
    case Node::Kind::kNot:
      return !Eval(nodes, n.children[0], s);
    case Node::Kind::kCompare:
      return EvalCompare(n, s);
  }
  return false;
}

// ---------------------------------------------------------------------------------------
// Rendering

std::string RenderString(std::string_view value) {
  std::string out = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string RenderValue(const Node& n, size_t i) {
  switch (n.field->type) {
    case ValueType::kString:
      return RenderString(n.strings[i]);
    case ValueType::kAddress:
      return NetworkToString(n.networks[i]);
    case ValueType::kBool:
      return n.numbers[i] != 0 ? "true" : "false";
    case ValueType::kNumber:
      if (n.field->name == "l4") {
        for (const L4Name& l4 : kL4Names) {
          if (l4.number == n.numbers[i]) return std::string(l4.name);
        }
      }
      return std::to_string(n.numbers[i]);
  }
  return "";
}

// Node::Kind is declared loosest first.
int Precedence(Node::Kind kind) { return static_cast<int>(kind) + 1; }

void Render(const std::vector<Node>& nodes, uint32_t index, int parent_precedence,
            std::string* out) {
  const Node& n = nodes[index];
  int precedence = Precedence(n.kind);
  bool parens = precedence < parent_precedence;
  if (parens) *out += '(';
  switch (n.kind) {
    case Node::Kind::kOr:
    case Node::Kind::kAnd:
      for (size_t i = 0; i < n.children.size(); ++i) {
        if (i > 0) *out += n.kind == Node::Kind::kOr ? " or " : " and ";
        Render(nodes, n.children[i], precedence, out);
      }
      break;
    case Node::Kind::kNot:
      *out += "not ";
      Render(nodes, n.children[0], precedence, out);
      break;
    case Node::Kind::kCompare: {
      *out += n.field->name;
      *out += ' ';
      *out += OpText(n.op);
      *out += ' ';
      size_t count = n.strings.size() + n.numbers.size() + n.networks.size();
      if (n.list) *out += '(';
      for (size_t i = 0; i < count; ++i) {
        if (i > 0) *out += ", ";
        *out += RenderValue(n, i);
      }
      if (n.list) *out += ')';
      break;
    }
  }
  if (parens) *out += ')';
}

// ---------------------------------------------------------------------------------------
// Lexer

enum class TokenKind : uint8_t { kEnd, kLParen, kRParen, kComma, kOp, kString, kWord };

struct Token {
  TokenKind kind = TokenKind::kEnd;
  size_t offset = 0;      // byte offset of the first character
  std::string_view text;  // as written (for strings: with the quotes)
  Op op = Op::kEq;        // kOp only
  std::string value;      // kString only: the decoded contents
};

Status ErrorAt(size_t offset, std::string_view what) {
  return Status::InvalidArgument("column " + std::to_string(offset + 1) + ": " + std::string(what));
}

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
// Words are identifiers, numbers, addresses and networks; they are told apart later.
bool IsWordChar(char c) { return IsLetter(c) || IsDigit(c) || c == '.' || c == ':' || c == '/'; }

bool IsIdentifier(std::string_view word) {
  if (word.empty() || !IsLetter(word[0])) return false;
  for (char c : word) {
    if (!IsLetter(c) && !IsDigit(c)) return false;
  }
  return true;
}

class Lexer {
 public:
  explicit Lexer(std::string_view text) : text_(text) {}

  Status Next(Token* token) {
    while (pos_ < text_.size() && IsSpace(text_[pos_])) ++pos_;
    token->offset = pos_;
    token->value.clear();
    if (pos_ == text_.size()) {
      token->kind = TokenKind::kEnd;
      token->text = {};
      return Status::Ok();
    }
    char c = text_[pos_];
    char next = pos_ + 1 < text_.size() ? text_[pos_ + 1] : '\0';
    switch (c) {
      case '(':
        return Symbol(TokenKind::kLParen, 1, token);
      case ')':
        return Symbol(TokenKind::kRParen, 1, token);
      case ',':
        return Symbol(TokenKind::kComma, 1, token);
      case '~':
        return Operator(Op::kGlob, 1, token);
      case '<':
        return next == '=' ? Operator(Op::kLe, 2, token) : Operator(Op::kLt, 1, token);
      case '>':
        return next == '=' ? Operator(Op::kGe, 2, token) : Operator(Op::kGt, 1, token);
      case '=':
        if (next == '=') return Operator(Op::kEq, 2, token);
        return ErrorAt(pos_, "unexpected '='; compare with '=='");
      case '!':
        if (next == '=') return Operator(Op::kNe, 2, token);
        if (next == '~') return Operator(Op::kNotGlob, 2, token);
        return ErrorAt(pos_, "unexpected '!'; use 'not', '!=' or '!~'");
      case '"':
        return String(token);
      case '&':
        return ErrorAt(pos_, "unexpected '&'; use 'and'");
      case '|':
        return ErrorAt(pos_, "unexpected '|'; use 'or'");
      default:
        break;
    }
    if (!IsWordChar(c)) {
      return ErrorAt(pos_, "unexpected character " + Quote(text_.substr(pos_, 1), '\''));
    }
    size_t start = pos_;
    while (pos_ < text_.size() && IsWordChar(text_[pos_])) ++pos_;
    token->kind = TokenKind::kWord;
    token->text = text_.substr(start, pos_ - start);
    return Status::Ok();
  }

 private:
  Status Symbol(TokenKind kind, size_t length, Token* token) {
    token->kind = kind;
    token->text = text_.substr(pos_, length);
    pos_ += length;
    return Status::Ok();
  }
  Status Operator(Op op, size_t length, Token* token) {
    token->op = op;
    return Symbol(TokenKind::kOp, length, token);
  }
  Status String(Token* token) {
    size_t start = pos_++;
    while (pos_ < text_.size() && text_[pos_] != '"') {
      if (text_[pos_] == '\\') {
        char escaped = pos_ + 1 < text_.size() ? text_[pos_ + 1] : '\0';
        if (escaped != '"' && escaped != '\\') {
          return ErrorAt(pos_, "unknown escape in string; only \\\" and \\\\ are allowed");
        }
        ++pos_;
      }
      token->value += text_[pos_++];
    }
    if (pos_ == text_.size()) return ErrorAt(start, "unterminated string");
    ++pos_;
    token->kind = TokenKind::kString;
    token->text = text_.substr(start, pos_ - start);
    return Status::Ok();
  }

  std::string_view text_;
  size_t pos_ = 0;
};

std::string Describe(const Token& token) {
  switch (token.kind) {
    case TokenKind::kEnd:
      return "end of input";
    case TokenKind::kString:
      return "string " + Quote(token.value, '"');
    default:
      return Quote(token.text, '\'');
  }
}

// ---------------------------------------------------------------------------------------
// Parser

const FieldInfo* FindField(std::string_view word) {
  for (const FieldInfo& field : kFields) {
    if (EqualsIgnoreCase(word, field.name) ||
        (!field.alias.empty() && EqualsIgnoreCase(word, field.alias))) {
      return &field;
    }
  }
  return nullptr;
}

bool FindL4(std::string_view name, uint64_t* number) {
  for (const L4Name& l4 : kL4Names) {
    if (EqualsIgnoreCase(name, l4.name)) {
      *number = l4.number;
      return true;
    }
  }
  return false;
}

bool IsKeyword(std::string_view word) {
  for (std::string_view keyword : {"and", "or", "not", "in"}) {
    if (EqualsIgnoreCase(word, keyword)) return true;
  }
  return false;
}

// Parses a decimal number with an optional k/M/G suffix (any case, powers of 1000).
// Returns false for anything else; sets *overflow when the digits are fine but too large.
bool ParseNumber(std::string_view word, uint64_t* out, bool* overflow) {
  uint64_t multiplier = 1;
  char last = word.empty() ? '\0' : LowerAscii(word.back());
  if (last == 'k' || last == 'm' || last == 'g') {
    multiplier = last == 'k' ? 1000 : last == 'm' ? 1000 * 1000 : 1000 * 1000 * 1000;
    word.remove_suffix(1);
  }
  if (word.empty()) return false;
  uint64_t value = 0;
  for (char c : word) {
    if (!IsDigit(c)) return false;
    auto digit = static_cast<uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10 || value * 10 + digit > UINT64_MAX / multiplier) {
      *overflow = true;
      return false;
    }
    value = value * 10 + digit;
  }
  *out = value * multiplier;
  return true;
}

class Parser {
 public:
  explicit Parser(std::string_view text) : lexer_(text) {}

  // Parses the whole text into `nodes` (empty for an empty filter); the root is last.
  Status Run(std::vector<Node>* nodes) {
    FLOWGATE_RETURN_IF_ERROR(Advance());
    if (current_.kind == TokenKind::kEnd) return Status::Ok();
    Result<uint32_t> root = ParseChain(Node::Kind::kOr);
    if (!root.ok()) return root.status();
    if (current_.kind != TokenKind::kEnd) {
      return ErrorAt(current_.offset,
                     "expected 'and', 'or' or end of input, found " + Describe(current_));
    }
    *nodes = std::move(nodes_);
    return Status::Ok();
  }

 private:
  Status Advance() {
    previous_ = current_.text;
    return lexer_.Next(&current_);
  }
  bool AtKeyword(std::string_view keyword) const {
    return current_.kind == TokenKind::kWord && EqualsIgnoreCase(current_.text, keyword);
  }
  uint32_t Push(Node node) {
    nodes_.push_back(std::move(node));
    return static_cast<uint32_t>(nodes_.size() - 1);
  }
  Status Nest() {
    if (++depth_ > Filter::kMaxDepth) {
      return ErrorAt(current_.offset, "expression nested deeper than " +
                                          std::to_string(Filter::kMaxDepth) + " levels");
    }
    return Status::Ok();
  }

  // or_expr = and_expr { "or" and_expr } (and the same shape for and_expr over unary).
  Result<uint32_t> ParseChain(Node::Kind kind) {
    bool is_or = kind == Node::Kind::kOr;
    Node chain;
    chain.kind = kind;
    do {
      if (!chain.children.empty()) FLOWGATE_RETURN_IF_ERROR(Advance());
      Result<uint32_t> term = is_or ? ParseChain(Node::Kind::kAnd) : ParseUnary();
      if (!term.ok()) return term.status();
      chain.children.push_back(term.value());
    } while (AtKeyword(is_or ? "or" : "and"));
    if (chain.children.size() == 1) return chain.children[0];
    return Push(std::move(chain));
  }

  // unary = "not" unary | "(" or_expr ")" | comparison
  Result<uint32_t> ParseUnary() {
    if (AtKeyword("not")) {
      FLOWGATE_RETURN_IF_ERROR(Nest());
      FLOWGATE_RETURN_IF_ERROR(Advance());
      Result<uint32_t> operand = ParseUnary();
      if (!operand.ok()) return operand.status();
      --depth_;
      Node node;
      node.kind = Node::Kind::kNot;
      node.children.push_back(operand.value());
      return Push(std::move(node));
    }
    if (current_.kind == TokenKind::kLParen) {
      size_t open = current_.offset;
      FLOWGATE_RETURN_IF_ERROR(Nest());
      FLOWGATE_RETURN_IF_ERROR(Advance());
      Result<uint32_t> inner = ParseChain(Node::Kind::kOr);
      if (!inner.ok()) return inner.status();
      if (current_.kind != TokenKind::kRParen) {
        return ErrorAt(current_.offset, "expected ')' to close the '(' at column " +
                                            std::to_string(open + 1) + ", found " +
                                            Describe(current_));
      }
      FLOWGATE_RETURN_IF_ERROR(Advance());
      --depth_;
      return inner;
    }
    return ParseComparison();
  }

  // comparison = field op value | field ["not"] "in" set | bool_field
  Result<uint32_t> ParseComparison() {
    if (current_.kind != TokenKind::kWord || !IsIdentifier(current_.text) ||
        IsKeyword(current_.text)) {
      return ErrorAt(current_.offset, "expected a field name, found " + Describe(current_));
    }
    Node node;
    node.field = FindField(current_.text);
    if (node.field == nullptr) {
      return ErrorAt(current_.offset, "unknown field " + Quote(current_.text, '\''));
    }
    std::string field_text(current_.text);
    FLOWGATE_RETURN_IF_ERROR(Advance());
    size_t op_offset = current_.offset;
    if (current_.kind == TokenKind::kOp) {
      node.op = current_.op;
    } else if (AtKeyword("in")) {
      node.op = Op::kIn;
    } else if (AtKeyword("not")) {
      FLOWGATE_RETURN_IF_ERROR(Advance());
      if (!AtKeyword("in")) {
        return ErrorAt(current_.offset, "expected 'in' after 'not', found " + Describe(current_));
      }
      node.op = Op::kNotIn;
    } else if (node.field->type == ValueType::kBool) {
      node.numbers.push_back(1);  // a bare `guessed` reads as `guessed == true`
      return Push(std::move(node));
    } else {
      return ErrorAt(current_.offset, "expected an operator after " + Quote(field_text, '\'') +
                                          ", found " + Describe(current_));
    }
    if (!OpAllowed(node.field->type, node.op)) {
      return ErrorAt(op_offset, "operator '" + std::string(OpText(node.op)) +
                                    "' does not apply to " +
                                    std::string(TypeName(node.field->type)) + " field '" +
                                    std::string(node.field->name) + "'");
    }
    FLOWGATE_RETURN_IF_ERROR(Advance());
    bool is_in = node.op == Op::kIn || node.op == Op::kNotIn;
    if (is_in && current_.kind == TokenKind::kLParen) {
      node.list = true;
      FLOWGATE_RETURN_IF_ERROR(Advance());
      while (true) {
        FLOWGATE_RETURN_IF_ERROR(ParseValue(&node));
        if (current_.kind == TokenKind::kRParen) break;
        if (current_.kind != TokenKind::kComma) {
          return ErrorAt(current_.offset,
                         "expected ',' or ')' in the list, found " + Describe(current_));
        }
        FLOWGATE_RETURN_IF_ERROR(Advance());
      }
      FLOWGATE_RETURN_IF_ERROR(Advance());
    } else {
      FLOWGATE_RETURN_IF_ERROR(ParseValue(&node));
    }
    return Push(std::move(node));
  }

  // Appends the current token, converted for the node's field, and advances past it.
  Status ParseValue(Node* node) {
    const FieldInfo& field = *node->field;
    const Token& t = current_;
    bool is_value =
        t.kind == TokenKind::kString || (t.kind == TokenKind::kWord && !IsKeyword(t.text));
    if (!is_value) {
      return ErrorAt(t.offset,
                     "expected a value after " + Quote(previous_, '\'') + ", found " + Describe(t));
    }
    std::string_view text = t.kind == TokenKind::kString ? std::string_view(t.value) : t.text;
    bool ok = false;
    std::string_view wanted;
    switch (field.type) {
      case ValueType::kString:
        wanted = "a quoted string";
        ok = t.kind == TokenKind::kString;
        if (ok && field.name == "type" && node->op != Op::kGlob && node->op != Op::kNotGlob &&
            !IsEventType(text)) {
          return ErrorAt(t.offset, "unknown event type " + Quote(text, '"') +
                                       "; expected flow, flow_stats, flow_purge, "
                                       "agent_status, agent_hello or definitions");
        }
        if (ok) node->strings.emplace_back(text);
        break;
      case ValueType::kNumber: {
        wanted = field.name == "l4" ? "a number or tcp, udp, icmp, icmpv6, gre, sctp" : "a number";
        uint64_t number = 0;
        bool overflow = false;
        if (t.kind == TokenKind::kWord && ParseNumber(text, &number, &overflow)) {
          ok = true;
        } else if (overflow) {
          return ErrorAt(t.offset, "number " + Quote(text, '\'') + " is too large");
        } else if (field.name == "l4") {
          ok = FindL4(text, &number);
        }
        if (ok) node->numbers.push_back(number);
        break;
      }
      case ValueType::kAddress: {
        wanted = "an address or network";
        Network network;
        ok = ParseNetwork(text, &network);
        if (ok && network.prefix != FullPrefix(network.family) &&
            (node->op == Op::kEq || node->op == Op::kNe)) {
          return ErrorAt(t.offset, "'" + std::string(OpText(node->op)) +
                                       "' takes one address; use 'in' to match network " +
                                       NetworkToString(network));
        }
        if (ok) node->networks.push_back(network);
        break;
      }
      case ValueType::kBool:
        wanted = "true or false";
        ok = t.kind == TokenKind::kWord &&
             (EqualsIgnoreCase(text, "true") || EqualsIgnoreCase(text, "false"));
        if (ok) node->numbers.push_back(EqualsIgnoreCase(text, "true") ? 1 : 0);
        break;
    }
    if (!ok) {
      return ErrorAt(t.offset, "field '" + std::string(field.name) + "' takes " +
                                   std::string(wanted) + ", found " + Describe(t));
    }
    return Advance();
  }

  static bool IsEventType(std::string_view text) {
    for (std::string_view type : kEventTypes) {
      if (EqualsIgnoreCase(text, type)) return true;
    }
    return false;
  }

  Lexer lexer_;
  Token current_;
  std::string_view previous_;
  int depth_ = 0;
  std::vector<Node> nodes_;
};

}  // namespace

// ---------------------------------------------------------------------------------------
// Public API

struct Filter::Program {
  std::vector<Node> nodes;  // children before parents; the root is last
};

Result<Filter> Filter::Parse(std::string_view text) {
  if (text.size() > kMaxLength) {
    return ErrorAt(kMaxLength, "filter is " + std::to_string(text.size()) +
                                   " bytes, longer than the limit of " +
                                   std::to_string(kMaxLength));
  }
  std::vector<Node> nodes;
  FLOWGATE_RETURN_IF_ERROR(Parser(text).Run(&nodes));
  Filter filter;
  if (!nodes.empty()) {
    auto program = std::make_shared<Program>();
    program->nodes = std::move(nodes);
    filter.program_ = std::move(program);
  }
  return filter;
}

bool Filter::Matches(const FilterSubject& subject) const {
  if (program_ == nullptr) return true;
  View view{subject.agent_, subject.context_, subject.metadata_, subject.counters_, subject.type_};
  const std::vector<Node>& nodes = program_->nodes;
  return Eval(nodes, static_cast<uint32_t>(nodes.size() - 1), view);
}

std::string Filter::ToString() const {
  std::string out;
  if (program_ == nullptr) return out;
  const std::vector<Node>& nodes = program_->nodes;
  Render(nodes, static_cast<uint32_t>(nodes.size() - 1), 0, &out);
  return out;
}

FilterSubject FilterSubject::FromFlow(const v1::FlowRecord& flow) {
  FilterSubject s;
  s.agent_ = &flow.agent();
  s.context_ = &flow.context();
  s.metadata_ = &flow.metadata();
  s.counters_ = &flow.counters();
  s.type_ = "flow";
  return s;
}

FilterSubject FilterSubject::FromEvent(const v1::StoredEvent& event) {
  return FromEvent(event.event(), event.agent());
}

FilterSubject FilterSubject::FromEvent(const v1::Event& event, const v1::AgentIdentity& agent) {
  FilterSubject s;
  s.agent_ = &agent;
  switch (event.body_case()) {
    case v1::Event::kFlow:
      s.type_ = "flow";
      s.context_ = &event.flow().context();
      s.metadata_ = &event.flow().flow();
      break;
    case v1::Event::kFlowStats:
      s.type_ = "flow_stats";
      s.context_ = &event.flow_stats().context();
      s.counters_ = &event.flow_stats().flow();
      break;
    case v1::Event::kFlowPurge:
      s.type_ = "flow_purge";
      s.context_ = &event.flow_purge().context();
      s.counters_ = &event.flow_purge().flow();
      break;
    case v1::Event::kAgentStatus:
      s.type_ = "agent_status";
      break;
    case v1::Event::kAgentHello:
      s.type_ = "agent_hello";
      break;
    case v1::Event::kDefinitions:
      s.type_ = "definitions";
      break;
    case v1::Event::BODY_NOT_SET:
      break;
  }
  return s;
}

}  // namespace flowgate
