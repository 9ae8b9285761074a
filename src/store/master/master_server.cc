#include "store/master/master_server.h"

#include <grpcpp/grpcpp.h>
#include <re2/re2.h>

#include <array>
#include <atomic>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/host_port.h"
#include "common/log.h"
#include "common/message_auth.h"
#include "common/mutex.h"
#include "http/http_server.h"
#include "metadata/etcd_client.h"
#include "metadata/http_metadata_server.h"
#include "store/error_code.h"
#include "store/ha_cluster.h"
#include "store/master/etcd_log_storage.h"
#include "store/master/leader_election.h"
#include "store/proto/master.grpc.pb.h"
#include "store/rpc_auth.h"
#include "store/rpc_result.h"

namespace ferry::store {

namespace {

namespace pb = ::ferry::store::rpc;
using Clock = std::chrono::steady_clock;

// Latency buckets of the per-RPC histogram, in microseconds.
constexpr std::array<uint64_t, 10> kBucketsUs = {50,   100,   250,   500,    1000,
                                                 2500, 10000, 50000, 250000, 1000000};

// The RPCs, in the order of the metrics' labels.
enum Rpc : size_t {
  kMount,
  kRemount,
  kUnmount,
  kPing,
  kPutStart,
  kPutEnd,
  kPutRevoke,
  kGetReplicaList,
  kExist,
  kRemove,
  kRemoveByRegex,
  kRemoveAll,
  kListKeys,
  kGetAllSegments,
  kHealth,
  kRegisterDiskTier,
  kPollDiskTasks,
  kReportDiskTasks,
  kRpcCount
};
constexpr std::array<std::string_view, kRpcCount> kRpcNames = {
    "MountSegment",  "RemountSegments", "UnmountSegment", "Ping",
    "BatchPutStart", "BatchPutEnd",     "BatchPutRevoke", "BatchGetReplicaList",
    "BatchExist",    "BatchRemove",     "RemoveByRegex",  "RemoveAll",
    "ListKeys",      "GetAllSegments",  "Health",         "RegisterDiskTier",
    "PollDiskTasks", "ReportDiskTasks"};

// The longest a PollDiskTasks waits for work, and the most tasks one reply carries.
constexpr uint32_t kMaxDiskPollWaitMs = 1000;
constexpr uint32_t kMaxDiskTasks = 1024;

struct RpcStats {
  std::atomic<uint64_t> calls{0};
  std::atomic<uint64_t> refused{0};  // auth or limits
  std::atomic<uint64_t> items{0};
  std::atomic<uint64_t> micros{0};
  std::array<std::atomic<uint64_t>, kBucketsUs.size()> buckets{};
};

// After a change that must be durable: when the log could not be written, every result
// that said OK says why instead (the change is in memory, but the caller must not rely on
// it).
template <typename Results>
void FailUnlessDurable(const Status& durable, Results* results) {
  if (durable.ok()) return;
  for (pb::Result& r : *results) {
    if (r.code() == 0) SetResult(&r, durable);
  }
}
void FailUnlessDurable(const Status& durable, pb::Result* result) {
  if (!durable.ok() && result->code() == 0) SetResult(result, durable);
}

SegmentInfo FromProto(const pb::Segment& s, const std::string& client_id) {
  return {s.id(), s.name(), s.hostname(), s.base(), s.size(), client_id};
}

void ToProto(const ReplicaDescriptor& d, pb::Replica* out) {
  out->set_segment_id(d.segment_id);
  out->set_hostname(d.hostname);
  out->set_tier(d.tier == ReplicaTier::kLocalDisk ? pb::LOCAL_DISK
                : d.tier == ReplicaTier::kDisk    ? pb::DISK
                                                  : pb::MEMORY);
  out->set_status(d.status == ReplicaStatus::kComplete ? pb::COMPLETE : pb::PROCESSING);
  for (const BufferDescriptor& b : d.buffers) {
    pb::Buffer* pbuf = out->add_buffers();
    pbuf->set_segment_name(b.segment_name);
    pbuf->set_address(b.address);
    pbuf->set_length(b.length);
  }
  out->set_disk_owner(d.disk_owner);
  out->set_disk_size(d.disk_size);
  out->set_disk_rpc_address(d.disk_rpc_address);
}

ReplicateConfig FromProto(const pb::ReplicateConfig& c) {
  ReplicateConfig r;
  r.replica_num = c.replica_num() == 0 ? 1 : c.replica_num();
  r.with_soft_pin = c.with_soft_pin();
  r.soft_pin_ttl = std::chrono::milliseconds(c.soft_pin_ttl_ms());
  r.with_hard_pin = c.with_hard_pin();
  r.preferred_segments.assign(c.preferred_segments().begin(), c.preferred_segments().end());
  r.prefer_alloc_in_same_node = c.prefer_alloc_in_same_node();
  r.group_ids.assign(c.group_ids().begin(), c.group_ids().end());
  return r;
}

nlohmann::json DescribeJson(const ReplicaList& list) {
  nlohmann::json replicas = nlohmann::json::array();
  for (const ReplicaDescriptor& d : list.replicas) {
    nlohmann::json buffers = nlohmann::json::array();
    for (const BufferDescriptor& b : d.buffers) {
      buffers.push_back(
          {{"segment_name", b.segment_name}, {"address", b.address}, {"length", b.length}});
    }
    nlohmann::json r = {
        {"segment_id", d.segment_id},
        {"hostname", d.hostname},
        {"tier", d.is_local_disk_replica() ? "local_disk" : "memory"},
        {"status", d.status == ReplicaStatus::kComplete ? "COMPLETE" : "PROCESSING"},
        {"buffers", std::move(buffers)}};
    if (d.is_local_disk_replica()) {
      r["disk_owner"] = d.disk_owner;
      r["disk_rpc_address"] = d.disk_rpc_address;
    }
    replicas.push_back(std::move(r));
  }
  return {{"size", list.size}, {"replicas", std::move(replicas)}};
}

// What a standby answers, on either port: why, and where the leader is when known.
std::string NotLeaderMessage(const std::string& why, const std::string& leader) {
  return "not the leader: " + why + (leader.empty() ? "" : "; the leader is " + leader);
}

}  // namespace

// The gRPC service: checks auth and limits, then calls the MasterService.
class MasterRpcService final : public pb::Master::Service {
 public:
  // `acquire` returns the service while this master leads, or null and the reason (and the
  // leader's address, "" if unknown) while it does not.
  using Acquire =
      std::function<std::shared_ptr<MasterService>(std::string* why, std::string* leader)>;
  MasterRpcService(Acquire acquire, std::function<bool()> still_leading,
                   const MasterServer::Options& options)
      : acquire_(std::move(acquire)),
        still_leading_(std::move(still_leading)),
        options_(options),
        auth_(options.secret, std::string(kAuthChannel)) {}

