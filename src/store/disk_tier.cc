#include "store/disk_tier.h"

#include <grpcpp/grpcpp.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "common/crypto.h"
#include "common/log.h"
#include "common/message_auth.h"
#include "common/mutex.h"
#include "fmt/format.h"
#include "store/error_code.h"
#include "store/rpc_auth.h"
#include "store/rpc_result.h"

namespace ferry::store {
namespace {

using Clock = std::chrono::steady_clock;

// Latency buckets of the disk histograms, in microseconds.
constexpr std::array<uint64_t, 12> kBucketsUs = {100,   250,   500,    1000,   2500,    5000,
                                                 10000, 25000, 100000, 250000, 1000000, 5000000};
// Objects per RegisterDiskTier call, and keys per ReadDisk call.
constexpr size_t kRegisterChunk = 10000;
constexpr int kMaxReadKeys = 1024;
constexpr size_t kMaxKeyBytes = 4096;
// Polls for more offloads before writing a bucket that is not full yet.
constexpr int kLingerRounds = 16;

Status AsStoreError(const Status& s) {
  if (s.ok() || s.detail_code() != 0) return s;
  switch (s.code()) {
    case StatusCode::kNotFound:
      return StoreError(ErrorCode::kObjectNotFound, s.message());
    case StatusCode::kDataLoss:
      return StoreError(ErrorCode::kFileReadFail, s.message());
    case StatusCode::kResourceExhausted:
      return StoreError(ErrorCode::kFileWriteFail, s.message());
    default:
      return StoreError(ErrorCode::kFileReadFail, s.message());
  }
}

// The Member service: auth, limits, then the tier.
class MemberRpcService final : public rpc::Member::Service {
 public:
  MemberRpcService(DiskTier* tier, const std::string& secret)
      : tier_(tier), auth_(secret, "store-member") {}

  grpc::Status ReadDisk(grpc::ServerContext* ctx, const rpc::ReadDiskRequest* req,
                        rpc::ReadDiskReply* rep) override {
    if (grpc::Status s = Check(ctx, "ReadDisk", *req); !s.ok()) return s;
    if (req->keys_size() > kMaxReadKeys || req->release_size() > kMaxReadKeys) {
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          fmt::format("{} keys, {} tokens; the limit is {}", req->keys_size(),
                                      req->release_size(), kMaxReadKeys));
    }
    for (uint64_t token : req->release()) tier_->ReleaseForPeer(token);
    tier_->ReadForPeer(*req, rep);
    return grpc::Status::OK;
  }
  grpc::Status ReleaseDisk(grpc::ServerContext* ctx, const rpc::ReleaseDiskRequest* req,
                           rpc::ReleaseDiskReply* rep) override {
    if (grpc::Status s = Check(ctx, "ReleaseDisk", *req); !s.ok()) return s;
    if (req->tokens_size() > kMaxReadKeys) {
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "too many tokens");
    }
    for (uint64_t token : req->tokens()) tier_->ReleaseForPeer(token);
    SetResult(rep->mutable_result(), OkStatus());
    return grpc::Status::OK;
  }

 private:
  grpc::Status Check(grpc::ServerContext* ctx, std::string_view method,
                     const google::protobuf::Message& req) {
    if (!auth_.enabled()) return grpc::Status::OK;
    auto it = ctx->client_metadata().find(std::string(kAuthMetadataKey));
    if (it == ctx->client_metadata().end()) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "no x-ferry-auth tag");
    }
    auto tag = AuthTag::Parse(std::string_view(it->second.data(), it->second.size()));
    if (!tag.ok()) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, tag.status().message());
    Status v =
        auth_.Verify(AuthMessage("/ferry.store.rpc.Member/" + std::string(method), req), *tag);
    if (!v.ok()) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, v.message());
    return grpc::Status::OK;
  }

  DiskTier* const tier_;
  MessageAuth auth_;
};

// The directory's id in its TIER_ID file, created (atomically) on first use. The caller
// holds the directory's lock.
Result<std::string> ReadOrCreateTierId(const std::string& dir) {
  const std::string path = dir + "/TIER_ID";
  {
    std::ifstream in(path);
    std::string id;
    if (in && std::getline(in, id) && id.size() == 32) return id;
  }
  const std::string id = crypto::RandomHex(16);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << id << "\n";
    out.flush();
    if (!out) return StoreError(ErrorCode::kFileWriteFail, "cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return StoreError(ErrorCode::kFileWriteFail,
                      fmt::format("cannot rename {}: {}", tmp, std::strerror(errno)));
  }
  return id;
}

}  // namespace

