#include "api/grpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

#include "flowgate/common/filter.h"
#include "flowgate/common/log.h"
#include "flowgate/common/text_file.h"
#include "flowgate/storage/flow_query.h"
#include "flowgate/v1/flowgate.grpc.pb.h"

namespace flowgate::gateway {
namespace {

constexpr uint32_t kDefaultSubscribeBatch = 1000;
constexpr uint32_t kMaxSubscribeBatch = 10'000;
// How long an idle subscriber waits for new events before checking for cancellation.
constexpr std::chrono::milliseconds kSubscribeIdleWait(200);
// Threads serving calls; each open Subscribe holds one.
constexpr int kMaxServerThreads = 64;

// The one place a flowgate Status becomes a grpc::Status.
grpc::Status ToGrpc(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return grpc::Status::OK;
    case StatusCode::kInvalidArgument:
      return {grpc::StatusCode::INVALID_ARGUMENT, status.message()};
    case StatusCode::kNotFound:
      return {grpc::StatusCode::NOT_FOUND, status.message()};
    case StatusCode::kAlreadyExists:
      return {grpc::StatusCode::ALREADY_EXISTS, status.message()};
    case StatusCode::kUnavailable:
      return {grpc::StatusCode::UNAVAILABLE, status.message()};
    case StatusCode::kDeadlineExceeded:
      return {grpc::StatusCode::DEADLINE_EXCEEDED, status.message()};
    case StatusCode::kCorruption:
    case StatusCode::kDataLoss:
      return {grpc::StatusCode::DATA_LOSS, status.message()};
    default:
      return {grpc::StatusCode::INTERNAL, status.message()};
  }
}

Result<Filter> ParseFilter(const std::string& text) {
  Result<Filter> filter = Filter::Parse(text);
  if (!filter.ok()) return Status::InvalidArgument("filter: " + filter.status().message());
  return filter;
}

storage::TimeWindow WindowOf(const v1::TimeRange& range) {
  return {.from_ms = range.from_ms(), .to_ms = range.to_ms()};
}

// Wakes subscribers when the log grows.
class SequenceNotifier {
 public:
  void Publish(uint64_t last_sequence) {
    {
      std::lock_guard lock(mutex_);
      last_sequence_ = std::max(last_sequence_, last_sequence);
    }
    changed_.notify_all();
  }
  void Close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    changed_.notify_all();
  }
  // Waits (at most `timeout`) until the log holds events after `sequence`; false once closed.
  bool WaitBeyond(uint64_t sequence, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [&] { return closed_ || last_sequence_ > sequence; });
    return !closed_;
  }
  bool closed() const {
    std::lock_guard lock(mutex_);
    return closed_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  uint64_t last_sequence_ = 0;  // guarded by mutex_
  bool closed_ = false;         // guarded by mutex_
};

class FlowServiceImpl final : public v1::FlowService::Service {
 public:
  FlowServiceImpl(storage::FlowStore& store, std::string token, SequenceNotifier& notifier)
      : store_(store), token_(std::move(token)), notifier_(notifier) {}

  grpc::Status QueryFlows(grpc::ServerContext* context, const v1::QueryFlowsRequest* request,
                          v1::QueryFlowsResponse* response) override {
    return Serve(context, [&]() -> Status {
      Result<Filter> filter = ParseFilter(request->filter());
      if (!filter.ok()) return filter.status();
      Result<storage::FlowPage> page =
          storage::QueryFlows(store_, {.window = WindowOf(request->range()),
                                       .filter = std::move(filter).value(),
                                       .order = request->order(),
                                       .limit = request->limit(),
                                       .page_token = request->page_token()});
      if (!page.ok()) return page.status();
      for (v1::FlowRecord& flow : page->flows) *response->add_flows() = std::move(flow);
      response->set_next_page_token(page->next_page_token);
      response->set_retained_from_ms(store_.retained_from_ms());
      return Status::Ok();
    });
  }

  grpc::Status GetFlow(grpc::ServerContext* context, const v1::GetFlowRequest* request,
                       v1::FlowRecord* response) override {
    return Serve(context, [&]() -> Status {
      if (request->digest().empty()) return Status::InvalidArgument("digest is required");
      std::vector<std::string> agent_ids;
      if (!request->agent_id().empty()) {
        agent_ids.push_back(request->agent_id());
      } else {
        // Digests are salted per agent, so at most one agent holds it; the registry is small.
        Result<std::vector<v1::AgentRecord>> agents = store_.ListAgents();
        if (!agents.ok()) return agents.status();
        for (const v1::AgentRecord& agent : *agents) agent_ids.push_back(agent.identity().id());
      }
      for (const std::string& agent_id : agent_ids) {
        Result<std::optional<v1::FlowRecord>> flow = store_.GetFlow(agent_id, request->digest());
        if (!flow.ok()) return flow.status();
        if (flow->has_value()) {
          *response = std::move(**flow);
          return Status::Ok();
        }
      }
      return Status::NotFound("no flow with digest " + request->digest());
    });
  }

