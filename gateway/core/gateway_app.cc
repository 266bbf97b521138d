#include "core/gateway_app.h"

#include <chrono>
#include <mutex>
#include <thread>

#include "api/json_socket_server.h"
#include "classify/ndpi_classifier.h"
#include "flowgate/common/identity.h"
#include "flowgate/common/log.h"
#include "flowgate/common/netifyd_json.h"
#include "flowgate/storage/flow_store.h"
#include "ingest/agent_listener.h"

namespace flowgate::gateway {
namespace {

class GatewayImpl final : public Gateway {
 public:
  explicit GatewayImpl(const GatewayOptions& options) : options_(options) {}
  ~GatewayImpl() override { Stop(); }

  Status Open() {
    Result<std::unique_ptr<storage::FlowStore>> store = storage::OpenRocksFlowStore(
        {.path = options_.data_dir, .sync_writes = options_.sync_writes});
    if (!store.ok()) return store.status();
    store_ = std::move(store).value();

    // The catalogue never changes while the gateway runs: encode it once.
    Result<std::unique_ptr<classify::NdpiModule>> ndpi = classify::NdpiModule::Create({});
    if (!ndpi.ok()) return ndpi.status();
    v1::Event definitions;
    *definitions.mutable_definitions() = (*ndpi)->Definitions();
    definitions_frame_ =
        std::make_shared<const std::string>(EncodeNetifydFrame(definitions, nullptr));
    v1::Event hello;
    hello.mutable_agent_hello()->set_agent_version(FlowgateVersion());
    hello.mutable_agent_hello()->set_build_version(std::string("flowgate-gateway ") +
                                                   FlowgateVersion());
    hello.mutable_agent_hello()->set_json_version(kNetifydJsonVersion);
    hello_frame_ = std::make_shared<const std::string>(EncodeNetifydFrame(hello, nullptr));

    JsonSocketServerOptions json_options;
    json_options.unix_paths = options_.json_sockets;
    json_options.tcp_addresses = options_.json_tcp;
    json_options.client_buffer_bytes = options_.json_client_buffer_bytes;
    json_options.welcome_frames = [this] {
      return std::vector<Frame>{hello_frame_, StatusFrame(), definitions_frame_};
    };
    Result<std::unique_ptr<JsonSocketServer>> json =
        JsonSocketServer::Create(std::move(json_options));
    if (!json.ok()) return json.status();
    json_ = std::move(json).value();

    Result<std::unique_ptr<AgentListener>> listener = AgentListener::Create(
        {.endpoint = options_.agents_listen}, *store_,
        [this](const std::vector<v1::StoredEvent>& events) { Fanout(events); });
    if (!listener.ok()) return listener.status();
    listener_ = std::move(listener).value();
    Log(LogLevel::kInfo, "gateway", "agents listening on " + listener_->bound_endpoint());
    for (const std::string& path : options_.json_sockets) {
      Log(LogLevel::kInfo, "gateway", "JSON socket at " + path);
    }
    for (const std::string& address : json_->tcp_bound_addresses()) {
      Log(LogLevel::kInfo, "gateway", "JSON TCP listener at " + address);
    }
    Log(LogLevel::kInfo, "gateway",
        "store at " + options_.data_dir + " holds " + std::to_string(store_->last_sequence()) +
            " events");
    return Status::Ok();
  }

  std::string agents_endpoint() const override { return listener_->bound_endpoint(); }
  std::vector<std::string> json_tcp_addresses() const override {
    return json_->tcp_bound_addresses();
  }

  void PublishStatus() override { json_->Publish(StatusFrame()); }

  void Stop() override {
    // Reverse order of start: no new batches, then no clients, then close the store.
    if (listener_) listener_->Stop();
    if (json_) json_->Stop();
    listener_.reset();
    json_.reset();
    store_.reset();
  }

 private:
  // Ingest thread: every stored event goes to every JSON client, naming its agent.
  void Fanout(const std::vector<v1::StoredEvent>& events) {
    for (const v1::StoredEvent& stored : events) {
      json_->Publish(
          std::make_shared<const std::string>(EncodeNetifydFrame(stored.event(), &stored.agent())));
    }
  }

  Frame StatusFrame() const {
    const ProcessUsage usage = CurrentProcessUsage();
    v1::Event event;
    v1::AgentStatus* s = event.mutable_agent_status();
    FillProcessStatus(usage, usage,
                      std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count(),
                      static_cast<uint32_t>(options_.status_interval_ms / 1000),
                      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                                std::chrono::steady_clock::now() - started_)
                                                .count()),
                      s);
    return std::make_shared<const std::string>(EncodeNetifydFrame(event, nullptr));
  }

  const GatewayOptions options_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::unique_ptr<storage::FlowStore> store_;
  std::unique_ptr<JsonSocketServer> json_;
  std::unique_ptr<AgentListener> listener_;
  Frame hello_frame_, definitions_frame_;
};

}  // namespace

Result<std::unique_ptr<Gateway>> Gateway::Start(const GatewayOptions& options) {
  if (options.data_dir.empty())
    return Status::InvalidArgument("no data dir given: use --data-dir DIR");
  auto gateway = std::make_unique<GatewayImpl>(options);
  FLOWGATE_RETURN_IF_ERROR(gateway->Open());
  return std::unique_ptr<Gateway>(std::move(gateway));
}

}  // namespace flowgate::gateway