void DiskTier::Histogram::Add(Clock::duration d) {
  const auto us =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
  count.fetch_add(1, std::memory_order_relaxed);
  micros.fetch_add(us, std::memory_order_relaxed);
  for (size_t i = 0; i < kBucketsUs.size(); ++i) {
    if (us <= kBucketsUs[i]) buckets[i].fetch_add(1, std::memory_order_relaxed);
  }
}

DiskTier::DiskTier(const DiskTierOptions& options, const DiskTierIdentity& self,
                   TransferEngine* engine, MasterClient* master, RemoteWrite remote_write)
    : options_(options),
      self_(self),
      engine_(engine),
      master_(master),
      remote_write_(std::move(remote_write)) {}

Result<std::unique_ptr<DiskTier>> DiskTier::Start(const DiskTierOptions& options,
                                                  const DiskTierIdentity& self,
                                                  TransferEngine* engine, MasterClient* master,
                                                  RemoteWrite remote_write) {
  if (options.path.empty()) {
    return StoreError(ErrorCode::kInvalidParams,
                      "the SSD tier needs a directory (ssd_offload_path or "
                      "MOONCAKE_OFFLOAD_FILE_STORAGE_PATH)");
  }
  if (self.segment_base == nullptr || self.segment_size == 0) {
    return StoreError(ErrorCode::kInvalidParams,
                      "the SSD tier needs a segment to offload from (global_segment_size > 0)");
  }
  std::unique_ptr<DiskTier> t(new DiskTier(options, self, engine, master, std::move(remote_write)));
  BucketStoreOptions bo;
  bo.path = options.path;
  bo.capacity = options.capacity;
  auto disk = BucketStore::Open(bo);
  if (!disk.ok()) return AsStoreError(disk.status()).WithContext("SSD tier " + options.path);
  t->disk_ = std::move(*disk);
  FERRY_ASSIGN_OR_RETURN(t->tier_id_, ReadOrCreateTierId(options.path));

  const size_t staging = std::max<uint64_t>(options.staging_bytes, 1 << 20);
  void* p = mmap(nullptr, staging, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    return StoreError(ErrorCode::kNoAvailableHandle,
                      fmt::format("cannot map {} bytes of staging: {}", staging, strerror(errno)));
  }
  t->staging_ = static_cast<char*>(p);
  t->staging_size_ = staging;
  {
    MutexLock lock(&t->staging_mu_);  // uncontended: the tier is not serving yet
    t->staging_alloc_ = std::make_unique<OffsetAllocator>(staging, 4096);
  }
  FERRY_RETURN_IF_ERROR(engine->RegisterMemory(MemoryRegion{p, staging, "cpu", true}));

  auto service = std::make_unique<MemberRpcService>(t.get(), options.secret);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.listen_host + ":0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(service.get());
  builder.SetMaxReceiveMessageSize(4 << 20);
  grpc::ResourceQuota quota("ferry-store-member");
  quota.SetMaxThreads(32);
  builder.SetResourceQuota(quota);
  t->server_ = builder.BuildAndStart();
  t->service_ = std::move(service);
  if (!t->server_ || port == 0) {
    return StoreError(ErrorCode::kRpcFail,
                      "the SSD tier cannot listen on " + options.listen_host + ":0");
  }
  t->rpc_address_ = fmt::format("{}:{}", options.listen_host, port);
  const BucketStore::Stats st = t->disk_->stats();
  FERRY_LOG_INFO(
      "store member: SSD tier at {} ({} object(s), {} bytes in {} bucket(s){}), serving {}",
      options.path, st.objects, st.bytes, st.buckets,
      st.dropped_at_open > 0 ? fmt::format("; {} damaged bucket(s) dropped", st.dropped_at_open)
                             : "",
      t->rpc_address_);
  return t;
}

DiskTier::~DiskTier() {
  Stop();
  if (staging_ != nullptr) {
    (void)engine_->UnregisterMemory(staging_);
    munmap(staging_, staging_size_);
  }
}

