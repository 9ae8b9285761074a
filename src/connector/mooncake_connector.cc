// MooncakeConnector set-up, environment and metrics. The prefill side is in mooncake_producer.cc,
// the decode side in mooncake_consumer.cc.
#include <httplib.h>

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <random>

#include "common/host_port.h"
#include "common/log.h"
#include "common/mutex.h"
#include "connector/internal/mooncake_connector_impl.h"
#include "connector/kv_transfer_params.h"
#include "http/http_client_call.h"
#include "http/http_client_timeouts.h"

namespace ferry::connector {
namespace {

Result<int64_t> EnvInteger(const char* name, int64_t fallback, int64_t min, int64_t max) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  long long n = std::strtoll(v, &end, 10);
  if (end == v || *end != '\0' || n < min || n > max) {
    return InvalidArgumentError(std::string(name) + "='" + v + "' must be an integer from " +
                                std::to_string(min) + " to " + std::to_string(max));
  }
  return static_cast<int64_t>(n);
}

// Seconds from the environment as milliseconds; fractional seconds are allowed.
Result<std::chrono::milliseconds> EnvSeconds(const char* name, std::chrono::milliseconds fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  double d = std::strtod(v, &end);
  if (end == v || *end != '\0' || !(d > 0) || d > 1e7) {
    return InvalidArgumentError(std::string(name) + "='" + v +
                                "' must be a positive number of seconds");
  }
  return std::chrono::milliseconds(static_cast<int64_t>(d * 1000));
}

std::string RandomEngineId() {
  std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("ferry-{:016x}", rng());
}

}  // namespace

Result<std::string> NormalizeBootstrapAddr(std::string_view addr) {
  std::string_view rest = addr;
  if (rest.substr(0, 7) == "http://") rest.remove_prefix(7);
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  auto hp = ParseHostPort(rest);
  if (!hp.ok() || hp->port == 0 || hp->host.empty()) {
    return InvalidArgumentError("bootstrap address '" + std::string(addr) +
                                "' is not http://host:port");
  }
  return hp->ToString();
}

std::string ProxyAuthMessage(const RemoteKvSource& source) {
  return ProxySignedFields(source.transfer_id, source.bootstrap_addr, source.engine_id);
}

std::string KvWrittenNotification(const std::string& token) { return "ferry-kv-written:" + token; }