  grpc::Status Top(grpc::ServerContext* context, const v1::TopRequest* request,
                   v1::TopResponse* response) override {
    return Serve(context, [&]() -> Status {
      Result<Filter> filter = ParseFilter(request->filter());
      if (!filter.ok()) return filter.status();
      Result<storage::TopAnswer> answer =
          storage::Top(store_, {.window = WindowOf(request->range()),
                                .filter = std::move(filter).value(),
                                .group_by = request->group_by(),
                                .metric = request->metric(),
                                .limit = request->limit(),
                                .source = request->source()});
      if (!answer.ok()) return answer.status();
      for (v1::TopEntry& entry : answer->entries) *response->add_entries() = std::move(entry);
      response->set_retained_from_ms(store_.retained_from_ms());
      response->set_source(answer->source);
      if (answer->source == v1::TOP_SOURCE_ROLLUPS) {
        response->mutable_rollup_range()->set_from_ms(answer->rollup_window.from_ms);
        response->mutable_rollup_range()->set_to_ms(answer->rollup_window.to_ms);
      }
      response->set_flows_reason(std::move(answer->flows_reason));
      return Status::Ok();
    });
  }

  grpc::Status ListAgents(grpc::ServerContext* context, const v1::ListAgentsRequest* /*request*/,
                          v1::ListAgentsResponse* response) override {
    return Serve(context, [&]() -> Status {
      Result<std::vector<v1::AgentRecord>> agents = store_.ListAgents();
      if (!agents.ok()) return agents.status();
      for (v1::AgentRecord& agent : *agents) *response->add_agents() = std::move(agent);
      return Status::Ok();
    });
  }

  // Reads the durable log from the cursor, then follows it as it grows: every event after
  // the cursor is read exactly once, in order, whatever the subscriber's pace (a slow one
  // is held back by flow control and reads from disk, never buffered here). `dropped`
  // counts only events retention deleted before the subscriber reached them.
  grpc::Status Subscribe(grpc::ServerContext* context, const v1::SubscribeRequest* request,
                         grpc::ServerWriter<v1::SubscribeResponse>* writer) override {
    return Serve(context, [&]() -> Status {
      Result<Filter> filter = ParseFilter(request->filter());
      if (!filter.ok()) return filter.status();
      if (request->max_batch() > kMaxSubscribeBatch) {
        return Status::InvalidArgument("max_batch " + std::to_string(request->max_batch()) +
                                       " exceeds the maximum of " +
                                       std::to_string(kMaxSubscribeBatch));
      }
      const size_t batch =
          request->max_batch() == 0 ? kDefaultSubscribeBatch : request->max_batch();
      uint64_t cursor = request->from_now() || request->after_sequence() == 0
                            ? store_.last_sequence()
                            : request->after_sequence();
      if (request->from_start()) cursor = 0;
      subscribers_.fetch_add(1);
      struct Leave {
        std::atomic<uint64_t>& count;
        ~Leave() { count.fetch_sub(1); }
      } leave{subscribers_};
      std::vector<v1::StoredEvent> events;
      v1::SubscribeResponse response;
      response.set_cursor(cursor);
      if (!writer->Write(response)) return Status::Ok();  // the client went away
      while (!context->IsCancelled() && !notifier_.closed()) {
        events.clear();
        FLOWGATE_RETURN_IF_ERROR(store_.ReadEvents(cursor, batch, &events));
        if (events.empty()) {
          notifier_.WaitBeyond(cursor, kSubscribeIdleWait);
          continue;
        }
        response.Clear();
        // Retention removed events the subscriber had not read yet: say how many.
        if (events.front().gateway_sequence() > cursor + 1) {
          response.set_dropped(events.front().gateway_sequence() - cursor - 1);
        }
        for (v1::StoredEvent& event : events) {
          cursor = event.gateway_sequence();
          if (filter->Matches(FilterSubject::FromEvent(event))) {
            *response.add_events() = std::move(event);
          }
        }
        if (response.events_size() == 0 && response.dropped() == 0) continue;
        response.set_cursor(cursor);
        events_streamed_.fetch_add(static_cast<uint64_t>(response.events_size()));
        if (!writer->Write(response)) break;  // the client went away
      }
      return Status::Ok();
    });
  }

  GrpcServerStats stats() const {
    return {.calls = calls_.load(),
            .unauthenticated = unauthenticated_.load(),
            .invalid_arguments = invalid_arguments_.load(),
            .subscribers = subscribers_.load(),
            .events_streamed = events_streamed_.load()};
  }

