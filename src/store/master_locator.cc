#include "store/master_locator.h"

#include <cstdlib>
#include <utility>

#include "common/host_port.h"
#include "common/log.h"
#include "common/mutex.h"
#include "store/error_code.h"
#include "store/ha_cluster.h"

namespace ferry::store {
namespace {

// The largest message either way: the master's own limit.
constexpr int kMaxMessageBytes = 64 << 20;

bool IsHostPort(const std::string& text) {
  auto hp = ParseHostPort(text);
  return hp.ok() && hp->port != 0;
}

}  // namespace

Result<std::unique_ptr<MasterLocator>> MasterLocator::Create(const std::string& address,
                                                             const std::string& cluster_id) {
  auto locator = std::unique_ptr<MasterLocator>(new MasterLocator());
  if (address.rfind("etcd://", 0) == 0) {
    auto etcd = metadata::EtcdClient::Create(address);
    if (!etcd.ok()) {
      return StoreError(ErrorCode::kInvalidParams,
                        "master address '" + address + "': " + etcd.status().message());
    }
    std::string cid = cluster_id;
    if (cid.empty()) {
      const char* env = std::getenv("MC_STORE_CLUSTER_ID");
      cid = env != nullptr && *env != '\0' ? env : std::string(kDefaultClusterId);
    }
    if (Status bad = CheckClusterId(cid); !bad.ok()) {
      return StoreError(ErrorCode::kInvalidParams, bad.message());
    }
    locator->mode_ = Mode::kEtcd;
    locator->etcd_ = std::shared_ptr<metadata::EtcdClient>(std::move(*etcd));
    locator->leader_key_ = LeaderKey(cid);
    return locator;
  }
  size_t start = 0;
  while (start <= address.size()) {
    size_t comma = address.find(',', start);
    if (comma == std::string::npos) comma = address.size();
    std::string one = address.substr(start, comma - start);
    if (!IsHostPort(one)) {
      return StoreError(ErrorCode::kInvalidParams,
                        "master address '" + address +
                            "' is not host:port, a list host:port,host:port, or etcd://host:port");
    }
    locator->masters_.push_back(std::move(one));
    start = comma + 1;
  }
  locator->mode_ = locator->masters_.size() == 1 ? Mode::kSingle : Mode::kList;
  {
    MutexLock lock(&locator->mu_);  // uncontended: the locator is not shared yet
    locator->current_ = locator->masters_.front();
  }
  return locator;
}

MasterLocator::~MasterLocator() {
  MutexLock lock(&watch_mu_);
  watch_.reset();  // joins the watch thread before the rest goes
}

std::shared_ptr<rpc::Master::Stub> MasterLocator::StubFor(const std::string& address) {
  auto it = stubs_.find(address);
  if (it != stubs_.end()) return it->second;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  // A master that comes back (or a new leader) is dialled again soon.
  // (Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC takes it as the connect timeout, and a
  // loaded host does not finish the HTTP/2 handshake within a fraction of a second.)
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // gRPC shares subchannels (and their backoff) between channels to one address by
  // default: a fresh channel after a failure would inherit the old one's backoff.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  std::shared_ptr<rpc::Master::Stub> stub = rpc::Master::NewStub(
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
  stubs_.emplace(address, stub);
  return stub;
}

void MasterLocator::LeaderChanged(const std::string& leader) {
  if (!leader.empty() && !IsHostPort(leader)) {
    FERRY_LOG_WARN("store client: etcd's {} holds '{}', not host:port; ignored", leader_key_,
                   leader.substr(0, 100));
    return;
  }
  {
    MutexLock lock(&mu_);
    if (leader == current_) return;
    if (!leader.empty() && leader != announced_) {
      FERRY_LOG_INFO("store client: the master leader is now {}", leader);
      announced_ = leader;
    }
    current_ = leader;
    for (auto& [ctx, call] : in_flight_) {
      if (call.address != leader && !call.cancelled) {
        call.cancelled = true;
        ctx->TryCancel();
      }
    }
    changed_.SignalAll();
  }
  MutexLock lock(&callback_mu_);
  if (on_change_) on_change_(leader);
}

void MasterLocator::OnLeaderChange(std::function<void(const std::string&)> callback) {
  MutexLock lock(&callback_mu_);
  on_change_ = std::move(callback);
}

Status MasterLocator::StartWatch(Deadline deadline) {
  MutexLock lock(&watch_mu_);
  if (watch_) return OkStatus();
  FERRY_ASSIGN_OR_RETURN(metadata::EtcdRange now, etcd_->Range(leader_key_, "", 1, deadline));
  LeaderChanged(now.kvs.empty() ? "" : now.kvs.front().value);
  FERRY_ASSIGN_OR_RETURN(
      watch_, etcd_->Watch(
                  leader_key_, "", now.revision + 1,
                  [this](const std::vector<metadata::EtcdWatchEvent>& events, int64_t) {
                    const metadata::EtcdWatchEvent& last = events.back();
                    LeaderChanged(last.type == metadata::EtcdWatchEvent::kPut ? last.kv.value : "");
                  },
                  [this](const Status& broken) {
                    // An idle watch reconnects about once a minute: that is no news.
                    FERRY_LOG_DEBUG("store client: watch on {} broke ({}); resuming", leader_key_,
                                    broken.ToString());
                  }));
  return OkStatus();
}

Result<MasterLocator::Target> MasterLocator::Pick(Deadline deadline) {
  Status etcd_error;
  if (mode_ == Mode::kEtcd) {
    etcd_error = StartWatch(Deadline::Min(deadline, Deadline::In(std::chrono::seconds(1))));
  }
  for (;;) {
    {
      MutexLock lock(&mu_);
      if (current_.empty() && mode_ == Mode::kList) current_ = masters_[next_++ % masters_.size()];
      if (current_.empty()) {
        // Wait a little for the watch, then read the key in case the watch is not there.
        changed_.WaitFor(&mu_,
                         std::min<std::chrono::nanoseconds>(deadline.Remaining(),
                                                            std::chrono::milliseconds(200)),
                         [&]() FERRY_REQUIRES(mu_) { return !current_.empty(); });
      }
      if (!current_.empty()) return Target{current_, StubFor(current_)};
    }
    if (deadline.Expired()) {
      return UnavailableError("no store master leads cluster key " + leader_key_ + " in " +
                              etcd_->Describe() +
                              (etcd_error.ok() ? "" : " (" + etcd_error.ToString() + ")"));
    }
    auto now = etcd_->Range(leader_key_, "", 1,
                            Deadline::Min(deadline, Deadline::In(std::chrono::seconds(1))));
    if (!now.ok()) {
      etcd_error = now.status();
    } else if (!now->kvs.empty()) {
      LeaderChanged(now->kvs.front().value);
    }
  }
}

void MasterLocator::Failed(const Target& target, const std::string& hint) {
  MutexLock lock(&mu_);
  if (mode_ == Mode::kSingle) return;
  stubs_.erase(target.address);  // dialled afresh when chosen again
  // kEtcd: etcd names the leader and the watch says when that changes (a standby's word is
  // not etcd's); until then the caller retries the same master, which may be a leader
  // still loading its state, or a dead one whose lease has not run out yet.
  if (current_ != target.address || mode_ == Mode::kEtcd) return;
  current_.clear();
  // A standby's hint is taken only when it names one of the masters we were given.
  for (const std::string& m : masters_) {
    if (!hint.empty() && m == hint) current_ = hint;
  }
}

void MasterLocator::Track(grpc::ClientContext* ctx, const std::string& address) {
  MutexLock lock(&mu_);
  in_flight_[ctx] = InFlight{address, false};
}

bool MasterLocator::Untrack(grpc::ClientContext* ctx) {
  MutexLock lock(&mu_);
  auto it = in_flight_.find(ctx);
  if (it == in_flight_.end()) return false;
  const bool cancelled = it->second.cancelled;
  in_flight_.erase(it);
  return cancelled;
}

std::string MasterLocator::current() const {
  MutexLock lock(&mu_);
  return current_;
}

}  // namespace ferry::store