  RpcStats& stats(Rpc rpc) { return stats_[rpc]; }
  uint64_t auth_refused() const { return auth_refused_.load(); }

  grpc::Status MountSegment(grpc::ServerContext* ctx, const pb::MountSegmentRequest* req,
                            pb::MountSegmentReply* rep) override {
    return Run(kMount, ctx, *req, 1, [&](MasterService& svc) {
      SetResult(rep->mutable_result(),
                svc.MountSegment(FromProto(req->segment(), req->client_id())));
      FailUnlessDurable(svc.Sync(), rep->mutable_result());
    });
  }
  grpc::Status RemountSegments(grpc::ServerContext* ctx, const pb::RemountSegmentsRequest* req,
                               pb::RemountSegmentsReply* rep) override {
    return Run(kRemount, ctx, *req, req->segments_size(), [&](MasterService& svc) {
      for (const pb::Segment& s : req->segments()) {
        SetResult(rep->add_results(), svc.MountSegment(FromProto(s, req->client_id())));
      }
      (void)svc.Ping(req->client_id());
      FailUnlessDurable(svc.Sync(), rep->mutable_results());
    });
  }
  grpc::Status UnmountSegment(grpc::ServerContext* ctx, const pb::UnmountSegmentRequest* req,
                              pb::UnmountSegmentReply* rep) override {
    return Run(kUnmount, ctx, *req, 1, [&](MasterService& svc) {
      SetResult(rep->mutable_result(), svc.UnmountSegment(req->segment_id(), req->client_id()));
      FailUnlessDurable(svc.Sync(), rep->mutable_result());
    });
  }
  grpc::Status Ping(grpc::ServerContext* ctx, const pb::PingRequest* req,
                    pb::PingReply* rep) override {
    return Run(kPing, ctx, *req, 1, [&](MasterService& svc) {
      if (req->client_id().empty()) {
        SetResult(rep->mutable_result(), StoreError(ErrorCode::kInvalidParams, "no client_id"));
        return;
      }
      const bool remount = svc.Ping(req->client_id());
      SetResult(rep->mutable_result(), OkStatus());
      rep->set_client_status(remount ? pb::NEED_REMOUNT : pb::CLIENT_OK);
      rep->set_view_version(svc.view_version());
    });
  }
  grpc::Status BatchPutStart(grpc::ServerContext* ctx, const pb::BatchPutStartRequest* req,
                             pb::BatchPutStartReply* rep) override {
    bool not_ready = false;
    grpc::Status status = Run(kPutStart, ctx, *req, req->items_size(), [&](MasterService& svc) {
      const ReplicateConfig config = FromProto(req->config());
      const std::string host = PeerHost(ctx);
      for (const pb::PutStartItem& item : req->items()) {
        pb::PutStartResult* out = rep->add_results();
        Status bad = CheckKey(item.key());
        if (!bad.ok()) {
          SetResult(out->mutable_result(), bad);
          continue;
        }
        auto r = svc.PutStart(item.key(), item.size(), config, req->client_id(), host,
                              req->upsert() ? PutMode::kUpsert : PutMode::kInsert);
        SetResult(out->mutable_result(), r.status());
        if (r.ok()) {
          for (const ReplicaDescriptor& d : *r) ToProto(d, out->add_replicas());
        }
      }
      // The space handed out (and what an upsert removed) is durable before the writer
      // hears of it: a master that takes over never hands that space out again while the
      // writer may still write there.
      Status durable = svc.Sync();
      for (pb::PutStartResult& r : *rep->mutable_results()) {
        FailUnlessDurable(durable, r.mutable_result());
      }
      // SSD tier: no room now, but offloads in flight will free some. The client sends the
      // batch again (a retried PutStart gets the space it was given).
      if (svc.offloads_in_flight() > 0) {
        for (pb::PutStartResult& r : *rep->mutable_results()) {
          if (r.result().code() != ToInt(ErrorCode::kNoAvailableHandle)) continue;
          SetResult(r.mutable_result(),
                    StoreError(ErrorCode::kUnavailableInCurrentStatus,
                               "no room until the offloads in flight finish; retry"));
        }
      }
      // HA, right after a takeover: members have not re-mounted yet (they do within
      // milliseconds of seeing the new leader). A batch refused only for want of space
      // then is refused as a whole with UNAVAILABLE, which clients retry.
      if (!options_.ha.etcd_endpoints.empty() && svc.stats().space.awaiting_remount > 0) {
        not_ready = rep->results_size() > 0;
        for (const pb::PutStartResult& r : rep->results()) {
          not_ready &= r.result().code() == ToInt(ErrorCode::kNoAvailableHandle);
        }
      }
    });
    if (status.ok() && not_ready) {
      rep->Clear();
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "no room yet: segments await their members' re-mount after a "
                          "takeover; retry");
    }
    return status;
  }
  grpc::Status BatchPutEnd(grpc::ServerContext* ctx, const pb::BatchKeysRequest* req,
                           pb::BatchResultsReply* rep) override {
    return Run(kPutEnd, ctx, *req, req->keys_size(), [&](MasterService& svc) {
      for (const std::string& key : req->keys()) {
        SetResult(rep->add_results(), svc.PutEnd(key, req->client_id()));
      }
      FailUnlessDurable(svc.Sync(), rep->mutable_results());
    });
  }
  grpc::Status BatchPutRevoke(grpc::ServerContext* ctx, const pb::BatchKeysRequest* req,
                              pb::BatchResultsReply* rep) override {
    return Run(kPutRevoke, ctx, *req, req->keys_size(), [&](MasterService& svc) {
      for (const std::string& key : req->keys()) {
        SetResult(rep->add_results(), svc.PutRevoke(key, req->client_id()));
      }
    });
  }
  grpc::Status BatchGetReplicaList(grpc::ServerContext* ctx, const pb::BatchKeysRequest* req,
                                   pb::BatchGetReplicaListReply* rep) override {
    return Run(kGetReplicaList, ctx, *req, req->keys_size(), [&](MasterService& svc) {
      const uint64_t ttl = options_.service.default_kv_lease_ttl.count();
      for (const std::string& key : req->keys()) {
        pb::GetReplicaListResult* out = rep->add_results();
        Status bad = CheckKey(key);
        if (!bad.ok()) {
          SetResult(out->mutable_result(), bad);
          continue;
        }
        auto r = svc.GetReplicaList(key);
        SetResult(out->mutable_result(), r.status());
        if (!r.ok()) continue;
        out->set_size(r->size);
        out->set_lease_ttl_ms(ttl);
        for (const ReplicaDescriptor& d : r->replicas) ToProto(d, out->add_replicas());
      }
    });
  }
  grpc::Status BatchExist(grpc::ServerContext* ctx, const pb::BatchKeysRequest* req,
                          pb::BatchExistReply* rep) override {
    return Run(kExist, ctx, *req, req->keys_size(), [&](MasterService& svc) {
      rep->set_lease_ttl_ms(options_.service.default_kv_lease_ttl.count());
      rep->mutable_codes()->Reserve(req->keys_size());
      for (const std::string& key : req->keys()) {
        rep->add_codes(ToInt(ErrorCodeOf(svc.Exist(key))));
      }
    });
  }
  grpc::Status BatchRemove(grpc::ServerContext* ctx, const pb::BatchRemoveRequest* req,
                           pb::BatchResultsReply* rep) override {
    return Run(kRemove, ctx, *req, req->keys_size(), [&](MasterService& svc) {
      for (const std::string& key : req->keys()) {
        SetResult(rep->add_results(), svc.Remove(key, req->force()));
      }
      FailUnlessDurable(svc.Sync(), rep->mutable_results());
    });
  }
  grpc::Status RemoveByRegex(grpc::ServerContext* ctx, const pb::RemoveByRegexRequest* req,
                             pb::RemoveCountReply* rep) override {
    return Run(kRemoveByRegex, ctx, *req, 1, [&](MasterService& svc) {
      auto n = svc.RemoveByRegex(req->regex(), req->force());
      SetResult(rep->mutable_result(), n.status());
      if (n.ok()) rep->set_removed(*n);
      FailUnlessDurable(svc.Sync(), rep->mutable_result());
    });
  }
  grpc::Status RemoveAll(grpc::ServerContext* ctx, const pb::RemoveAllRequest* req,
                         pb::RemoveCountReply* rep) override {
    return Run(kRemoveAll, ctx, *req, 1, [&](MasterService& svc) {
      SetResult(rep->mutable_result(), OkStatus());
      rep->set_removed(svc.RemoveAll(req->force()));
      FailUnlessDurable(svc.Sync(), rep->mutable_result());
    });
  }
  grpc::Status ListKeys(grpc::ServerContext* ctx, const pb::ListKeysRequest* req,
                        pb::ListKeysReply* rep) override {
    return Run(kListKeys, ctx, *req, 1, [&](MasterService& svc) {
      constexpr size_t kCap = 10000;
      const size_t limit = req->limit() == 0 ? kCap : std::min<size_t>(req->limit(), kCap);
      std::unique_ptr<RE2> re;
      if (!req->regex().empty()) {
        RE2::Options o;
        o.set_log_errors(false);
        o.set_max_mem(8 << 20);
        re = std::make_unique<RE2>(req->regex(), o);
        if (!re->ok()) {
          SetResult(rep->mutable_result(),
                    StoreError(ErrorCode::kInvalidParams, "bad regex: " + re->error()));
          return;
        }
      }
      // Listing more than the cap when filtering: take up to 4x the cap and filter.
      std::vector<std::string> keys = svc.ListKeys(re ? 4 * kCap : limit + 1);
      for (const std::string& key : keys) {
        if (re && !RE2::FullMatch(key, *re)) continue;
        if (static_cast<size_t>(rep->keys_size()) == limit) {
          rep->set_truncated(true);
          break;
        }
        auto d = svc.Describe(key);
        if (!d.ok()) continue;
        pb::KeyInfo* k = rep->add_keys();
        k->set_key(key);
        k->set_size(d->size);
        bool complete = false;
        for (const auto& r : d->replicas) complete |= r.status == ReplicaStatus::kComplete;
        k->set_status(complete ? pb::COMPLETE : pb::PROCESSING);
        k->set_replicas(d->replicas.size());
      }
      SetResult(rep->mutable_result(), OkStatus());
    });
  }
  grpc::Status GetAllSegments(grpc::ServerContext* ctx, const pb::GetAllSegmentsRequest* req,
                              pb::GetAllSegmentsReply* rep) override {
    return Run(kGetAllSegments, ctx, *req, 1, [&](MasterService& svc) {
      for (const SegmentInfo& s : svc.Segments()) {
        pb::SegmentUsage* u = rep->add_segments();
        pb::Segment* seg = u->mutable_segment();
        seg->set_id(s.id);
        seg->set_name(s.name);
        seg->set_hostname(s.hostname);
        seg->set_base(s.base);
        seg->set_size(s.size);
        u->set_client_id(s.client_id);
      }
      SetResult(rep->mutable_result(), OkStatus());
    });
  }
  grpc::Status RegisterDiskTier(grpc::ServerContext* ctx, const pb::RegisterDiskTierRequest* req,
                                pb::RegisterDiskTierReply* rep) override {
    return Run(kRegisterDiskTier, ctx, *req, req->objects_size(), [&](MasterService& svc) {
      DiskTierInfo tier{req->client_id(), req->segment_name(), req->hostname(), req->rpc_address(),
                        req->tier_id()};
      std::vector<DiskObjectInfo> objects;
      objects.reserve(req->objects_size());
      for (const pb::DiskObjectInfo& o : req->objects()) objects.push_back({o.key(), o.size()});
      auto r = svc.RegisterDiskTier(tier, objects);
      SetResult(rep->mutable_result(), r.status());
      if (!r.ok()) return;
      for (size_t i = 0; i < r->size(); ++i) {
        Status bad = CheckKey(objects[i].key);
        rep->add_codes(ToInt(ErrorCodeOf(bad.ok() ? (*r)[i] : bad)));
      }
    });
  }
  grpc::Status PollDiskTasks(grpc::ServerContext* ctx, const pb::PollDiskTasksRequest* req,
                             pb::DiskTasksReply* rep) override {
    return Run(kPollDiskTasks, ctx, *req, 1, [&](MasterService& svc) {
      const uint32_t max =
          req->max_tasks() == 0 ? kMaxDiskTasks : std::min(req->max_tasks(), kMaxDiskTasks);
      auto polled = svc.PollDiskTasks(
          req->client_id(), std::chrono::milliseconds(std::min(req->wait_ms(), kMaxDiskPollWaitMs)),
          max);
      SetResult(rep->mutable_result(), polled.status());
      if (!polled.ok()) return;
      DiskTasks& tasks = *polled;
      for (const OffloadTask& t : tasks.offloads) {
        pb::OffloadTask* o = rep->add_offloads();
        o->set_key(t.key);
        o->set_ticket(t.ticket);
        o->set_address(t.address);
        o->set_size(t.size);
      }
      for (std::string& k : tasks.deletes) rep->add_deletes(std::move(k));
      for (const PromoteTask& t : tasks.promotions) {
        pb::PromoteTask* o = rep->add_promotions();
        o->set_key(t.key);
        o->set_ticket(t.ticket);
        o->set_size(t.size);
        o->mutable_dest()->set_segment_name(t.dest.segment_name);
        o->mutable_dest()->set_address(t.dest.address);
        o->mutable_dest()->set_length(t.dest.length);
      }
    });
  }
  grpc::Status ReportDiskTasks(grpc::ServerContext* ctx, const pb::ReportDiskTasksRequest* req,
                               pb::ReportDiskTasksReply* rep) override {
    const int items = req->offloaded_size() + req->promoted_size() + req->evicted_size();
    return Run(kReportDiskTasks, ctx, *req, items, [&](MasterService& svc) {
      auto outcomes = [](const auto& in) {
        std::vector<DiskTaskOutcome> out;
        out.reserve(in.size());
        for (const pb::KeyResult& r : in) {
          out.push_back({r.key(), r.ticket(), ToStatus(r.result())});
        }
        return out;
      };
      std::vector<std::string> evicted(req->evicted().begin(), req->evicted().end());
      std::vector<std::string> gone = svc.ReportDiskTasks(
          req->client_id(), outcomes(req->offloaded()), outcomes(req->promoted()), evicted);
      // A promoted copy is a memory replica from now on: durable before the member hears.
      Status durable = svc.Sync();
      SetResult(rep->mutable_result(), durable);
      for (std::string& k : gone) rep->add_gone(std::move(k));
    });
  }
  grpc::Status Health(grpc::ServerContext* ctx, const pb::HealthRequest* req,
                      pb::HealthReply* rep) override {
    return Run(kHealth, ctx, *req, 1, [&](MasterService&) {
      SetResult(rep->mutable_result(), OkStatus());
      rep->set_role("leader");
      rep->set_version(FERRY_STORE_VERSION);
    });
  }