Status ApplyConnectorEnvironment(MooncakeConnectorOptions* o) {
  FERRY_ASSIGN_OR_RETURN(int64_t port,
                         EnvInteger("VLLM_MOONCAKE_BOOTSTRAP_PORT", o->bootstrap_port, 1, 65535));
  o->bootstrap_port = static_cast<uint16_t>(port);
  FERRY_ASSIGN_OR_RETURN(o->abort_timeout,
                         EnvSeconds("VLLM_MOONCAKE_ABORT_REQUEST_TIMEOUT", o->abort_timeout));
  FERRY_ASSIGN_OR_RETURN(o->connector_timeout,
                         EnvSeconds("VLLM_MOONCAKE_CONNECTOR_TIMEOUT", o->connector_timeout));
  FERRY_ASSIGN_OR_RETURN(o->kv_load_timeout,
                         EnvSeconds("FERRY_KV_LOAD_TIMEOUT", o->kv_load_timeout));
  FERRY_ASSIGN_OR_RETURN(o->transfer_timeout,
                         EnvSeconds("FERRY_KV_TRANSFER_TIMEOUT", o->transfer_timeout));
  FERRY_ASSIGN_OR_RETURN(o->late_write_guard,
                         EnvSeconds("FERRY_KV_LATE_WRITE_GUARD", o->late_write_guard));
  if (o->secret.empty()) o->secret = SecretFromEnvironment();
  if (const char* list = std::getenv("FERRY_KV_ALLOWED_BOOTSTRAP"); list != nullptr && *list) {
    std::string_view rest = list;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string_view item = rest.substr(0, comma);
      if (!item.empty()) o->allowed_bootstrap_addrs.emplace_back(item);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  if (const char* p = std::getenv("FERRY_KV_LOAD_FAILURE_POLICY"); p != nullptr && *p) {
    std::string policy = p;
    if (policy == "recompute") {
      o->failure_policy = engine::KvLoadFailurePolicy::kRecompute;
    } else if (policy == "fail") {
      o->failure_policy = engine::KvLoadFailurePolicy::kFail;
    } else {
      return InvalidArgumentError("FERRY_KV_LOAD_FAILURE_POLICY='" + policy +
                                  "' must be 'recompute' or 'fail'");
    }
  }
  return OkStatus();
}

void MooncakeConnectorImpl::CallState::Resolve(const std::string& decode_req_id,
                                               const Status& status) {
  MutexLock lock(&mu);
  if (status.ok()) {
    reply.ok_reqs.push_back(decode_req_id);
  } else {
    reply.err_reqs.push_back(decode_req_id);
    if (!reply.err_msg.empty()) reply.err_msg += "; ";
    reply.err_msg += decode_req_id + ": " + status.message();
  }
  if (--remaining == 0) {
    reply.status = reply.err_reqs.empty() ? PullStatus::kFinish : PullStatus::kError;
    call.Reply(reply);
  }
}

MooncakeConnectorImpl::MooncakeConnectorImpl(const MooncakeConnectorOptions& options)
    : options_(options),
      engine_id_(options.engine_id.empty() ? RandomEngineId() : options.engine_id),
      bootstrap_auth_(options.secret, "bootstrap"),
      proxy_auth_(options.secret, "proxy") {}

MooncakeConnectorImpl::~MooncakeConnectorImpl() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    // Bootstrap queries in flight give up now rather than at their timeout.
    for (httplib::Client* c : bootstrap_calls_) c->stop();
  }
  cv_.SignalAll();
  if (sweeper_.joinable()) sweeper_.join();
  // Stop taking side-channel calls before the pools drain; pending calls are answered.
  // Senders stop waiting for their transfers at once (TransferUnlessStopping), pulls end
  // with Aborted, queued bootstrap queries see stopping_ and skip.
  side_channel_.reset();
  pullers_.reset();      // before the client its tasks start calls on
  side_client_.reset();  // its callbacks use transfer_ and sink_, still here
  senders_.reset();
  bootstrap_.reset();
  transfer_.reset();  // fails what the senders left in flight, joins the transports
}

bool MooncakeConnectorImpl::Stopping() const {
  MutexLock lock(&mu_);
  return stopping_;
}

Status MooncakeConnectorImpl::Validate() {
  if (!options_.is_producer() && !options_.is_consumer()) {
    return InvalidArgumentError("kv_role '" + options_.role +
                                "' must be kv_producer, kv_consumer or kv_both");
  }
  if (options_.num_workers < 1) return InvalidArgumentError("num_workers must be >= 1");
  const std::string& transport = options_.protocol;
  if (transport != "rdma" && transport != "tcp" && transport != "shm" && transport != "auto" &&
      transport != "ucx") {
    return InvalidArgumentError("mooncake_protocol '" + options_.protocol +
                                "' is not supported; use rdma, tcp, shm, auto or ucx (a UCX "
                                "build)");
  }
  for (const std::string& a : options_.allowed_bootstrap_addrs) {
    FERRY_ASSIGN_OR_RETURN(std::string n, NormalizeBootstrapAddr(a));
    allowed_bootstrap_.insert(n);
  }
  if (options_.transfer_timeout.count() <= 0 || options_.connector_timeout.count() <= 0 ||
      options_.abort_timeout.count() <= 0 || options_.kv_load_timeout.count() < 0) {
    return InvalidArgumentError("connector timeouts must be positive");
  }
  return OkStatus();
}