void DiskTier::Stop() {
  {
    MutexLock lock(&mu_);
    if (stop_) return;
    stop_ = true;
  }
  cv_.SignalAll();
  if (worker_.joinable()) worker_.join();
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
}

Status DiskTier::Register() {
  const std::vector<DiskObject> objects = disk_->List();
  size_t refused = 0;
  for (size_t begin = 0; begin == 0 || begin < objects.size(); begin += kRegisterChunk) {
    rpc::RegisterDiskTierRequest req;
    req.set_client_id(self_.client_id);
    req.set_segment_name(self_.segment_name);
    req.set_hostname(self_.hostname);
    req.set_rpc_address(rpc_address_);
    req.set_tier_id(tier_id_);
    const size_t end = std::min(objects.size(), begin + kRegisterChunk);
    for (size_t i = begin; i < end; ++i) {
      rpc::DiskObjectInfo* o = req.add_objects();
      o->set_key(objects[i].key);
      o->set_size(objects[i].size);
    }
    FERRY_ASSIGN_OR_RETURN(rpc::RegisterDiskTierReply rep, master_->RegisterDiskTier(req));
    FERRY_RETURN_IF_ERROR(ToStatus(rep.result()).WithContext("registering the SSD tier"));
    std::vector<std::string> superseded;
    for (int j = 0; j < rep.codes_size() && begin + j < end; ++j) {
      if (rep.codes(j) != 0) superseded.push_back(objects[begin + j].key);
    }
    refused += superseded.size();
    RemoveFromDisk(superseded);
    if (objects.empty()) break;
  }
  if (!objects.empty()) {
    FERRY_LOG_INFO("store member: {} object(s) on disk registered with the master{}",
                   objects.size() - refused,
                   refused > 0 ? fmt::format(" ({} superseded, deleted)", refused) : "");
  }
  if (!registered_.exchange(true)) worker_ = std::thread([this] { WorkLoop(); });
  return OkStatus();
}

size_t DiskTier::RemoveFromDisk(const std::vector<std::string>& keys) {
  if (keys.empty()) return 0;
  auto removed = disk_->RemoveBatch(keys);  // one tombstone append and fdatasync
  if (!removed.ok()) {
    FERRY_LOG_WARN("store member: removing {} disk copies failed: {}", keys.size(),
                   removed.status().ToString());
    return 0;
  }
  return *removed;
}

void DiskTier::WorkLoop() {
  bool failing = false;
  for (;;) {
    {
      MutexLock lock(&mu_);
      if (stop_) return;
    }
    ReclaimExpiredStaging();
    rpc::PollDiskTasksRequest req;
    req.set_client_id(self_.client_id);
    req.set_wait_ms(static_cast<uint32_t>(options_.poll_wait.count()));
    auto tasks = master_->PollDiskTasks(req);
    if (!tasks.ok() || tasks->result().code() != 0) {
      if (!failing) {
        FERRY_LOG_WARN(
            "store member: polling for disk tasks failed: {}",
            tasks.ok() ? ToStatus(tasks->result()).ToString() : tasks.status().ToString());
      }
      failing = true;
      MutexLock lock(&mu_);
      cv_.WaitFor(&mu_, std::chrono::milliseconds(200),
                  [this]() FERRY_REQUIRES(mu_) { return stop_; });
      continue;
    }
    failing = false;
    // Offloads arrive one PutEnd (or one eviction) at a time: wait a moment for more, so
    // that they go to disk as a few large buckets rather than many small ones.
    uint64_t bytes = 0;
    for (const rpc::OffloadTask& t : tasks->offloads()) bytes += t.size();
    for (int more = 0; more < kLingerRounds && bytes > 0 && bytes < options_.bucket_bytes; ++more) {
      req.set_wait_ms(static_cast<uint32_t>(options_.offload_linger.count()));
      auto next = master_->PollDiskTasks(req);
      if (!next.ok() || next->result().code() != 0 ||
          (next->offloads_size() == 0 && next->deletes_size() == 0 &&
           next->promotions_size() == 0)) {
        break;
      }
      for (const rpc::OffloadTask& t : next->offloads()) bytes += t.size();
      tasks->mutable_offloads()->MergeFrom(next->offloads());
      tasks->mutable_deletes()->MergeFrom(next->deletes());
      tasks->mutable_promotions()->MergeFrom(next->promotions());
    }
    RunTasks(*tasks);
  }
}