 private:
  template <typename Body>
  grpc::Status Run(Rpc rpc, grpc::ServerContext* ctx, const google::protobuf::Message& req,
                   int items, Body body) {
    RpcStats& st = stats_[rpc];
    const Clock::time_point start = Clock::now();
    st.calls.fetch_add(1, std::memory_order_relaxed);
    if (auth_.enabled()) {
      grpc::Status s = CheckAuth(rpc, ctx, req);
      if (!s.ok()) {
        st.refused.fetch_add(1, std::memory_order_relaxed);
        return s;
      }
    }
    if (items < 0 || static_cast<size_t>(items) > options_.max_batch) {
      st.refused.fetch_add(1, std::memory_order_relaxed);
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "batch of " + std::to_string(items) + " items; the limit is " +
                              std::to_string(options_.max_batch));
    }
    std::string why;
    std::string leader;
    std::shared_ptr<MasterService> service = acquire_(&why, &leader);
    if (!service) {
      st.refused.fetch_add(1, std::memory_order_relaxed);
      return NotLeader(ctx, why, leader);
    }
    st.items.fetch_add(items, std::memory_order_relaxed);
    body(*service);
    // The term may have ended while the body ran (a pause past the lease): what it handed
    // out (a PutStart's space) may be another leader's by now, so none of it is sent.
    if (!still_leading_()) {
      st.refused.fetch_add(1, std::memory_order_relaxed);
      return NotLeader(ctx, "this master lost its leadership while answering", "");
    }
    const uint64_t us =
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
    st.micros.fetch_add(us, std::memory_order_relaxed);
    for (size_t i = 0; i < kBucketsUs.size(); ++i) {
      if (us <= kBucketsUs[i]) st.buckets[i].fetch_add(1, std::memory_order_relaxed);
    }
    return grpc::Status::OK;
  }

  // UNAVAILABLE, so that clients try the leader; its address (when known) in the trailing
  // metadata.
  static grpc::Status NotLeader(grpc::ServerContext* ctx, const std::string& why,
                                const std::string& leader) {
    if (!leader.empty()) ctx->AddTrailingMetadata(std::string(kLeaderMetadataKey), leader);
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, NotLeaderMessage(why, leader));
  }

  grpc::Status CheckAuth(Rpc rpc, grpc::ServerContext* ctx, const google::protobuf::Message& req) {
    auto it = ctx->client_metadata().find(std::string(kAuthMetadataKey));
    if (it == ctx->client_metadata().end()) {
      auth_refused_.fetch_add(1);
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "no x-ferry-auth tag: this master needs the deployment secret");
    }
    auto tag = AuthTag::Parse(std::string_view(it->second.data(), it->second.size()));
    if (!tag.ok()) {
      auth_refused_.fetch_add(1);
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, tag.status().message());
    }
    const std::string method = "/ferry.store.rpc.Master/" + std::string(kRpcNames[rpc]);
    Status v = auth_.Verify(AuthMessage(method, req), *tag);
    if (!v.ok()) {
      auth_refused_.fetch_add(1);
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, v.message());
    }
    return grpc::Status::OK;
  }

  Status CheckKey(const std::string& key) const {
    if (key.empty()) return StoreError(ErrorCode::kInvalidParams, "empty key");
    if (key.size() > options_.max_key_bytes) {
      return StoreError(ErrorCode::kInvalidParams, "key of " + std::to_string(key.size()) +
                                                       " bytes; the limit is " +
                                                       std::to_string(options_.max_key_bytes));
    }
    return OkStatus();
  }

  // The writer's host as the master sees it ("ipv4:10.0.0.2:5555" -> "10.0.0.2").
  static std::string PeerHost(grpc::ServerContext* ctx) {
    std::string peer = ctx->peer();
    const size_t colon = peer.find(':');
    if (colon != std::string::npos) peer = peer.substr(colon + 1);
    const size_t last = peer.rfind(':');
    if (last != std::string::npos) peer = peer.substr(0, last);
    return peer;
  }

  const Acquire acquire_;
  const std::function<bool()> still_leading_;
  const MasterServer::Options& options_;
  MessageAuth auth_;
  std::array<RpcStats, kRpcCount> stats_;
  std::atomic<uint64_t> auth_refused_{0};
};