Status MooncakeConnectorImpl::Bind(engine::KvTransferSink* sink, const engine::KvCache& cache) {
  if (sink == nullptr) return InvalidArgumentError("connector: no engine to bind to");
  if (sink_ != nullptr) return FailedPreconditionError("connector: bound already");
  sink_ = sink;
  layout_ = cache.layout();
  kv_base_ = static_cast<char*>(cache.base());
  kv_bytes_ = cache.size_bytes();
  return Start();
}

Status MooncakeConnectorImpl::Start() {
  if (layout_.block_bytes() * static_cast<size_t>(layout_.num_blocks) > kv_bytes_) {
    return InvalidArgumentError("KV region is smaller than its layout says");
  }
  // "rdma" is the engine's shm, ucx (the host's RDMA NICs), tcp; it warns where this build
  // or host has no RDMA.
  const std::string& transport = options_.protocol;
  TransferEngineOptions te;
  te.local_name = options_.host + ":0";
  te.metadata = "P2PHANDSHAKE";
  te.transport = transport;
  te.device_name = options_.device_name;
  te.secret = options_.secret;
  FERRY_ASSIGN_OR_RETURN(transfer_, TransferEngine::Create(te));
  FERRY_RETURN_IF_ERROR(transfer_->RegisterMemory(MemoryRegion{kv_base_, kv_bytes_, "cpu", true}));
  FERRY_LOG_INFO("connector: role {} engine {} transfer engine {} ({} KV blocks of {} bytes)",
                 options_.role, engine_id_, transfer_->local_name(), layout_.num_blocks,
                 layout_.block_bytes());
  if (options_.is_consumer()) {
    pullers_ = std::make_unique<ThreadPool>("kv-puller", std::max(4, options_.num_workers));
    SideChannelClient::Options co;
    co.secret = options_.secret;
    FERRY_ASSIGN_OR_RETURN(side_client_, SideChannelClient::Create(co));
  }
  if (options_.is_producer()) FERRY_RETURN_IF_ERROR(StartProducer());
  if (options_.secret.empty()) {
    std::string open = "transfer engine port " + std::to_string(transfer_->rpc_port());
    if (side_channel_) open += ", side channel " + side_channel_->endpoint();
    if (bootstrap_) open += ", bootstrap server port " + std::to_string(bootstrap_->port());
    FERRY_LOG_WARN(
        "connector: no shared secret (FERRY_KV_SECRET or kv_connector_extra_config.secret): "
        "anyone who reaches these ports can read and write this instance's KV cache: {}{}",
        open,
        options_.is_consumer() && allowed_bootstrap_.empty()
            ? "; and any client may name the bootstrap server this decoder contacts"
            : "");
  }
  return OkStatus();
}

Status MooncakeConnectorImpl::StartProducer() {
  senders_ = std::make_unique<ThreadPool>("kv-sender", options_.num_workers);
  SideChannelServer::Options so;
  so.secret = options_.secret;
  FERRY_ASSIGN_OR_RETURN(
      side_channel_, SideChannelServer::Create(options_.host, 0, so,
                                               [this](auto call) { HandleCall(std::move(call)); }));
  if (options_.bootstrap_server_address.empty()) {
    FERRY_ASSIGN_OR_RETURN(
        bootstrap_, BootstrapServer::Create({.host = options_.bootstrap_bind_host,
                                             .port = options_.bootstrap_port,
                                             .secret = options_.secret,
                                             .query_format = options_.bootstrap_query_format}));
    bootstrap_addr_ = "http://" + HostPort{options_.host, bootstrap_->port()}.ToString();
  } else {
    std::string addr = options_.bootstrap_server_address;
    if (addr.rfind("http://", 0) != 0) addr = "http://" + addr;
    bootstrap_addr_ = addr;
  }
  FERRY_RETURN_IF_ERROR(RegisterWithBootstrap());
  sweeper_ = std::thread([this] { SweepLoop(); });
  return OkStatus();
}