 private:
  // Every call passes here: the token check, the error translation and the exception
  // boundary are in one place.
  template <typename Handler>
  grpc::Status Serve(grpc::ServerContext* context, Handler&& handler) {
    calls_.fetch_add(1);
    if (!Authorized(*context)) {
      unauthenticated_.fetch_add(1);
      return {grpc::StatusCode::UNAUTHENTICATED,
              "missing or wrong bearer token: send 'authorization: Bearer TOKEN'"};
    }
    try {
      Status status = handler();
      if (status.code() == StatusCode::kInvalidArgument) invalid_arguments_.fetch_add(1);
      return ToGrpc(status);
    } catch (const std::exception& e) {
      return {grpc::StatusCode::INTERNAL, e.what()};
    }
  }

  bool Authorized(const grpc::ServerContext& context) const {
    if (token_.empty()) return true;
    const auto& metadata = context.client_metadata();
    auto it = metadata.find("authorization");
    if (it == metadata.end()) return false;
    const std::string expected = "Bearer " + token_;
    const std::string_view got(it->second.data(), it->second.size());
    // Compare every byte so the time taken does not reveal how much of the token matched.
    unsigned char diff = got.size() == expected.size() ? 0 : 1;
    for (size_t i = 0; i < expected.size(); ++i) {
      diff |= static_cast<unsigned char>(expected[i] ^ (i < got.size() ? got[i] : 0));
    }
    return diff == 0;
  }

  storage::FlowStore& store_;
  const std::string token_;
  SequenceNotifier& notifier_;
  std::atomic<uint64_t> calls_{0}, unauthenticated_{0}, invalid_arguments_{0}, subscribers_{0},
      events_streamed_{0};
};

class GrpcServerImpl final : public GrpcServer {
 public:
  GrpcServerImpl(storage::FlowStore& store, std::string token)
      : service_(store, std::move(token), notifier_) {}
  ~GrpcServerImpl() override { Stop(); }

  Status Open(const GrpcServerOptions& options) {
    std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
    if (!options.tls_cert_file.empty() || !options.tls_key_file.empty()) {
      if (options.tls_cert_file.empty() || options.tls_key_file.empty()) {
        return Status::InvalidArgument("--grpc-tls-cert and --grpc-tls-key go together");
      }
      Result<std::string> cert = ReadTextFile(options.tls_cert_file, "TLS certificate");
      if (!cert.ok()) return cert.status();
      Result<std::string> key = ReadTextFile(options.tls_key_file, "TLS key");
      if (!key.ok()) return key.status();
      grpc::SslServerCredentialsOptions ssl;
      ssl.pem_key_cert_pairs.push_back({*key, *cert});
      credentials = grpc::SslServerCredentials(ssl);
    }
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(options.listen, credentials, &port);
    builder.RegisterService(&service_);
    grpc::ResourceQuota quota("flowgate-grpc");
    quota.SetMaxThreads(kMaxServerThreads);
    builder.SetResourceQuota(quota);
    server_ = builder.BuildAndStart();
    if (server_ == nullptr || port == 0) {
      return Status::Unavailable("cannot listen for gRPC on " + options.listen);
    }
    const size_t colon = options.listen.rfind(':');
    bound_address_ = options.listen.substr(0, colon) + ":" + std::to_string(port);
    tls_ = !options.tls_cert_file.empty();
    return Status::Ok();
  }

  std::string bound_address() const override { return bound_address_; }
  bool tls() const { return tls_; }
  void NotifyStored(uint64_t last_sequence) override { notifier_.Publish(last_sequence); }
  GrpcServerStats stats() const override { return service_.stats(); }

  void Stop() override {
    notifier_.Close();
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
      server_.reset();
    }
  }

 private:
  SequenceNotifier notifier_;
  FlowServiceImpl service_;
  std::unique_ptr<grpc::Server> server_;
  std::string bound_address_;
  bool tls_ = false;
};

}  // namespace

Result<std::unique_ptr<GrpcServer>> GrpcServer::Start(const GrpcServerOptions& options,
                                                      storage::FlowStore& store) {
  std::string token;
  if (!options.token_file.empty()) {
    Result<std::string> text = ReadTokenFile(options.token_file);
    if (!text.ok()) return text.status();
    token = std::move(text).value();
  }
  auto server = std::make_unique<GrpcServerImpl>(store, std::move(token));
  FLOWGATE_RETURN_IF_ERROR(server->Open(options));
  Log(LogLevel::kInfo, "grpc",
      std::string("gRPC listening on ") + server->bound_address() +
          (server->tls() ? " (TLS)" : "") +
          (options.token_file.empty() ? "" : " (bearer token required)"));
  return std::unique_ptr<GrpcServer>(std::move(server));
}

}  // namespace flowgate::gateway
