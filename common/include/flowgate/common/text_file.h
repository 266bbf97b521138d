// Small text files given on the command line: TLS certificates and keys, bearer tokens.
// Header-only so that the gateway's gRPC API and the CLI read them the same way.
#pragma once

#include <fstream>
#include <sstream>
#include <string>

#include "flowgate/common/status.h"

namespace flowgate {

// The whole file; fails with "cannot read WHAT PATH".
inline Result<std::string> ReadTextFile(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::InvalidArgument("cannot read " + what + " " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// A bearer token: the file's text without surrounding blanks; an empty one is an error.
inline Result<std::string> ReadTokenFile(const std::string& path) {
  Result<std::string> text = ReadTextFile(path, "token file");
  if (!text.ok()) return text.status();
  std::string token = std::move(text).value();
  const char* blanks = " \t\r\n";
  token.erase(0, token.find_first_not_of(blanks));
  token.erase(token.find_last_not_of(blanks) + 1);
  if (token.empty()) return Status::InvalidArgument("token file " + path + " is empty");
  return token;
}

}  // namespace flowgate
