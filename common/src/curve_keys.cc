#include "flowgate/common/curve_keys.h"

#include <fcntl.h>
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace flowgate {
namespace {

constexpr size_t kZ85KeyLength = 40;

bool IsZ85Key(const std::string& text) {
  uint8_t decoded[32];
  return text.size() == kZ85KeyLength && zmq_z85_decode(decoded, text.c_str()) != nullptr;
}

Result<std::string> ReadText(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("cannot read key file '" + path + "': " + std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

Status WriteOwnerOnly(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IoError("cannot create '" + path + "': " + std::strerror(errno));
  const ssize_t written = ::write(fd, text.data(), text.size());
  const bool closed = ::close(fd) == 0;
  if (written != static_cast<ssize_t>(text.size()) || !closed) {
    return Status::IoError("cannot write '" + path + "': " + std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace

bool CurveAvailable() { return zmq_has("curve") != 0; }

Result<CurveKeyPair> MakeCurveKeyPair() {
  if (!CurveAvailable()) return Status::Unavailable("this libzmq is built without CURVE");
  char public_key[kZ85KeyLength + 1], secret_key[kZ85KeyLength + 1];
  if (zmq_curve_keypair(public_key, secret_key) != 0) {
    return Status::IoError(std::string("zmq_curve_keypair failed: ") + zmq_strerror(zmq_errno()));
  }
  return CurveKeyPair{public_key, secret_key};
}

Status WriteCurveKeyPair(const std::string& dir, const std::string& name,
                         const CurveKeyPair& pair) {
  FLOWGATE_RETURN_IF_ERROR(
      WriteOwnerOnly(dir + "/" + name + ".key",
                     "public-key " + pair.public_key + "\nsecret-key " + pair.secret_key + "\n"));
  return WriteOwnerOnly(dir + "/" + name + ".pub", pair.public_key + "\n");
}

Result<CurveKeyPair> ReadCurveKeyPair(const std::string& path) {
  Result<std::string> text = ReadText(path);
  if (!text.ok()) return text.status();
  CurveKeyPair pair;
  std::istringstream lines(*text);
  std::string label, key;
  while (lines >> label >> key) {
    if (label == "public-key") pair.public_key = key;
    if (label == "secret-key") pair.secret_key = key;
  }
  if (!IsZ85Key(pair.secret_key)) {
    return Status::InvalidArgument("'" + path +
                                   "' is not a key pair file (want 'secret-key Z85'; make one "
                                   "with flowgate keygen)");
  }
  // The public half follows from the secret one; derive it rather than trust the file.
  char public_key[kZ85KeyLength + 1];
  if (zmq_curve_public(public_key, pair.secret_key.c_str()) != 0) {
    return Status::InvalidArgument("'" + path + "' holds an unusable secret key");
  }
  pair.public_key = public_key;
  return pair;
}

Result<std::string> ReadCurvePublicKey(const std::string& path) {
  Result<std::string> text = ReadText(path);
  if (!text.ok()) return text.status();
  if (text->find("secret-key") != std::string::npos) {
    Result<CurveKeyPair> pair = ReadCurveKeyPair(path);
    if (!pair.ok()) return pair.status();
    return pair->public_key;
  }
  std::istringstream words(*text);
  std::string key;
  words >> key;
  if (!IsZ85Key(key)) {
    return Status::InvalidArgument("'" + path +
                                   "' does not hold a CURVE public key (40 Z85 "
                                   "characters, as flowgate keygen writes)");
  }
  return key;
}

Result<std::map<std::string, std::string>> ReadCurveAllowList(const std::string& path) {
  Result<std::string> text = ReadText(path);
  if (!text.ok()) return text.status();
  std::map<std::string, std::string> allowed;
  std::istringstream lines(*text);
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    // '#' is also a Z85 character (a key may start with it): a comment is a first word
    // that starts with '#' and is not a key.
    std::istringstream words(line);
    std::string key, name;
    if (!(words >> key) || (key[0] == '#' && !IsZ85Key(key))) continue;
    if (!IsZ85Key(key)) {
      return Status::InvalidArgument("allow-list '" + path + "' line " + std::to_string(number) +
                                     ": not a CURVE public key");
    }
    if (!(words >> name) || name[0] == '#') name = key;
    allowed[key] = name;
  }
  return allowed;
}

}  // namespace flowgate