Status MooncakeConnectorImpl::RegisterWithBootstrap() {
  nlohmann::json body = {{"engine_id", engine_id_},
                         {"dp_rank", 0},
                         {"tp_rank", 0},
                         {"pp_rank", 0},
                         {"addr", side_channel_->endpoint()}};
  httplib::Client client(bootstrap_addr_);
  http::SetTimeouts(client, options_.connector_timeout, options_.connector_timeout);
  std::string last_error;
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(250 << attempt));
    auto res = AuthenticatedCall(client, "POST", "/register", body.dump());
    if (!res.ok() && res.status().code() == StatusCode::kPermissionDenied) return res.status();
    if (res.ok() && res->status == 200) {
      FERRY_LOG_INFO("connector: registered side channel {} with bootstrap {}",
                     side_channel_->endpoint(), bootstrap_addr_);
      return OkStatus();
    }
    if (res.ok() && res->status == 400) {
      return InvalidArgumentError("bootstrap server " + bootstrap_addr_ +
                                  " refused the registration: " + res->body);
    }
    last_error = res.ok() ? "HTTP " + std::to_string(res->status) : res.status().message();
  }
  return UnavailableError("cannot register with bootstrap server " + bootstrap_addr_ +
                          " after 3 tries: " + last_error);
}

Result<http::CallReply> MooncakeConnectorImpl::AuthenticatedCall(httplib::Client& client,
                                                                 const std::string& method,
                                                                 const std::string& target,
                                                                 const std::string& body) {
  // A bootstrap table is a few hundred bytes per rank: a reply over 1 MiB is refused.
  auto reply = http::SendCall(client, {method, target, body, 1u << 20}, bootstrap_auth_);
  if (!reply.ok()) {
    return UnavailableError("bootstrap server: " + reply.status().message());
  }
  if (Status ok = http::VerifyCallReply(bootstrap_auth_, *reply); !ok.ok()) {
    metrics_.unauthenticated++;
    return ok.WithContext("bootstrap server reply to " + method + " " + target +
                          " (does the bootstrap server run with the same FERRY_KV_SECRET?)");
  }
  return reply;
}

Status MooncakeConnectorImpl::ExpectProducerRequest(const std::string& request_id,
                                                    const std::string& transfer_id) {
  if (!options_.is_producer()) {
    return FailedPreconditionError("do_remote_decode asked of a kv_consumer instance");
  }
  if (transfer_id.empty()) {
    return InvalidArgumentError(
               "kv_transfer_params lacks transfer_id (and the request has no X-Request-Id to use)")
        .WithField("kv_transfer_params.transfer_id");
  }
  if (transfer_id.size() > kMaxTransferIdBytes) {
    return InvalidArgumentError("transfer_id is longer than " +
                                std::to_string(kMaxTransferIdBytes) + " bytes")
        .WithField("kv_transfer_params.transfer_id");
  }
  MutexLock lock(&mu_);
  if (pending_transfers_.count(transfer_id) > 0 || ready_.count(transfer_id) > 0) {
    return AlreadyExistsError("transfer_id '" + transfer_id +
                              "' is already used by another request on this prefill instance")
        .WithField("kv_transfer_params.transfer_id");
  }
  if (!producer_tags_.emplace(request_id, transfer_id).second) {
    return AlreadyExistsError("request id '" + request_id + "' is already in flight");
  }
  pending_transfers_.insert(transfer_id);
  failed_.erase(transfer_id);  // a retry of a transfer id that failed before
  return OkStatus();
}

