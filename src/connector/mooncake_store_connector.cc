#include "connector/mooncake_store_connector.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <unordered_map>
#include <vector>

#include <fmt/core.h>

#include "common/deadline.h"
#include "common/log.h"
#include "common/message_auth.h"
#include "common/mutex.h"
#include "common/thread_pool.h"
#include "connector/kv_block_keys.h"
#include "connector/kv_transfer_params.h"
#include "store/client.h"
#include "store/error_code.h"

namespace ferry::connector {
namespace {

using engine::BlockId;
using engine::KvTransferDone;
using engine::KvTransferKind;

double SecondsSince(SteadyClock::time_point start) {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

class StoreConnectorImpl final : public MooncakeStoreConnector {
 public:
  explicit StoreConnectorImpl(const MooncakeStoreConnectorOptions& options)
      : options_(options),
        loads_(options.role != "kv_producer"),
        saves_(options.role != "kv_consumer") {}

  ~StoreConnectorImpl() override {
    {
      MutexLock lock(&mu_);
      stopping_ = true;
    }
    cv_.SignalAll();
    if (connect_thread_.joinable()) connect_thread_.join();
    io_.reset();  // runs what was posted (each call bounded by the client's deadlines)
    savers_.reset();
    std::shared_ptr<store::Client> client;
    {
      MutexLock lock(&mu_);
      client = std::move(client_);
    }
    if (client) {
      client->UnregisterBuffer(kv_base_).IgnoreError();
      client->Close().IgnoreError();
    }
  }

  Status Validate() const {
    if (options_.role != "kv_producer" && options_.role != "kv_consumer" &&
        options_.role != "kv_both") {
      return InvalidArgumentError("kv_role '" + options_.role +
                                  "' must be kv_producer, kv_consumer or kv_both");
    }
    if (options_.store.master_server_address.empty()) {
      return InvalidArgumentError("the store config has no master_server_address");
    }
    if (options_.io_threads < 1 || options_.save_threads < 1) {
      return InvalidArgumentError("store connector threads must be >= 1");
    }
    return OkStatus();
  }

  bool connected() const override {
    MutexLock lock(&mu_);
    return client_ != nullptr;
  }

  Status Bind(engine::KvTransferSink* sink, const engine::KvCache& cache) override {
    if (sink == nullptr) return InvalidArgumentError("store connector: no engine to bind to");
    if (sink_ != nullptr) return FailedPreconditionError("store connector: bound already");
    sink_ = sink;
    layout_ = cache.layout();
    kv_base_ = static_cast<char*>(cache.base());
    kv_bytes_ = cache.size_bytes();
    keys_ = std::make_unique<KvBlockKeys>(options_.model, layout_);
    io_ = std::make_unique<ThreadPool>("kv-pool-io", options_.io_threads);
    savers_ = std::make_unique<ThreadPool>("kv-pool-save", options_.save_threads);
    if (Status st = Connect(); !st.ok()) {
      FERRY_LOG_WARN(
          "store connector: the KV pool at {} cannot be reached ({}); serving without it "
          "and trying again every {} ms",
          options_.store.master_server_address, st.ToString(), options_.reconnect_interval.count());
      connect_thread_ = std::thread([this] { ConnectLoop(); });
    }
    return OkStatus();
  }

  Status PrepareRequest(const std::string&, const std::string& kv_transfer_params) override {
    // Every request may use the pool; the fields are the P2P connector's, but malformed
    // ones are refused here too, whichever connectors the instance runs.
    return KvTransferParams::Parse(kv_transfer_params).status();
  }

  void ForgetRequest(const std::string& request_id) override {
    MutexLock lock(&mu_);
    requests_.erase(request_id);
  }

  engine::KvMatch GetNumNewMatchedTokens(const engine::KvRequestView& request,
                                         int32_t num_local_tokens) override {
    if (!loads_) return {};
    const int32_t bs = layout_.block_size;
    const auto prompt = static_cast<int32_t>(request.prompt_tokens.size());
    // Full blocks of all but the last prompt token: the last one is always computed.
    const int32_t full = std::max(0, prompt - 1) / bs;
    if (full * bs <= num_local_tokens) return {};  // the pool could add nothing
    std::shared_ptr<store::Client> client;
    {
      MutexLock lock(&mu_);
      auto it = requests_.find(request.request_id);
      if (it != requests_.end()) {
        if (it->second.looking_up) return engine::KvMatch::Pending();
        const int32_t hit = it->second.hit_blocks * bs;
        return {std::max(0, hit - num_local_tokens), false, OkStatus()};
      }
      if (client_ == nullptr) return {};
      client = client_;
      Request& r = requests_[request.request_id];
      r.looking_up = true;
      r.keys = keys_->For(request.prompt_tokens, static_cast<size_t>(full));
    }
    const std::string rid = request.request_id;
    const bool posted = io_->Post([this, rid, client] { Lookup(rid, client); });
    if (!posted) {
      MutexLock lock(&mu_);
      requests_.erase(rid);
      return {};
    }
    return engine::KvMatch::Pending();
  }

  void UpdateStateAfterAlloc(const engine::KvRequestView& request, std::span<const BlockId> blocks,
                             int32_t num_local_tokens, int32_t num_external_tokens) override {
    const int32_t bs = layout_.block_size;
    const size_t first = static_cast<size_t>(num_local_tokens / bs);
    const size_t count = static_cast<size_t>(num_external_tokens / bs);
    MutexLock lock(&mu_);
    auto it = requests_.find(request.request_id);
    if (it == requests_.end()) return;
    Request& r = it->second;
    r.load_keys.clear();
    r.load_blocks.clear();
    for (size_t i = first; i < first + count && i < r.keys.size() && i < blocks.size(); ++i) {
      r.load_keys.push_back(r.keys[i]);
      r.load_blocks.push_back(blocks[i]);
    }
  }

  void StartLoad(const engine::KvRequestView& request) override {
    std::vector<std::string> keys;
    std::vector<BlockId> blocks;
    std::shared_ptr<store::Client> client;
    {
      MutexLock lock(&mu_);
      ++loads_in_flight_;
      auto it = requests_.find(request.request_id);
      if (it != requests_.end()) {
        it->second.loading = true;
        keys = it->second.load_keys;
        blocks = it->second.load_blocks;
      }
      client = client_;
    }
    const std::string rid = request.request_id;
    if (!io_->Post([this, rid, keys = std::move(keys), blocks = std::move(blocks), client] {
          Load(rid, keys, blocks, client);
        })) {
      Load(rid, {}, {}, nullptr);  // shutting down: report the failure at once
    }
  }

  engine::KvFinished RequestFinished(const engine::KvRequestView& request, std::span<const BlockId>,
                                     const std::string&, bool loading) override {
    MutexLock lock(&mu_);
    auto it = requests_.find(request.request_id);
    if (it == requests_.end()) return {};
    if (loading && it->second.loading) {
      // Its BatchGetInto still writes into the blocks: they are freed when it returns.
      it->second.finished = true;
      return {true, std::chrono::milliseconds(0), std::nullopt};
    }
    requests_.erase(it);
    return {};
  }

  bool SaveKv(const engine::KvRequestView& request, std::span<const BlockId> blocks,
              int32_t num_tokens) override {
    if (!saves_) return false;
    const int32_t bs = layout_.block_size;
    const size_t full = std::min(blocks.size(), static_cast<size_t>(num_tokens / bs));
    std::shared_ptr<store::Client> client;
    size_t first = 0;
    {
      MutexLock lock(&mu_);
      if (client_ == nullptr) {
        ++m_.saves_skipped_unavailable;
        return false;
      }
      if (SteadyClock::now() < save_paused_until_) {
        ++m_.saves_skipped_full;
        return false;
      }
      // Blocks found in the pool at lookup (and loaded from it) are there already.
      if (auto it = requests_.find(request.request_id); it != requests_.end()) {
        first = static_cast<size_t>(it->second.hit_blocks);
      }
      if (first >= full) return false;
      client = client_;
      ++saves_in_flight_;
    }
    std::vector<std::string> keys = keys_->For(request.prompt_tokens, full);
    keys.erase(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(first));
    std::vector<BlockId> ids(blocks.begin() + static_cast<std::ptrdiff_t>(first),
                             blocks.begin() + static_cast<std::ptrdiff_t>(full));
    const std::string rid = request.request_id;
    if (!savers_->Post([this, rid, keys = std::move(keys), ids = std::move(ids), client] {
          Save(rid, keys, ids, client);
        })) {
      MutexLock lock(&mu_);
      --saves_in_flight_;
      return false;
    }
    return true;
  }

  Status WaitForLoads(Deadline deadline) override {
    return WaitZero(&loads_in_flight_, deadline, "loads");
  }
  Status WaitForSaves(Deadline deadline) override {
    return WaitZero(&saves_in_flight_, deadline, "saves");
  }

  std::string MetricsText() const override {
    const bool up = connected();
    std::string out;
    auto counter = [&](const char* name, const char* help, uint64_t v) {
      out += fmt::format("# HELP {0} {1}\n# TYPE {0} counter\n{0} {2}\n", name, help, v);
    };
    auto summary = [&](const char* name, const char* help, double sum, uint64_t count) {
      out += fmt::format("# HELP {0} {1}\n# TYPE {0} summary\n{0}_sum {2}\n{0}_count {3}\n", name,
                         help, sum, count);
    };
    out += fmt::format(
        "# HELP ferry_kv_pool_connected 1 while the store client is up.\n"
        "# TYPE ferry_kv_pool_connected gauge\nferry_kv_pool_connected {}\n",
        up ? 1 : 0);
    MutexLock lock(&mu_);
    counter("ferry_kv_pool_lookups_total", "Requests looked up in the KV pool.", m_.lookups);
    counter("ferry_kv_pool_lookup_failures_total", "Pool lookups that failed (counted as misses).",
            m_.lookup_failures);
    counter("ferry_kv_pool_hit_requests_total", "Requests that loaded KV from the pool.",
            m_.hit_requests);
    counter("ferry_kv_pool_hit_tokens_total", "Prompt tokens loaded from the pool.", m_.hit_tokens);
    counter("ferry_kv_pool_load_bytes_total", "KV bytes loaded from the pool.", m_.load_bytes);
    counter("ferry_kv_pool_load_failures_total",
            "Pool loads that failed (the engine computed those tokens).", m_.load_failures);
    summary("ferry_kv_pool_load_seconds", "Pool load latency.", m_.load_seconds, m_.loads);
    counter("ferry_kv_pool_save_blocks_total", "KV blocks written to the pool.", m_.save_blocks);
    counter("ferry_kv_pool_save_bytes_total", "KV bytes written to the pool.", m_.save_bytes);
    counter("ferry_kv_pool_save_failures_total", "Blocks whose save failed.", m_.save_failures);
    summary("ferry_kv_pool_save_seconds", "Pool save latency (lookup and writes).", m_.save_seconds,
            m_.saves);
    out += fmt::format(
        "# HELP ferry_kv_pool_saves_skipped_total Prefills not saved: pool full (saving "
        "paused) or unreachable.\n# TYPE ferry_kv_pool_saves_skipped_total counter\n"
        "ferry_kv_pool_saves_skipped_total{{reason=\"full\"}} {}\n"
        "ferry_kv_pool_saves_skipped_total{{reason=\"unavailable\"}} {}\n",
        m_.saves_skipped_full, m_.saves_skipped_unavailable);
    return out;
  }

 private:
  struct Request {
    std::vector<std::string> keys;  // full blocks of all but the last prompt token
    bool looking_up = false;
    int32_t hit_blocks = 0;  // leading keys the pool has (once the lookup is done)
    std::vector<std::string> load_keys;
    std::vector<BlockId> load_blocks;
    bool loading = false;
    bool finished = false;  // finished while loading: free the blocks when the load ends
  };
  struct Metrics {
    uint64_t lookups = 0, lookup_failures = 0, hit_requests = 0, hit_tokens = 0;
    uint64_t loads = 0, load_bytes = 0, load_failures = 0;
    double load_seconds = 0;
    uint64_t saves = 0, save_blocks = 0, save_bytes = 0, save_failures = 0;
    double save_seconds = 0;
    uint64_t saves_skipped_full = 0, saves_skipped_unavailable = 0;
  };

  Status Connect() {
    store::ClientOptions co;
    co.local_hostname =
        options_.store.local_hostname.empty() ? options_.host : options_.store.local_hostname;
    co.metadata_server = options_.store.metadata_server;
    co.master_server_address = options_.store.master_server_address;
    co.global_segment_size = options_.store.global_segment_size;
    co.local_buffer_size = options_.store.local_buffer_size;
    co.protocol = options_.store.protocol;
    co.device_name = options_.store.device_name;
    if (!options_.secret.empty()) co.secret = options_.secret;
    co.rpc_timeout = options_.rpc_timeout;
    co.transfer_timeout = options_.transfer_timeout;
    FERRY_ASSIGN_OR_RETURN(std::unique_ptr<store::Client> client, store::Client::Create(co));
    FERRY_RETURN_IF_ERROR(client->RegisterBuffer(kv_base_, kv_bytes_));
    FERRY_LOG_INFO("store connector: joined the KV pool at {} as {} (lends {} bytes)",
                   co.master_server_address, client->hostname(), co.global_segment_size);
    MutexLock lock(&mu_);
    client_ = std::move(client);
    return OkStatus();
  }

  void ConnectLoop() {
    while (true) {
      {
        MutexLock lock(&mu_);
        if (cv_.WaitFor(&mu_, options_.reconnect_interval,
                        [&]() FERRY_REQUIRES(mu_) { return stopping_; }))
          return;
      }
      if (Connect().ok()) return;
    }
  }

  void Lookup(const std::string& rid, std::shared_ptr<store::Client> client) {
    std::vector<std::string> keys;
    {
      MutexLock lock(&mu_);
      auto it = requests_.find(rid);
      if (it == requests_.end()) return;
      keys = it->second.keys;
    }
    std::vector<Result<bool>> found = client->BatchExist(keys);
    int32_t hit = 0;
    bool failed = false;
    for (const Result<bool>& f : found) {
      if (!f.ok()) failed = true;
      if (!f.ok() || !*f) break;
      ++hit;
    }
    {
      MutexLock lock(&mu_);
      ++m_.lookups;
      if (failed) ++m_.lookup_failures;
      auto it = requests_.find(rid);
      if (it == requests_.end()) return;
      it->second.looking_up = false;
      it->second.hit_blocks = hit;
    }
    sink_->OnKvTransferDone({rid, KvTransferKind::kLookup, OkStatus()});
  }

  void Load(const std::string& rid, const std::vector<std::string>& keys,
            const std::vector<BlockId>& blocks, std::shared_ptr<store::Client> client) {
    const auto start = SteadyClock::now();
    const size_t block_bytes = layout_.block_bytes();
    Status st;
    if (client == nullptr) {
      st = UnavailableError("the KV pool is not reachable");
    } else if (keys.empty() || keys.size() != blocks.size()) {
      st = FailedPreconditionError("no pool blocks planned for " + rid);
    } else {
      std::vector<store::Piece> pieces;
      pieces.reserve(blocks.size());
      for (BlockId b : blocks) {
        pieces.push_back({kv_base_ + static_cast<size_t>(b) * block_bytes, block_bytes});
      }
      std::vector<Result<size_t>> got = client->BatchGetInto(keys, pieces);
      for (size_t i = 0; i < got.size() && st.ok(); ++i) {
        if (!got[i].ok()) {
          st = got[i].status().WithContext("pool block " + keys[i]);
        } else if (*got[i] != block_bytes) {
          st = DataLossError("pool block " + keys[i] + " has " + std::to_string(*got[i]) +
                             " bytes, not " + std::to_string(block_bytes));
        }
      }
      if (got.size() != keys.size() && st.ok()) st = InternalError("short BatchGetInto reply");
    }
    bool free_blocks = false;
    {
      MutexLock lock(&mu_);
      ++m_.loads;
      m_.load_seconds += SecondsSince(start);
      if (st.ok()) {
        ++m_.hit_requests;
        m_.hit_tokens += keys.size() * static_cast<uint64_t>(layout_.block_size);
        m_.load_bytes += keys.size() * block_bytes;
      } else {
        ++m_.load_failures;
      }
      if (auto it = requests_.find(rid); it != requests_.end()) {
        it->second.loading = false;
        if (!st.ok()) it->second.hit_blocks = 0;  // save what could not be loaded
        if (it->second.finished) {
          free_blocks = true;
          requests_.erase(it);
        }
      }
      --loads_in_flight_;
      cv_.SignalAll();
    }
    if (!st.ok()) {
      FERRY_LOG_WARN("store connector: loading {} blocks for {} failed ({}); computing them",
                     keys.size(), rid, st.ToString());
    }
    KvTransferDone done{rid, KvTransferKind::kLoad, st};
    done.fail_request = !st.ok() && options_.fail_on_load_error;
    // A failed read may still be answered late: keep other content out of those blocks
    // until the transfer deadline has surely passed.
    if (!st.ok() && client != nullptr) done.hold_blocks = options_.transfer_timeout;
    sink_->OnKvTransferDone(std::move(done));
    if (free_blocks) sink_->OnKvTransferDone({rid, KvTransferKind::kBlocksFreed, OkStatus()});
  }

  void Save(const std::string& rid, const std::vector<std::string>& keys,
            const std::vector<BlockId>& blocks, std::shared_ptr<store::Client> client) {
    const auto start = SteadyClock::now();
    const size_t block_bytes = layout_.block_bytes();
    std::vector<std::string> missing;
    std::vector<store::Piece> pieces;
    std::vector<Result<bool>> found = client->BatchExist(keys);
    uint64_t failures = 0, saved = 0;
    bool full = false;
    for (size_t i = 0; i < keys.size(); ++i) {
      if (i < found.size() && found[i].ok() && *found[i]) continue;
      missing.push_back(keys[i]);
      pieces.push_back({kv_base_ + static_cast<size_t>(blocks[i]) * block_bytes, block_bytes});
    }
    if (!missing.empty()) {
      std::vector<Status> put = client->BatchPutFrom(missing, pieces);
      for (const Status& s : put) {
        const store::ErrorCode code = store::ErrorCodeOf(s);
        if (s.ok()) {
          ++saved;
        } else if (code == store::ErrorCode::kObjectAlreadyExists) {
          // another instance saved it first: fine
        } else {
          ++failures;
          if (code == store::ErrorCode::kNoAvailableHandle) full = true;
        }
      }
    }
    {
      MutexLock lock(&mu_);
      ++m_.saves;
      m_.save_seconds += SecondsSince(start);
      m_.save_blocks += saved;
      m_.save_bytes += saved * block_bytes;
      m_.save_failures += failures;
      if (full) save_paused_until_ = SteadyClock::now() + options_.save_pause;
      --saves_in_flight_;
      cv_.SignalAll();
    }
    if (full) {
      FERRY_LOG_WARN("store connector: the KV pool is full; saving pauses for {} ms",
                     options_.save_pause.count());
    }
    sink_->OnKvTransferDone({rid, KvTransferKind::kSave, OkStatus()});
  }

  Status WaitZero(const int64_t* counter, Deadline deadline, const char* what) {
    MutexLock lock(&mu_);
    while (*counter > 0) {
      if (deadline.Expired()) {
        return DeadlineExceededError(
            fmt::format("store connector: {} pool {} still in flight", *counter, what));
      }
      cv_.WaitFor(&mu_, std::chrono::milliseconds(20));
    }
    return OkStatus();
  }

  const MooncakeStoreConnectorOptions options_;
  const bool loads_;
  const bool saves_;
  engine::KvTransferSink* sink_ = nullptr;
  engine::KvCacheLayout layout_;
  char* kv_base_ = nullptr;
  size_t kv_bytes_ = 0;
  std::unique_ptr<KvBlockKeys> keys_;

  mutable Mutex mu_;
  CondVar cv_;
  bool stopping_ FERRY_GUARDED_BY(mu_) = false;
  std::shared_ptr<store::Client> client_ FERRY_GUARDED_BY(mu_);  // null: not joined
  std::unordered_map<std::string, Request> requests_ FERRY_GUARDED_BY(mu_);
  int64_t loads_in_flight_ FERRY_GUARDED_BY(mu_) = 0;
  int64_t saves_in_flight_ FERRY_GUARDED_BY(mu_) = 0;
  SteadyClock::time_point save_paused_until_ FERRY_GUARDED_BY(mu_){};
  Metrics m_ FERRY_GUARDED_BY(mu_);
  std::thread connect_thread_;
  std::unique_ptr<ThreadPool> io_;      // lookups and loads
  std::unique_ptr<ThreadPool> savers_;  // saves
};

}  // namespace

Result<std::unique_ptr<MooncakeStoreConnector>> MooncakeStoreConnector::Create(
    const MooncakeStoreConnectorOptions& options) {
  MooncakeStoreConnectorOptions o = options;
  if (o.secret.empty()) o.secret = SecretFromEnvironment();
  auto impl = std::make_unique<StoreConnectorImpl>(o);
  FERRY_RETURN_IF_ERROR(impl->Validate());
  return std::unique_ptr<MooncakeStoreConnector>(std::move(impl));
}

}  // namespace ferry::connector