void DiskTier::RunTasks(rpc::DiskTasksReply& tasks) {
  deletes_.fetch_add(
      RemoveFromDisk(std::vector<std::string>(tasks.deletes().begin(), tasks.deletes().end())),
      std::memory_order_relaxed);
  rpc::ReportDiskTasksRequest report;
  report.set_client_id(self_.client_id);
  {
    MutexLock lock(&mu_);
    for (std::string& key : lost_) report.add_evicted(std::move(key));
    lost_.clear();
  }
  for (const rpc::PromoteTask& t : tasks.promotions()) Promote(t, &report);
  // Offloads, packed into buckets of up to bucket_bytes.
  std::vector<const rpc::OffloadTask*> batch;
  uint64_t bytes = 0;
  for (const rpc::OffloadTask& t : tasks.offloads()) {
    if (!batch.empty() && bytes + t.size() > options_.bucket_bytes) {
      Offload(batch, &report);
      batch.clear();
      bytes = 0;
    }
    batch.push_back(&t);
    bytes += t.size();
  }
  if (!batch.empty()) Offload(batch, &report);
  if (report.offloaded_size() == 0 && report.promoted_size() == 0 && report.evicted_size() == 0) {
    return;
  }
  auto rep = master_->ReportDiskTasks(report);
  if (!rep.ok()) {
    // The master abandons the tasks after offload_timeout; the copies written are kept
    // and registered again at the next re-mount.
    FERRY_LOG_WARN("store member: reporting disk tasks failed: {}", rep.status().ToString());
    return;
  }
  RemoveFromDisk(std::vector<std::string>(rep->gone().begin(), rep->gone().end()));
}

void DiskTier::Offload(const std::vector<const rpc::OffloadTask*>& batch,
                       rpc::ReportDiskTasksRequest* out) {
  std::vector<BucketStore::WriteItem> items;
  std::vector<const rpc::OffloadTask*> written;
  uint64_t bytes = 0;
  const auto base = reinterpret_cast<uint64_t>(self_.segment_base);
  auto report = [out](const rpc::OffloadTask& t, const Status& s) {
    rpc::KeyResult* r = out->add_offloaded();
    r->set_key(t.key());
    r->set_ticket(t.ticket());
    SetResult(r->mutable_result(), s);
  };
  for (const rpc::OffloadTask* t : batch) {
    // The master's claim is checked: the range must lie inside this member's segment.
    if (t->size() == 0 || !RangeWithin(base, self_.segment_size, t->address(), t->size()) ||
        t->key().empty() || t->key().size() > kMaxKeyBytes) {
      report(*t, StoreError(ErrorCode::kInvalidParams,
                            "offload task outside this member's segment or with a bad key"));
      continue;
    }
    const auto* data = reinterpret_cast<const std::byte*>(t->address());
    items.push_back({t->key(), {std::span<const std::byte>(data, t->size())}});
    written.push_back(t);
    bytes += t->size();
  }
  if (items.empty()) return;
  Status s = MakeRoom(BucketStore::BucketBytes(items));
  if (s.ok()) {
    const Clock::time_point start = Clock::now();
    auto bucket = disk_->WriteBucket(items);
    write_latency_.Add(Clock::now() - start);
    s = bucket.status();
  }
  if (!s.ok()) {
    offload_failures_.fetch_add(written.size(), std::memory_order_relaxed);
    FERRY_LOG_WARN("store member: offload of {} object(s) ({} bytes) refused: {}", written.size(),
                   bytes, s.ToString());
    s = StoreError(ErrorCode::kFileWriteFail, s.message());
  } else {
    offloads_.fetch_add(written.size(), std::memory_order_relaxed);
  }
  for (const rpc::OffloadTask* t : written) report(*t, s);
}

Status DiskTier::MakeRoom(uint64_t bucket_bytes) {
  FERRY_ASSIGN_OR_RETURN(std::vector<uint64_t> doomed, disk_->PlanEviction(bucket_bytes));
  if (doomed.empty()) return OkStatus();
  rpc::ReportDiskTasksRequest req;
  req.set_client_id(self_.client_id);
  for (uint64_t b : doomed) {
    for (std::string& k : disk_->KeysOf(b)) req.add_evicted(std::move(k));
  }
  // The master stops handing these copies out before their files go.
  auto rep = master_->ReportDiskTasks(req);
  if (!rep.ok()) return rep.status().WithContext("telling the master of disk evictions");
  for (uint64_t b : doomed) (void)disk_->DropBucket(b);
  evictions_.fetch_add(req.evicted_size(), std::memory_order_relaxed);
  return OkStatus();
}