struct MasterServer::Impl {
  Options options;
  // HA (options.ha.etcd_endpoints): the election, and the etcd client it shares with the
  // log of each term.
  std::shared_ptr<metadata::EtcdClient> etcd;
  std::unique_ptr<LeaderElection> election;
  std::string leader_key;
  std::string advertised;  // the rpc address this master puts in the leader key
  std::thread campaigner;
  std::atomic<uint64_t> terms{0};  // terms this master has led
  // The service while this master serves (always without HA; while leading with it).
  mutable Mutex service_mu;
  std::shared_ptr<MasterService> service FERRY_GUARDED_BY(service_mu);
  std::unique_ptr<MasterRpcService> rpc;
  std::unique_ptr<grpc::Server> grpc_server;
  int rpc_port = 0;
  std::unique_ptr<http::HttpServer> http;
  std::unique_ptr<metadata::HttpMetadataServer> metadata;
  std::thread ticker;
  Mutex mu;
  CondVar cv;
  bool stopping FERRY_GUARDED_BY(mu) = false;

  std::string Metrics() const;
  void InstallRoutes();
  std::shared_ptr<MasterService> Current() const {
    MutexLock lock(&service_mu);
    return service;
  }
  // The service if this master may answer now; else null, why, and the leader if known.
  std::shared_ptr<MasterService> Acquire(std::string* why, std::string* leader) const;
  // For the HTTP query pages: the service, or null with a 503 saying where the leader is.
  std::shared_ptr<MasterService> ServingOrRefuse(http::Response& res) const;
  bool Leading() const { return !election || election->IsLeader(); }
  // The leader's rpc address as the election last saw it ("" when unknown).
  std::string LeaderAddress() const;
  // HA: campaign, serve the term from etcd's log, step down when the lease goes; repeat.
  void CampaignLoop();
  bool Stopping() {
    MutexLock lock(&mu);
    return stopping;
  }
};

