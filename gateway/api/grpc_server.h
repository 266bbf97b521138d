// The gateway's gRPC API (proto/flowgate/v1/flowgate.proto FlowService), plus the standard
// health service and server reflection. Handlers are thin adapters over the store and the
// query layer (flowgate/storage/flow_query.h); no gRPC types leave this component.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "flowgate/common/status.h"
#include "flowgate/storage/flow_store.h"

namespace flowgate::gateway {

struct GrpcServerOptions {
  // HOST:PORT to listen on; port 0 picks one (see bound_address()). REQUIRED.
  std::string listen;
  // PEM certificate chain and private key files: both or neither. Default: plaintext.
  std::string tls_cert_file;
  std::string tls_key_file;
  // File holding the bearer token every FlowService call must carry as
  // "authorization: Bearer TOKEN" (surrounding blanks ignored). Health and reflection are
  // not guarded. Default: no token required.
  std::string token_file;
};

struct GrpcServerStats {
  uint64_t calls = 0;
  uint64_t unauthenticated = 0;    // calls rejected for a missing or wrong token
  uint64_t invalid_arguments = 0;  // calls rejected for bad arguments
  uint64_t subscribers = 0;        // Subscribe streams open now
  uint64_t events_streamed = 0;    // events sent to subscribers
};

class GrpcServer {
 public:
  // Binds and starts serving `store`, which must outlive the server. Fails with a message
  // naming the address or the file that could not be used.
  static Result<std::unique_ptr<GrpcServer>> Start(const GrpcServerOptions& options,
                                                   storage::FlowStore& store);
  virtual ~GrpcServer() = default;

  // HOST:PORT actually bound.
  virtual std::string bound_address() const = 0;
  // Tells subscribers that the log now ends at `last_sequence`. Thread-safe; never blocks
  // on a subscriber.
  virtual void NotifyStored(uint64_t last_sequence) = 0;
  virtual GrpcServerStats stats() const = 0;
  // Ends open streams and stops serving. Idempotent.
  virtual void Stop() = 0;
};

}  // namespace flowgate::gateway
