// The CLI's gRPC commands: query, top, tail, agents, flow.
#pragma once

#include <string>

namespace flowgate::cli {

struct ClientOptions {
  // gRPC address of the gateway. Default: 127.0.0.1:7152.
  std::string gateway = "127.0.0.1:7152";
  // File holding the bearer token. Default: none.
  std::string token_file;
  // PEM CA certificate to verify the gateway's TLS certificate; given: use TLS. Default: none.
  std::string tls_ca_file;
};

// True for the commands RunQueryCommand serves.
bool IsQueryCommand(const std::string& command);

// Runs the command argv[0] (one IsQueryCommand accepts) with its own flags argv[1..argc)
// and returns the exit code: 0 success, 1 the gateway failed the call, 2 bad usage.
int RunQueryCommand(const ClientOptions& client, int argc, const char* const* argv);

}  // namespace flowgate::cli