std::shared_ptr<MasterService> MasterServer::Impl::Acquire(std::string* why,
                                                           std::string* leader) const {
  std::shared_ptr<MasterService> svc = Current();
  if (svc && Leading()) return svc;
  const std::string reason = election ? election->lost_reason() : "";
  *why = "this master is a standby of cluster '" + options.ha.cluster_id + "'" +
         (reason.empty() ? "" : " (" + reason + ")");
  *leader = LeaderAddress();
  if (*leader == advertised) leader->clear();  // etcd has not seen us go yet
  return nullptr;
}

std::shared_ptr<MasterService> MasterServer::Impl::ServingOrRefuse(http::Response& res) const {
  std::string why;
  std::string leader;
  std::shared_ptr<MasterService> svc = Acquire(&why, &leader);
  if (!svc) res.Set(503, NotLeaderMessage(why, leader) + "\n", "text/plain");
  return svc;
}

std::string MasterServer::Impl::LeaderAddress() const {
  return election ? election->holder() : advertised;
}

void MasterServer::Impl::CampaignLoop() {
  while (!Stopping()) {
    Result<int64_t> term = election->Campaign();
    if (!term.ok()) return;  // stopping
    EtcdLogStorage::Options lo;
    lo.prefix = ClusterPrefix(options.ha.cluster_id);
    lo.fence_key = leader_key;
    lo.fence_revision = *term;
    const auto start = Clock::now();
    auto svc = MasterService::Create(options.service, std::make_unique<EtcdLogStorage>(etcd, lo));
    if (!svc.ok()) {
      FERRY_LOG_ERROR("master: cannot take over term {}: {}; resigning", *term,
                      svc.status().ToString());
      election->Resign();
      MutexLock lock(&mu);
      cv.WaitFor(&mu, std::chrono::seconds(1), [&]() FERRY_REQUIRES(mu) { return stopping; });
      continue;
    }
    FERRY_LOG_INFO(
        "master: serving term {} ({} ms to load the log from etcd)", *term,
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
    {
      MutexLock lock(&service_mu);
      service = std::shared_ptr<MasterService>(std::move(*svc));
    }
    terms.fetch_add(1, std::memory_order_relaxed);
    election->WaitLost();
    std::shared_ptr<MasterService> old;
    {
      MutexLock lock(&service_mu);
      old.swap(service);
    }
    if (old) old->ShutdownDiskTier();  // its members poll the next leader
    // `old` goes when the last RPC holding it returns; its log is fenced already.
  }
}

std::string MasterServer::Impl::Metrics() const {
  std::ostringstream o;
  const std::shared_ptr<MasterService> service = Current();
  const bool leading = service && Leading();
  o << "# TYPE ferry_store_master_leader gauge\nferry_store_master_leader " << (leading ? 1 : 0)
    << "\n"
    << "# TYPE ferry_store_master_terms_total counter\nferry_store_master_terms_total "
    << terms.load() << "\n"
    << "# TYPE ferry_store_auth_refused_total counter\nferry_store_auth_refused_total "
    << rpc->auth_refused() << "\n";
  if (service) {
    const MasterService::Stats s = service->stats();
    o << "# TYPE ferry_store_keys gauge\nferry_store_keys " << s.keys << "\n"
      << "# TYPE ferry_store_clients gauge\nferry_store_clients " << s.clients << "\n"
      << "# TYPE ferry_store_segments gauge\nferry_store_segments " << s.space.segments << "\n"
      << "# TYPE ferry_store_capacity_bytes gauge\nferry_store_capacity_bytes " << s.space.capacity
      << "\n"
      << "# TYPE ferry_store_allocated_bytes gauge\nferry_store_allocated_bytes "
      << s.space.allocated << "\n"
      << "# TYPE ferry_store_held_bytes gauge\nferry_store_held_bytes " << s.space.held << "\n"
      << "# TYPE ferry_store_evictions_total counter\nferry_store_evictions_total " << s.evictions
      << "\n"
      << "# TYPE ferry_store_put_start_released_total counter\n"
      << "ferry_store_put_start_released_total " << s.put_start_released << "\n"
      << "# TYPE ferry_store_clients_dropped_total counter\nferry_store_clients_dropped_total "
      << s.clients_dropped << "\n";
    if (options.service.enable_offload) {
      const MasterService::TierStats t = service->tier_stats();
      o << "# TYPE ferry_store_tier_objects gauge\n"
        << "ferry_store_tier_objects{tier=\"memory\"} " << t.memory_objects << "\n"
        << "ferry_store_tier_objects{tier=\"local_disk\"} " << t.disk_objects << "\n"
        << "# TYPE ferry_store_tier_bytes gauge\n"
        << "ferry_store_tier_bytes{tier=\"memory\"} " << t.memory_bytes << "\n"
        << "ferry_store_tier_bytes{tier=\"local_disk\"} " << t.disk_bytes << "\n"
        << "# TYPE ferry_store_disk_only_objects gauge\nferry_store_disk_only_objects "
        << t.disk_only_objects << "\n"
        << "# TYPE ferry_store_disk_members gauge\nferry_store_disk_members " << t.disk_members
        << "\n"
        << "# TYPE ferry_store_offloads_total counter\nferry_store_offloads_total " << s.offloads
        << "\n"
        << "# TYPE ferry_store_offload_failures_total counter\n"
        << "ferry_store_offload_failures_total " << s.offload_failures << "\n"
        << "# TYPE ferry_store_offloads_in_flight gauge\nferry_store_offloads_in_flight "
        << service->offloads_in_flight() << "\n"
        << "# TYPE ferry_store_disk_readbacks_total counter\nferry_store_disk_readbacks_total "
        << s.disk_readbacks << "\n"
        << "# TYPE ferry_store_promotions_total counter\nferry_store_promotions_total "
        << s.promotions << "\n"
        << "# TYPE ferry_store_disk_evictions_total counter\nferry_store_disk_evictions_total "
        << s.disk_evictions << "\n";
    }
    if (const std::optional<MetadataLog::Stats> w = service->log_stats()) {
      o << "# TYPE ferry_store_wal_commits_total counter\nferry_store_wal_commits_total "
        << w->commits << "\n"
        << "# TYPE ferry_store_wal_records_total counter\nferry_store_wal_records_total "
        << w->committed_records << "\n"
        << "# TYPE ferry_store_wal_commit_latency_seconds summary\n"
        << "ferry_store_wal_commit_latency_seconds_sum "
        << static_cast<double>(w->commit_micros) / 1e6 << "\n"
        << "ferry_store_wal_commit_latency_seconds_count " << w->commits << "\n"
        << "# TYPE ferry_store_wal_batch_records summary\n"
        << "ferry_store_wal_batch_records_sum " << w->committed_records << "\n"
        << "ferry_store_wal_batch_records_count " << w->commits << "\n"
        << "# TYPE ferry_store_wal_batch_records_max gauge\nferry_store_wal_batch_records_max "
        << w->max_batch << "\n"
        << "# TYPE ferry_store_wal_log_records gauge\nferry_store_wal_log_records "
        << w->log_records << "\n"
        << "# TYPE ferry_store_wal_log_bytes gauge\nferry_store_wal_log_bytes " << w->log_bytes
        << "\n"
        << "# TYPE ferry_store_snapshots_total counter\nferry_store_snapshots_total "
        << w->snapshots << "\n"
        << "# TYPE ferry_store_wal_durable_seq gauge\nferry_store_wal_durable_seq "
        << w->durable_seq << "\n";
      o << "# TYPE ferry_store_wal_commit_seconds histogram\n";
      for (size_t i = 0; i < MetadataLog::kCommitBucketsUs.size(); ++i) {
        o << "ferry_store_wal_commit_seconds_bucket{le=\""
          << static_cast<double>(MetadataLog::kCommitBucketsUs[i]) / 1e6 << "\"} "
          << w->commit_buckets[i] << "\n";
      }
      o << "ferry_store_wal_commit_seconds_bucket{le=\"+Inf\"} " << w->commits << "\n"
        << "ferry_store_wal_commit_seconds_sum " << static_cast<double>(w->commit_micros) / 1e6
        << "\nferry_store_wal_commit_seconds_count " << w->commits << "\n";
      o << "# TYPE ferry_store_wal_batch_size histogram\n";
      for (size_t i = 0; i < MetadataLog::kBatchBuckets.size(); ++i) {
        o << "ferry_store_wal_batch_size_bucket{le=\"" << MetadataLog::kBatchBuckets[i] << "\"} "
          << w->batch_buckets[i] << "\n";
      }
      o << "ferry_store_wal_batch_size_bucket{le=\"+Inf\"} " << w->commits << "\n"
        << "ferry_store_wal_batch_size_sum " << w->committed_records << "\n"
        << "ferry_store_wal_batch_size_count " << w->commits << "\n";
    }
  }
  o << "# TYPE ferry_store_rpc_requests_total counter\n";
  for (size_t i = 0; i < kRpcCount; ++i) {
    o << "ferry_store_rpc_requests_total{rpc=\"" << kRpcNames[i] << "\"} "
      << rpc->stats(static_cast<Rpc>(i)).calls.load() << "\n";
  }
  o << "# TYPE ferry_store_rpc_refused_total counter\n";
  for (size_t i = 0; i < kRpcCount; ++i) {
    o << "ferry_store_rpc_refused_total{rpc=\"" << kRpcNames[i] << "\"} "
      << rpc->stats(static_cast<Rpc>(i)).refused.load() << "\n";
  }
  o << "# TYPE ferry_store_rpc_items_total counter\n";
  for (size_t i = 0; i < kRpcCount; ++i) {
    o << "ferry_store_rpc_items_total{rpc=\"" << kRpcNames[i] << "\"} "
      << rpc->stats(static_cast<Rpc>(i)).items.load() << "\n";
  }
  o << "# TYPE ferry_store_rpc_latency_seconds histogram\n";
  for (size_t i = 0; i < kRpcCount; ++i) {
    RpcStats& st = rpc->stats(static_cast<Rpc>(i));
    const uint64_t served = st.calls.load() - st.refused.load();
    for (size_t b = 0; b < kBucketsUs.size(); ++b) {
      o << "ferry_store_rpc_latency_seconds_bucket{rpc=\"" << kRpcNames[i] << "\",le=\""
        << static_cast<double>(kBucketsUs[b]) / 1e6 << "\"} " << st.buckets[b].load() << "\n";
    }
    o << "ferry_store_rpc_latency_seconds_bucket{rpc=\"" << kRpcNames[i] << "\",le=\"+Inf\"} "
      << served << "\n"
      << "ferry_store_rpc_latency_seconds_sum{rpc=\"" << kRpcNames[i] << "\"} "
      << static_cast<double>(st.micros.load()) / 1e6 << "\n"
      << "ferry_store_rpc_latency_seconds_count{rpc=\"" << kRpcNames[i] << "\"} " << served << "\n";
  }
  o << http::RenderPrometheus(http->stats(), "store-master");
  return o.str();
}

void MasterServer::Impl::InstallRoutes() {
  http->Route("GET", "/metrics", [this](const http::Request&, http::Response& res) {
    res.Set(200, Metrics(), "text/plain; version=0.0.4");
  });
  // Role, leader and log position: /health for probes (200 whatever the role), /leader.
  auto role = [this] {
    const std::shared_ptr<MasterService> svc = Current();
    const bool leading = svc && Leading();
    nlohmann::json j = {{"role", leading ? "leader" : "standby"},
                        {"leader", leading ? advertised : LeaderAddress()},
                        {"cluster_id", election ? options.ha.cluster_id : ""},
                        {"term", election ? election->term() : 0},
                        {"log_position", 0}};
    if (svc) {
      if (auto w = svc->log_stats()) j["log_position"] = w->durable_seq;
    }
    if (election && !leading) j["lost_reason"] = election->lost_reason();
    return j;
  };
  http->Route("GET", "/health", [role](const http::Request&, http::Response& res) {
    nlohmann::json j = role();
    j["status"] = "ok";
    res.Set(200, j.dump() + "\n", "application/json");
  });
  http->Route("GET", "/leader", [role](const http::Request&, http::Response& res) {
    res.Set(200, role().dump() + "\n", "application/json");
  });
  // The query pages answer from the leader's state; a standby says where the leader is.
  http->Route("GET", "/get_all_segments", [this](const http::Request&, http::Response& res) {
    std::shared_ptr<MasterService> service = ServingOrRefuse(res);
    if (!service) return;
    std::string body;
    for (const SegmentInfo& s : service->Segments()) body += s.name + "\n";
    res.Set(200, std::move(body), "text/plain");
  });
  http->Route("GET", "/get_all_keys", [this](const http::Request&, http::Response& res) {
    std::shared_ptr<MasterService> service = ServingOrRefuse(res);
    if (!service) return;
    std::string body;
    for (const std::string& k : service->ListKeys(1000000)) body += k + "\n";
    res.Set(200, std::move(body), "text/plain");
  });
  http->Route("GET", "/query_key", [this](const http::Request& req, http::Response& res) {
    std::shared_ptr<MasterService> service = ServingOrRefuse(res);
    if (!service) return;
    std::optional<std::string> key = req.Param("key");
    if (!key || key->empty()) {
      res.Set(400, "missing ?key=\n", "text/plain");
      return;
    }
    auto d = service->Describe(*key);
    if (!d.ok()) {
      res.Set(404, d.status().message() + "\n", "text/plain");
      return;
    }
    res.Set(200, DescribeJson(*d).dump() + "\n", "application/json");
  });
  http->Route("GET", "/batch_query_keys", [this](const http::Request& req, http::Response& res) {
    std::shared_ptr<MasterService> service = ServingOrRefuse(res);
    if (!service) return;
    std::optional<std::string> keys = req.Param("keys");
    if (!keys || keys->empty()) {
      res.Set(400, "missing ?keys=a,b\n", "text/plain");
      return;
    }
    nlohmann::json out = nlohmann::json::object();
    size_t start = 0;
    size_t count = 0;
    while (start <= keys->size() && count < options.max_batch) {
      size_t comma = keys->find(',', start);
      if (comma == std::string::npos) comma = keys->size();
      std::string key = keys->substr(start, comma - start);
      start = comma + 1;
      if (key.empty()) continue;
      ++count;
      auto d = service->Describe(key);
      out[key] = d.ok() ? DescribeJson(*d)
                        : nlohmann::json{{"error", ToInt(ErrorCodeOf(d.status()))},
                                         {"message", d.status().message()}};
    }
    res.Set(200, out.dump() + "\n", "application/json");
  });
}

Result<std::unique_ptr<MasterServer>> MasterServer::Start(Options options) {
  if (options.max_batch == 0 || options.max_key_bytes == 0 || options.max_message_bytes <= 0) {
    return InvalidArgumentError("master: batch, key and message limits must be positive");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  const Options& o = impl->options;
  const bool ha = !o.ha.etcd_endpoints.empty();
  if (!ha) {
    FERRY_ASSIGN_OR_RETURN(std::unique_ptr<MasterService> svc, MasterService::Create(o.service));
    MutexLock lock(&impl->service_mu);  // uncontended: no server thread runs yet
    impl->service = std::move(svc);
  } else {
    if (!o.service.data_dir.empty()) {
      return InvalidArgumentError(
          "master: --data_dir is for a single master; with etcd the log lives in etcd");
    }
    if (Status bad = CheckClusterId(o.ha.cluster_id); !bad.ok()) {
      return bad.WithContext("master");
    }
    if (o.ha.lease_ttl.count() < 1)
      return InvalidArgumentError("master: the HA lease TTL must be >= 1 s");
    FERRY_ASSIGN_OR_RETURN(std::unique_ptr<metadata::EtcdClient> etcd,
                           metadata::EtcdClient::Create(o.ha.etcd_endpoints));
    impl->etcd = std::move(etcd);
    impl->leader_key = LeaderKey(o.ha.cluster_id);
  }
  Impl* raw = impl.get();
  impl->rpc = std::make_unique<MasterRpcService>(
      [raw](std::string* why, std::string* leader) { return raw->Acquire(why, leader); },
      [raw] { return raw->Leading(); }, o);

  grpc::ServerBuilder builder;
  builder.AddListeningPort(o.rpc_address + ":" + std::to_string(o.rpc_port),
                           grpc::InsecureServerCredentials(), &impl->rpc_port);
  builder.RegisterService(impl->rpc.get());
  builder.SetMaxReceiveMessageSize(o.max_message_bytes);
  builder.SetMaxSendMessageSize(o.max_message_bytes);
  grpc::ResourceQuota quota("ferry-store-master");
  quota.SetMaxThreads(256);
  builder.SetResourceQuota(quota);
  // gRPC sets SO_REUSEPORT by default: a second master on the same port would silently
  // share it. Refuse instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Idle connections and dead peers: keepalive pings, and no client may ping too often.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, 10 * 60 * 1000);
  impl->grpc_server = builder.BuildAndStart();
  if (!impl->grpc_server || impl->rpc_port == 0) {
    return UnavailableError("master: cannot listen on " + o.rpc_address + ":" +
                            std::to_string(o.rpc_port) + " (in use, or not a local address)");
  }

  http::HttpServerOptions hopts;
  hopts.name = "store-master";
  hopts.worker_threads = 4;
  hopts.limits.max_body_bytes = 64 << 10;
  auto http = http::HttpServer::Create(hopts);
  if (!http.ok()) return http.status();
  impl->http = std::move(*http);
  impl->InstallRoutes();
  Status hs = impl->http->Start(o.metrics_address, o.metrics_port);
  if (!hs.ok()) {
    impl->grpc_server->Shutdown();
    return hs.WithContext("master: metrics port " + std::to_string(o.metrics_port));
  }

  if (o.enable_http_metadata_server) {
    metadata::HttpMetadataServer::Options mo;
    mo.host = o.metrics_address;
    mo.port = o.http_metadata_server_port;
    mo.secret = o.secret;
    auto md = metadata::HttpMetadataServer::Create(mo);
    if (!md.ok()) {
      impl->http->Stop();
      impl->grpc_server->Shutdown();
      return md.status().WithContext("master: http metadata server");
    }
    impl->metadata = std::move(*md);
  }

  {
    std::string host = o.ha.advertise_address;
    if (host.empty()) {
      host = (o.rpc_address == "0.0.0.0" || o.rpc_address.empty())
                 ? (ha ? LocalIpv4Address() : "127.0.0.1")
                 : o.rpc_address;
    }
    impl->advertised = HostPort{host, static_cast<uint16_t>(impl->rpc_port)}.ToString();
  }
  impl->ticker = std::thread([raw] {
    MutexLock lock(&raw->mu);
    while (!raw->stopping) {
      raw->cv.WaitFor(&raw->mu, raw->options.tick_interval);
      if (raw->stopping) break;
      lock.Unlock();
      if (std::shared_ptr<MasterService> svc = raw->Current(); svc && raw->Leading()) {
        svc->Tick();
        // HA: a log that failed (an etcd call that timed out may still have applied) is
        // not trusted for the rest of the term: hand over, and rebuild from etcd if this
        // master wins again.
        if (Status log = svc->LogHealth(); !log.ok() && raw->election) {
          FERRY_LOG_ERROR("master: the log failed ({}); resigning the term", log.ToString());
          raw->election->Resign();
        }
      }
      lock.Lock();
    }
  });
  if (ha) {
    LeaderElection::Options eo;
    eo.key = impl->leader_key;
    eo.value = impl->advertised;
    eo.lease_ttl = o.ha.lease_ttl;
    impl->election = std::make_unique<LeaderElection>(impl->etcd, eo);
    impl->campaigner = std::thread([raw] { raw->CampaignLoop(); });
    FERRY_LOG_INFO("master: HA through {} as {} of cluster '{}' (lease {} s); standing by",
                   impl->etcd->Describe(), impl->advertised, o.ha.cluster_id,
                   o.ha.lease_ttl.count());
  }
  if (o.secret.empty()) {
    FERRY_LOG_WARN(
        "master: no secret (--secret or FERRY_KV_SECRET): anyone who reaches port {} can "
        "mount segments, allocate and remove objects",
        impl->rpc_port);
  }
  return std::unique_ptr<MasterServer>(new MasterServer(std::move(impl)));
}

MasterServer::MasterServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MasterServer::~MasterServer() { Stop(); }

void MasterServer::Stop() {
  {
    MutexLock lock(&impl_->mu);
    if (impl_->stopping) return;
    impl_->stopping = true;
  }
  impl_->cv.SignalAll();
  if (impl_->ticker.joinable()) impl_->ticker.join();
  if (impl_->election) {
    impl_->election->Stop();
    if (impl_->campaigner.joinable()) impl_->campaigner.join();
    impl_->election->Resign();  // another master takes over now, not after the lease
  }
  if (std::shared_ptr<MasterService> svc = impl_->Current()) svc->ShutdownDiskTier();
  impl_->grpc_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  impl_->grpc_server->Wait();
  impl_->http->Stop();
  if (impl_->metadata) impl_->metadata->Stop();
}

std::string MasterServer::rpc_address() const { return impl_->advertised; }
uint16_t MasterServer::rpc_port() const { return static_cast<uint16_t>(impl_->rpc_port); }
uint16_t MasterServer::metrics_port() const { return impl_->http->port(); }
uint16_t MasterServer::http_metadata_server_port() const {
  return impl_->metadata ? impl_->metadata->port() : 0;
}
MasterService& MasterServer::service() { return *impl_->Current(); }
bool MasterServer::leading() const { return impl_->Current() != nullptr && impl_->Leading(); }

}  // namespace ferry::store