Status MooncakeConnectorImpl::ExpectConsumerRequest(const std::string& request_id,
                                                    const RemoteKvSource& source) {
  if (!options_.is_consumer()) {
    return FailedPreconditionError("do_remote_prefill asked of a kv_producer instance");
  }
  if (source.transfer_id.empty() || source.bootstrap_addr.empty()) {
    return InvalidArgumentError(
               "kv_transfer_params needs transfer_id (or an X-Request-Id) and "
               "remote_bootstrap_addr "
               "(or bootstrap_server_host and bootstrap_server_port) for do_remote_prefill")
        .WithField("kv_transfer_params");
  }
  if (source.transfer_id.size() > kMaxTransferIdBytes ||
      source.engine_id.size() > kMaxTransferIdBytes) {
    return InvalidArgumentError("transfer_id and remote_engine_id must be at most " +
                                std::to_string(kMaxTransferIdBytes) + " bytes");
  }
  FERRY_RETURN_IF_ERROR(CheckBootstrapAllowed(source));
  MutexLock lock(&mu_);
  if (!consumer_sources_.emplace(request_id, source).second) {
    return AlreadyExistsError("request id '" + request_id + "' is already in flight");
  }
  return OkStatus();
}

void MooncakeConnectorImpl::ForgetRequest(const std::string& request_id) {
  MutexLock lock(&mu_);
  if (auto it = producer_tags_.find(request_id); it != producer_tags_.end()) {
    pending_transfers_.erase(it->second);
    producer_tags_.erase(it);
  }
  consumer_sources_.erase(request_id);
}

std::string MooncakeConnectorImpl::MetricsText() const {
  std::string out = metrics_.Render();
  auto c = transfer_->counters();
  out += fmt::format(
      "# HELP ferry_transfer_engine_bytes_total Bytes moved by the transfer engine.\n"
      "# TYPE ferry_transfer_engine_bytes_total counter\n"
      "ferry_transfer_engine_bytes_total{{direction=\"written\"}} {}\n"
      "ferry_transfer_engine_bytes_total{{direction=\"read\"}} {}\n"
      "ferry_transfer_engine_bytes_total{{direction=\"received\"}} {}\n"
      "ferry_transfer_engine_bytes_total{{direction=\"served\"}} {}\n",
      c.bytes_written, c.bytes_read, c.bytes_received, c.bytes_served);
  out += fmt::format(
      "# HELP ferry_transfer_engine_inbound_rejected_total Inbound frames and connections "
      "refused (bad range, bad frame, over a connection cap, failed HELLO).\n"
      "# TYPE ferry_transfer_engine_inbound_rejected_total counter\n"
      "ferry_transfer_engine_inbound_rejected_total {}\n"
      "# HELP ferry_transfer_engine_notifications_dropped_total Notifications dropped from a "
      "full queue.\n"
      "# TYPE ferry_transfer_engine_notifications_dropped_total counter\n"
      "ferry_transfer_engine_notifications_dropped_total {}\n"
      "# HELP ferry_transfer_engine_transport_fallbacks_total Slices moved to the next "
      "transport of a peer's list after a transport refused that peer.\n"
      "# TYPE ferry_transfer_engine_transport_fallbacks_total counter\n"
      "ferry_transfer_engine_transport_fallbacks_total {}\n",
      c.inbound_rejected, c.notifications_dropped, c.transport_fallbacks);
  return out;
}

Result<std::unique_ptr<MooncakeConnector>> MooncakeConnector::Create(
    const MooncakeConnectorOptions& options) {
  auto impl = std::make_unique<MooncakeConnectorImpl>(options);
  FERRY_RETURN_IF_ERROR(impl->Validate());
  return std::unique_ptr<MooncakeConnector>(std::move(impl));
}

void MooncakeConnectorImpl::Report(engine::KvTransferDone done) {
  if (done.kind == engine::KvTransferKind::kLoad) {
    MutexLock lock(&mu_);
    --loads_in_flight_;
    cv_.SignalAll();
  }
  if (sink_ != nullptr) sink_->OnKvTransferDone(std::move(done));
}