void DiskTier::Promote(const rpc::PromoteTask& t, rpc::ReportDiskTasksRequest* out) {
  Status s;
  const auto base = reinterpret_cast<uint64_t>(self_.segment_base);
  const rpc::Buffer& dest = t.dest();
  if (dest.length() != t.size() || t.size() == 0) {
    s = StoreError(ErrorCode::kInvalidParams, "promotion destination of the wrong size");
  } else if (dest.segment_name() == self_.segment_name) {
    // Into this member's own segment: straight from disk, checked against its bounds.
    if (!RangeWithin(base, self_.segment_size, dest.address(), t.size())) {
      s = StoreError(ErrorCode::kInvalidParams, "promotion destination outside the segment");
    } else {
      s = TimedRead(t.key(), reinterpret_cast<void*>(dest.address()), t.size(), false).status();
    }
  } else {
    std::vector<char> buf(t.size());
    auto n = TimedRead(t.key(), buf.data(), buf.size(), false);
    s = n.ok() ? remote_write_(buf.data(), dest.segment_name(), dest.address(), t.size())
               : n.status();
  }
  if (s.ok()) {
    promotions_.fetch_add(1, std::memory_order_relaxed);
  } else {
    FERRY_LOG_WARN("store member: promotion of '{}' failed: {}", t.key(), s.ToString());
  }
  rpc::KeyResult* r = out->add_promoted();
  r->set_key(t.key());
  r->set_ticket(t.ticket());
  SetResult(r->mutable_result(), AsStoreError(s));
}

Result<size_t> DiskTier::TimedRead(const std::string& key, void* dst, size_t capacity,
                                   bool readback) {
  const Clock::time_point start = Clock::now();
  auto n = disk_->Read(key, dst, capacity);
  read_latency_.Add(Clock::now() - start);
  if (!n.ok() && n.status().code() == StatusCode::kDataLoss) {
    // The store dropped the copy; the worker tells the master, which stops listing it.
    FERRY_LOG_WARN("store member: disk copy of '{}' is damaged: {}", key, n.status().ToString());
    MutexLock lock(&mu_);
    lost_.push_back(key);
  }
  if (!n.ok()) return AsStoreError(n.status());
  if (readback) {
    readbacks_.fetch_add(1, std::memory_order_relaxed);
    readback_bytes_.fetch_add(*n, std::memory_order_relaxed);
  }
  return n;
}

Result<size_t> DiskTier::ReadLocal(const std::string& key, const std::vector<Piece>& dest) {
  const std::optional<uint64_t> size = disk_->SizeOf(key);
  if (!size) {
    return StoreError(ErrorCode::kObjectNotFound, "'" + key + "' is not on this member's disk");
  }
  if (dest.size() == 1 && dest[0].length >= *size) return TimedRead(key, dest[0].addr, *size);
  std::vector<char> buf(*size);
  FERRY_ASSIGN_OR_RETURN(size_t n, TimedRead(key, buf.data(), buf.size()));
  size_t off = 0;
  for (const Piece& p : dest) {
    const size_t take = std::min(p.length, n - off);
    std::memcpy(p.addr, buf.data() + off, take);
    off += take;
    if (off == n) break;
  }
  if (off != n) {
    return StoreError(ErrorCode::kBufferOverflow, "the object is larger than its buffers");
  }
  return n;
}

