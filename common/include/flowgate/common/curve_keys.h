// CURVE key files shared by agent, gateway and `flowgate keygen` (issue 4).
//
// A key pair file (NAME.key, mode 0600) holds two lines, `public-key Z85` and
// `secret-key Z85`; a public key file (NAME.pub) holds the public key's Z85 text (40
// characters). An allow-list file holds one agent public key per line, optionally followed
// by a name for logs; blank lines and comments (from a word starting with `#`) are
// skipped, and a NAME.pub file is a valid one-entry allow-list.
#pragma once

#include <map>
#include <string>

#include "flowgate/common/status.h"

namespace flowgate {

struct CurveKeyPair {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;  // Z85, 40 characters
};

// True when the linked libzmq supports CURVE (built with libsodium).
bool CurveAvailable();
// A fresh key pair (zmq_curve_keypair).
Result<CurveKeyPair> MakeCurveKeyPair();
// Writes DIR/NAME.key (the pair) and DIR/NAME.pub (the public key), both created with mode
// 0600 (readable by the owner only); refuses to overwrite an existing file.
Status WriteCurveKeyPair(const std::string& dir, const std::string& name, const CurveKeyPair& pair);
// Reads a key pair file; fails naming the file (missing, unreadable, malformed key).
Result<CurveKeyPair> ReadCurveKeyPair(const std::string& path);
// Reads a public key: a NAME.pub file, or the public half of a NAME.key file.
Result<std::string> ReadCurvePublicKey(const std::string& path);
// Reads an allow-list: public key -> name (the key itself when no name is given). Fails
// naming the file and line of the first malformed entry.
Result<std::map<std::string, std::string>> ReadCurveAllowList(const std::string& path);

}  // namespace flowgate