Status MooncakeConnectorImpl::WaitForLoads(Deadline deadline) {
  MutexLock lock(&mu_);
  while (loads_in_flight_ > 0) {
    if (deadline.Expired()) {
      return DeadlineExceededError("connector: " + std::to_string(loads_in_flight_) +
                                   " KV pulls still in flight");
    }
    cv_.WaitFor(&mu_, std::chrono::milliseconds(20));
  }
  return OkStatus();
}

Status MooncakeConnectorImpl::PrepareRequest(const std::string& request_id,
                                             const std::string& kv_transfer_params) {
  FERRY_ASSIGN_OR_RETURN(KvTransferParams p, KvTransferParams::Parse(kv_transfer_params));
  if (p.do_remote_decode) return ExpectProducerRequest(request_id, p.transfer_id);
  if (p.do_remote_prefill) {
    return ExpectConsumerRequest(request_id, {p.transfer_id, p.remote_bootstrap_addr,
                                              p.remote_engine_id, p.ferry_proxy_auth});
  }
  return OkStatus();
}

engine::KvMatch MooncakeConnectorImpl::GetNumNewMatchedTokens(const engine::KvRequestView& request,
                                                              int32_t num_local_tokens) {
  MutexLock lock(&mu_);
  if (consumer_sources_.count(request.request_id) == 0) return {};
  // The prefill writes the whole prompt's KV; the engine still computes the last token.
  const auto prompt = static_cast<int32_t>(request.prompt_tokens.size());
  return {std::max(0, prompt - num_local_tokens), false, OkStatus()};
}

void MooncakeConnectorImpl::UpdateStateAfterAlloc(const engine::KvRequestView& request,
                                                  std::span<const engine::BlockId> blocks,
                                                  int32_t num_local_tokens, int32_t) {
  MutexLock lock(&mu_);
  pending_loads_[request.request_id] = {{blocks.begin(), blocks.end()}, num_local_tokens};
}

void MooncakeConnectorImpl::StartLoad(const engine::KvRequestView& request) {
  PendingLoad load;
  {
    MutexLock lock(&mu_);
    auto it = pending_loads_.find(request.request_id);
    if (it != pending_loads_.end()) {
      load = std::move(it->second);
      pending_loads_.erase(it);
    }
    ++loads_in_flight_;  // Report({kLoad}) ends it
  }
  OnRemoteKvNeeded(request.request_id, load.blocks, load.num_local_tokens);
}

engine::KvFinished MooncakeConnectorImpl::RequestFinished(
    const engine::KvRequestView& request, std::span<const engine::BlockId> prompt_blocks,
    const std::string& reason, bool loading) {
  engine::KvFinished answer;
  if (loading) {
    // Aborted while its pull runs: writes of that transfer may still land (a paused
    // prefill that resumes), so its blocks stay out of circulation for a while.
    answer.hold_blocks = options_.late_write_guard;
    return answer;
  }
  std::string transfer_id;
  {
    MutexLock lock(&mu_);
    consumer_sources_.erase(request.request_id);  // refused before its load started
    pending_loads_.erase(request.request_id);
    auto tag = producer_tags_.find(request.request_id);
    if (tag == producer_tags_.end()) return answer;
    transfer_id = tag->second;
  }
  // Only a prefill that reached its length cap (max_tokens 1, as the proxy asks) has KV a
  // decoder can use; other finishes tell the decoder why (OnKeptBlocks).
  const bool keep = reason == "length" && !prompt_blocks.empty();
  OnKeptBlocks(request.request_id, reason,
               keep ? std::vector<int32_t>(prompt_blocks.begin(), prompt_blocks.end())
                    : std::vector<int32_t>());
  answer.delay_free = keep;
  // What a decoder needs to pull this prompt's KV (vLLM's producer answer).
  KvTransferParams reply;
  reply.do_remote_prefill = true;
  reply.remote_engine_id = engine_id_;
  reply.remote_bootstrap_addr = bootstrap_addr_;
  reply.transfer_id = transfer_id;
  answer.response_params = reply.ToJson();
  return answer;
}

}  // namespace ferry::connector