void DiskTier::ReadForPeer(const rpc::ReadDiskRequest& req, rpc::ReadDiskReply* rep) {
  ReclaimExpiredStaging();
  Staged staged;
  for (const std::string& key : req.keys()) {
    rpc::ReadDiskItem* item = rep->add_items();
    const std::optional<uint64_t> size = disk_->SizeOf(key);
    if (!size) {
      SetResult(item->mutable_result(),
                StoreError(ErrorCode::kObjectNotFound, "'" + key + "' is not on this disk"));
      continue;
    }
    std::optional<OffsetAllocator::Range> range;
    {
      MutexLock lock(&staging_mu_);
      range = staging_alloc_->Allocate(*size);
    }
    if (!range) {
      SetResult(item->mutable_result(),
                StoreError(ErrorCode::kNoAvailableHandle, "the member's staging memory is full"));
      continue;
    }
    char* dst = staging_ + range->offset;
    auto n = TimedRead(key, dst, *size);
    if (!n.ok()) {
      MutexLock lock(&staging_mu_);
      (void)staging_alloc_->Free(range->offset, range->length);
      SetResult(item->mutable_result(), n.status());
      continue;
    }
    staged.ranges.push_back(*range);
    SetResult(item->mutable_result(), OkStatus());
    item->mutable_staged()->set_segment_name(self_.segment_name);
    item->mutable_staged()->set_address(reinterpret_cast<uint64_t>(dst));
    item->mutable_staged()->set_length(*n);
  }
  SetResult(rep->mutable_result(), OkStatus());
  rep->set_lease_ms(static_cast<uint64_t>(options_.staging_lease.count()));
  if (staged.ranges.empty()) return;
  staged.expires = Clock::now() + options_.staging_lease;
  MutexLock lock(&staging_mu_);
  const uint64_t token = next_token_++;
  staged_.emplace(token, std::move(staged));
  rep->set_token(token);
}

void DiskTier::ReleaseForPeer(uint64_t token) {
  MutexLock lock(&staging_mu_);
  auto it = staged_.find(token);
  if (it == staged_.end()) return;
  for (const auto& r : it->second.ranges) (void)staging_alloc_->Free(r.offset, r.length);
  staged_.erase(it);
}

void DiskTier::ReclaimExpiredStaging() {
  const Clock::time_point now = Clock::now();
  MutexLock lock(&staging_mu_);
  for (auto it = staged_.begin(); it != staged_.end();) {
    if (it->second.expires > now) {
      ++it;
      continue;
    }
    for (const auto& r : it->second.ranges) (void)staging_alloc_->Free(r.offset, r.length);
    it = staged_.erase(it);
  }
}

std::string DiskTier::MetricsText() const {
  const BucketStore::Stats s = disk_->stats();
  std::ostringstream o;
  auto line = [&o](const char* type, const char* name, uint64_t v) {
    o << "# TYPE " << name << " " << type << "\n" << name << " " << v << "\n";
  };
  line("gauge", "ferry_store_disk_bytes", s.bytes);
  line("gauge", "ferry_store_disk_live_bytes", s.live_bytes);
  line("gauge", "ferry_store_disk_objects", s.objects);
  line("gauge", "ferry_store_disk_buckets", s.buckets);
  line("gauge", "ferry_store_disk_capacity_bytes", options_.capacity);
  line("counter", "ferry_store_disk_offloads_total", offloads_.load());
  line("counter", "ferry_store_disk_offload_failures_total", offload_failures_.load());
  line("counter", "ferry_store_disk_readbacks_total", readbacks_.load());
  line("counter", "ferry_store_disk_readback_bytes_total", readback_bytes_.load());
  line("counter", "ferry_store_disk_promotions_total", promotions_.load());
  line("counter", "ferry_store_disk_evictions_total", evictions_.load());
  line("counter", "ferry_store_disk_deletes_total", deletes_.load());
  line("counter", "ferry_store_disk_checksum_errors_total", s.checksum_errors);
  line("counter", "ferry_store_disk_dropped_at_open_total", s.dropped_at_open);
  line("counter", "ferry_store_disk_write_bytes_total", s.write_bytes);
  auto histogram = [&o](const char* name, const Histogram& h) {
    o << "# TYPE " << name << " histogram\n";
    for (size_t i = 0; i < kBucketsUs.size(); ++i) {
      o << name << "_bucket{le=\"" << static_cast<double>(kBucketsUs[i]) / 1e6 << "\"} "
        << h.buckets[i].load() << "\n";
    }
    o << name << "_bucket{le=\"+Inf\"} " << h.count.load() << "\n"
      << name << "_sum " << static_cast<double>(h.micros.load()) / 1e6 << "\n"
      << name << "_count " << h.count.load() << "\n";
  };
  histogram("ferry_store_disk_write_seconds", write_latency_);
  histogram("ferry_store_disk_read_seconds", read_latency_);
  return o.str();
}

}  // namespace ferry::store
