// store_master_bench: what the store master (src/store/master) costs, measured in one run.
//
//   store_master_bench [--objects 10000000] [--seconds 3] [--calls 2000] [--json FILE]
//                      [--skip-memory] [--skip-grpc] [--threads 1,4,16]
//
// 1. Memory per object (runs first, on a clean heap): a MasterService in this process, no
//    gRPC. `--objects` PutStart+PutEnd of 64-byte objects under 14-byte keys
//    ("key-%010d"), one replica each, on 8 mounted segments with 32-hex-char ids. RSS
//    (/proc/self/statm) before and after: bytes per object, and that minus the key. Also
//    the fill's put rate and the time of one housekeeping Tick at that many objects (the
//    MasterServer runs one every 100 ms). A fill that passes --fill-limit-seconds stops
//    there and the figures at --objects are extrapolated, and labelled so.
// 2. Latency through the real gRPC port: a MasterServer in this process on 127.0.0.1 (a free
//    port), one stub on one TCP connection, --calls synchronous calls (after 100 untimed)
//    of BatchExist and BatchGetReplicaList over 1,000 COMPLETE keys, and of BatchPutStart
//    then BatchPutEnd over 1,000 fresh keys. Target: BatchExist p50 < 1 ms.
// 3. Throughput over gRPC: BatchExist and BatchPutStart+BatchPutEnd with 1 and 32 keys a
//    call, from each --threads count of client threads, each with its own channel and so
//    its own TCP connection, for --seconds each, against a fresh master per row.
//
// In 2 and 3 a thread pings the master every second for the bench's client, as a member
// would; a client silent for 10 s is dropped with its segments and objects.
//
// Client threads and the master share this machine's cores, so the throughput rows are
// what one box serves to itself, not a bound on a master with its own machine. Every gRPC
// call has a deadline (--deadline-ms). Prints a table; --json FILE also writes every figure.
#include <grpcpp/grpcpp.h>
#include <malloc.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <latch>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "common/log.h"
#include "store/master/master_server.h"
#include "store/master/master_service.h"
#include "store/proto/master.grpc.pb.h"

namespace {

namespace pb = ::ferry::store::rpc;
using ferry::bench::NowSeconds;
using ferry::store::MasterServer;
using ferry::store::MasterService;
using ferry::store::SegmentInfo;
using nlohmann::json;

constexpr int kLatencyKeys = 1000;    // keys in one latency call
constexpr int kWarmupCalls = 100;     // untimed calls before each latency series
constexpr int kBatchKeys = 32;        // keys in one "batched" throughput call
constexpr int kPreloadKeys = 4096;    // COMPLETE keys the throughput Exist rows look up
constexpr uint64_t kObjectSize = 64;  // bytes of every object put
constexpr int kSegments = 8;
constexpr uint64_t kSegmentSize = 64ull << 30;  // per segment: far above any fill here
constexpr double kLatencyTargetUs = 1000;       // BatchExist p50 < 1 ms
// 18 bytes: past std::string's 15-byte inline buffer, like a real client's id, so the copy
// each object keeps (its writer) is a heap block, as it is in a real deployment.
constexpr char kClientId[] = "store-master-bench";
constexpr char kHost[] = "127.0.0.1";

struct Config {
  uint64_t objects = 10'000'000;
  double fill_limit_seconds = 240;
  double seconds = 3;
  int calls = 2000;
  int deadline_ms = 5000;
  std::vector<int> threads = {1, 4, 16};
  std::string json_path;
  bool skip_memory = false;
  bool skip_grpc = false;
};

// "<prefix><i in 10 digits>"; prefix "key-" makes the 14-byte keys of the memory figure.
std::string Key(std::string_view prefix, uint64_t i) {
  char digits[24];
  std::snprintf(digits, sizeof digits, "%010" PRIu64, i);
  std::string key(prefix);
  key += digits;
  return key;
}

// The i-th bench segment: a 32-hex-char id like a member's, its own address range.
SegmentInfo BenchSegment(int i) {
  char id[40];
  std::snprintf(id, sizeof id, "%032x", i + 1);
  return {id,           std::string(kHost) + ":" + std::to_string(17000 + i),
          kHost,        (static_cast<uint64_t>(i) + 1) << 40,
          kSegmentSize, kClientId};
}

// Resident set size of this process in bytes (/proc/self/statm), 0 if unreadable.
uint64_t RssBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long total = 0, resident = 0;
  const int n = std::fscanf(f, "%llu %llu", &total, &resident);
  std::fclose(f);
  if (n != 2) return 0;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

struct Latency {
  double p50_us = 0, p99_us = 0, mean_us = 0;
  size_t calls = 0;
  uint64_t failures = 0;
};

Latency Summarize(std::vector<double> us, uint64_t failures) {
  Latency l;
  l.calls = us.size();
  l.failures = failures;
  double sum = 0;
  for (double v : us) sum += v;
  l.mean_us = us.empty() ? 0 : sum / static_cast<double>(us.size());
  l.p50_us = ferry::bench::Percentile(us, 0.50);
  l.p99_us = ferry::bench::Percentile(us, 0.99);
  return l;
}

json ToJson(const Latency& l) {
  return {{"p50_us", l.p50_us},
          {"p99_us", l.p99_us},
          {"mean_us", l.mean_us},
          {"calls", l.calls},
          {"failures", l.failures}};
}

pb::BatchKeysRequest KeysRequest(const std::vector<std::string>& keys) {
  pb::BatchKeysRequest req;
  req.set_client_id(kClientId);
  for (const std::string& k : keys) req.add_keys(k);
  return req;
}

// PutStart of `keys`, kObjectSize bytes each, one replica, insert mode.
pb::BatchPutStartRequest PutStartRequest(const std::vector<std::string>& keys) {
  pb::BatchPutStartRequest req;
  req.set_client_id(kClientId);
  req.mutable_config()->set_replica_num(1);
  for (const std::string& k : keys) {
    pb::PutStartItem* item = req.add_items();
    item->set_key(k);
    item->set_size(kObjectSize);
  }
  return req;
}

// One stub on its own channel: a local subchannel pool, so its own TCP connection even
// beside other channels to the same address. Every call carries a deadline. Each call
// returns true when the RPC succeeded and every item's result code is 0; otherwise
// last_error() says why. Not thread-safe: one per thread.
class MasterClient {
 public:
  MasterClient(const std::string& address, std::chrono::milliseconds deadline)
      : deadline_(deadline) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetMaxReceiveMessageSize(64 << 20);
    channel_ = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
    stub_ = pb::Master::NewStub(channel_);
  }

  // Opens the connection; false if it is not up within the deadline.
  bool Connect() {
    return channel_->WaitForConnected(std::chrono::system_clock::now() + deadline_);
  }

  bool Mount(const SegmentInfo& s) {
    pb::MountSegmentRequest req;
    req.set_client_id(s.client_id);
    pb::Segment* seg = req.mutable_segment();
    seg->set_id(s.id);
    seg->set_name(s.name);
    seg->set_hostname(s.hostname);
    seg->set_base(s.base);
    seg->set_size(s.size);
    pb::MountSegmentReply rep;
    grpc::ClientContext ctx;
    Arm(&ctx);
    const grpc::Status status = stub_->MountSegment(&ctx, req, &rep);
    return Check(status, 1, 1, [&](int) { return rep.result().code(); });
  }
  bool Exist(const pb::BatchKeysRequest& req) {
    grpc::ClientContext ctx;
    Arm(&ctx);
    const grpc::Status status = stub_->BatchExist(&ctx, req, &exist_);
    return Check(status, req.keys_size(), exist_.codes_size(),
                 [&](int i) { return exist_.codes(i); });
  }
  bool GetReplicaList(const pb::BatchKeysRequest& req) {
    grpc::ClientContext ctx;
    Arm(&ctx);
    const grpc::Status status = stub_->BatchGetReplicaList(&ctx, req, &get_);
    return Check(status, req.keys_size(), get_.results_size(),
                 [&](int i) { return get_.results(i).result().code(); });
  }
  bool PutStart(const pb::BatchPutStartRequest& req) {
    grpc::ClientContext ctx;
    Arm(&ctx);
    const grpc::Status status = stub_->BatchPutStart(&ctx, req, &put_start_);
    return Check(status, req.items_size(), put_start_.results_size(),
                 [&](int i) { return put_start_.results(i).result().code(); });
  }
  bool PutEnd(const pb::BatchKeysRequest& req) {
    grpc::ClientContext ctx;
    Arm(&ctx);
    const grpc::Status status = stub_->BatchPutEnd(&ctx, req, &put_end_);
    return Check(status, req.keys_size(), put_end_.results_size(),
                 [&](int i) { return put_end_.results(i).code(); });
  }

  // OK and CLIENT_OK; NEED_REMOUNT counts as a failure.
  bool Ping(std::string_view client_id) {
    pb::PingRequest req;
    req.set_client_id(std::string(client_id));
    pb::PingReply rep;
    grpc::ClientContext ctx;
    Arm(&ctx);
    const grpc::Status status = stub_->Ping(&ctx, req, &rep);
    if (!Check(status, 1, 1, [&](int) { return rep.result().code(); })) return false;
    if (rep.client_status() != pb::CLIENT_OK) {
      last_error_ = "ping: NEED_REMOUNT";
      return false;
    }
    return true;
  }

  const std::string& last_error() const { return last_error_; }

 private:
  void Arm(grpc::ClientContext* ctx) const {
    ctx->set_deadline(std::chrono::system_clock::now() + deadline_);
  }
  // `s` and the reply it filled; `want` items asked, `got` results came back.
  template <typename CodeOf>
  bool Check(const grpc::Status& s, int want, int got, CodeOf code_of) {
    if (!s.ok()) {
      last_error_ = "gRPC " + std::to_string(s.error_code()) + ": " + s.error_message();
      return false;
    }
    if (got != want) {
      last_error_ = std::to_string(got) + " results for " + std::to_string(want) + " items";
      return false;
    }
    for (int i = 0; i < got; ++i) {
      if (code_of(i) != 0) {
        last_error_ = "item " + std::to_string(i) + ": store code " + std::to_string(code_of(i));
        return false;
      }
    }
    return true;
  }

  std::chrono::milliseconds deadline_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::Master::Stub> stub_;
  // Replies are reused across calls (protobuf keeps their memory).
  pb::BatchExistReply exist_;
  pb::BatchGetReplicaListReply get_;
  pb::BatchPutStartReply put_start_;
  pb::BatchResultsReply put_end_;
  std::string last_error_;
};

// Keeps kClientId alive on a master, as a member does: a Ping over its own channel every
// second until destroyed. (The master drops a client silent for client_ttl, 10 s, with its
// segments and every object on them.) A failed ping is printed.
class Pinger {
 public:
  Pinger(const std::string& address, std::chrono::milliseconds deadline)
      : client_(address, deadline), thread_([this] { Run(); }) {}
  ~Pinger() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Pinger(const Pinger&) = delete;
  Pinger& operator=(const Pinger&) = delete;

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      lock.unlock();
      if (!client_.Ping(kClientId)) {
        std::fprintf(stderr, "ping failed: %s\n", client_.last_error().c_str());
      }
      lock.lock();
      cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; });
    }
  }

  MasterClient client_;  // used by thread_ only
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // GUARDED_BY(mu_)
  std::thread thread_;
};

// A master on 127.0.0.1, free ports, default service options; nullptr (and a message) if
// it does not start.
std::unique_ptr<MasterServer> StartMaster() {
  MasterServer::Options o;
  o.rpc_address = kHost;
  o.rpc_port = 0;
  o.metrics_address = kHost;
  o.metrics_port = 0;
  auto server = MasterServer::Start(o);
  if (!server.ok()) {
    std::fprintf(stderr, "cannot start a master: %s\n", server.status().ToString().c_str());
    return nullptr;
  }
  return std::move(*server);
}

// Mounts the bench segments and puts `preload` COMPLETE keys "<prefix><i>". False (and a
// message) on any failure.
bool Prepare(MasterClient& client, std::string_view prefix, int preload) {
  for (int i = 0; i < kSegments; ++i) {
    if (!client.Mount(BenchSegment(i))) {
      std::fprintf(stderr, "mount failed: %s\n", client.last_error().c_str());
      return false;
    }
  }
  if (preload == 0) return true;
  std::vector<std::string> keys;
  for (int i = 0; i < preload; ++i) keys.push_back(Key(prefix, i));
  if (!client.PutStart(PutStartRequest(keys)) || !client.PutEnd(KeysRequest(keys))) {
    std::fprintf(stderr, "preload failed: %s\n", client.last_error().c_str());
    return false;
  }
  return true;
}

void PrintFailures(const char* what, uint64_t failures, const std::string& last_error) {
  if (failures > 0) {
    std::printf("  !! %s: %" PRIu64 " failed calls, last: %s\n", what, failures,
                last_error.c_str());
  }
}

// --- 1. Memory per object --------------------------------------------------------------

json RunMemory(const Config& c) {
  std::printf(
      "\n== Memory per object: MasterService in process (no gRPC), %d segments, "
      "%" PRIu64 "-byte objects, 1 replica, 14-byte keys \"key-%%010d\"\n",
      kSegments, kObjectSize);
  ferry::store::MasterServiceOptions options;
  auto service = std::make_unique<MasterService>(options);
  for (int i = 0; i < kSegments; ++i) {
    ferry::Status s = service->MountSegment(BenchSegment(i));
    if (!s.ok()) {
      std::fprintf(stderr, "mount failed: %s\n", s.ToString().c_str());
      return {{"error", s.ToString()}};
    }
  }
  const ferry::store::ReplicateConfig config;  // one replica
  malloc_trim(0);
  const uint64_t rss_before = RssBytes();
  const double begin = NowSeconds();
  uint64_t done = 0, failures = 0;
  std::string last_error;
  bool stopped_early = false;
  constexpr uint64_t kProgressEvery = 1'000'000;
  for (uint64_t i = 0; i < c.objects; ++i) {
    const std::string key = Key("key-", i);
    auto r = service->PutStart(key, kObjectSize, config, kClientId, kHost,
                               ferry::store::PutMode::kInsert);
    ferry::Status s = r.ok() ? service->PutEnd(key, kClientId) : r.status();
    if (s.ok()) {
      ++done;
    } else {
      ++failures;
      last_error = s.ToString();
    }
    if ((i + 1) % kProgressEvery == 0) {
      const double t = NowSeconds() - begin;
      std::printf("  filled %" PRIu64 " in %.1f s (%.0f puts/s), RSS %.0f MiB\n", i + 1, t,
                  static_cast<double>(i + 1) / t, static_cast<double>(RssBytes()) / (1 << 20));
      std::fflush(stdout);
      if (t > c.fill_limit_seconds && i + 1 < c.objects) {
        stopped_early = true;
        break;
      }
    }
  }
  const double fill_s = NowSeconds() - begin;
  const uint64_t rss_after = RssBytes();
  PrintFailures("PutStart+PutEnd", failures, last_error);

  const uint64_t keys = service->stats().keys;

  // Housekeeping at this size: the median of three Ticks. The writer pings before each,
  // as a live client does; without that a Tick that starts client_ttl (10 s) after the
  // last put drops the client and every object on its segments.
  std::vector<double> tick_ms;
  for (int i = 0; i < 3; ++i) {
    (void)service->Ping(kClientId);
    const double t0 = NowSeconds();
    service->Tick();
    tick_ms.push_back((NowSeconds() - t0) * 1e3);
  }
  const double tick_median_ms = ferry::bench::Percentile(tick_ms, 0.5);
  const uint64_t keys_after_tick = service->stats().keys;

  const double delta = static_cast<double>(rss_after) - static_cast<double>(rss_before);
  const double per_object = done == 0 ? 0 : delta / static_cast<double>(done);
  const double beyond_key = per_object - 14;
  const double put_rate = fill_s > 0 ? static_cast<double>(done) / fill_s : 0;
  const double at_target_gib =
      per_object * static_cast<double>(c.objects) / static_cast<double>(1ull << 30);

  std::printf("  %-44s %16s   %s\n", "figure", "value", "target");
  std::printf("  %-44s %16" PRIu64 "   %s\n", "objects put (COMPLETE)", done,
              stopped_early ? "(stopped at --fill-limit-seconds)" : "");
  std::printf("  %-44s %16" PRIu64 "   %s\n", "keys the master holds", keys, "");
  std::printf("  %-44s %16" PRIu64 "   %s\n", "keys after the three Ticks", keys_after_tick, "");
  std::printf("  %-44s %13.1f MiB   %s\n", "RSS before fill", rss_before / double(1 << 20), "");
  std::printf("  %-44s %13.1f MiB   %s\n", "RSS after fill", rss_after / double(1 << 20), "");
  std::printf("  %-44s %13.1f MiB   %s\n", "RSS delta", delta / double(1 << 20), "");
  std::printf("  %-44s %12.1f B/obj   %s\n", "memory per object (RSS delta / objects)", per_object,
              "none set");
  std::printf("  %-44s %12.1f B/obj   %s\n", "per object beyond the 14-byte key", beyond_key,
              "none set");
  std::printf("  %-44s %14.0f /s   %s\n", "put rate during fill (PutStart+PutEnd, 1 thread)",
              put_rate, "none set");
  std::printf("  %-44s %13.1f ms   %s\n", "one housekeeping Tick at this size (median/3)",
              tick_median_ms, "none set (it runs every 100 ms)");
  std::printf("  %-44s %s%.1f / %.1f / %.1f ms\n", "", "  the three, sorted: ", tick_ms[0],
              tick_ms[1], tick_ms[2]);
  if (stopped_early) {
    std::printf("  %-44s %12.2f GiB   EXTRAPOLATED from %" PRIu64 " objects\n",
                ("RSS delta at --objects " + std::to_string(c.objects)).c_str(), at_target_gib,
                done);
  }
  std::fflush(stdout);

  json out = {{"objects_requested", c.objects},
              {"objects_put", done},
              {"failures", failures},
              {"stopped_early", stopped_early},
              {"object_bytes", kObjectSize},
              {"key_bytes", 14},
              {"segments", kSegments},
              {"rss_before_bytes", rss_before},
              {"rss_after_bytes", rss_after},
              {"bytes_per_object", per_object},
              {"bytes_per_object_beyond_key", beyond_key},
              {"fill_seconds", fill_s},
              {"puts_per_second", put_rate},
              {"tick_ms_median", tick_median_ms},
              {"tick_ms", tick_ms},
              {"keys_after_ticks", keys_after_tick}};
  if (stopped_early) out["extrapolated_rss_delta_gib_at_objects_requested"] = at_target_gib;
  const double t0 = NowSeconds();
  service.reset();
  out["teardown_seconds"] = NowSeconds() - t0;
  malloc_trim(0);
  return out;
}

// --- 2. Latency over gRPC --------------------------------------------------------------

void PrintLatencyRow(const char* name, const Latency& l, bool own_target) {
  const bool met = l.failures == 0 && l.p50_us < kLatencyTargetUs;
  std::printf("  %-28s %9.1f %9.1f %9.1f %6" PRIu64 "   p50 < 1 ms%s   %s\n", name, l.p50_us,
              l.p99_us, l.mean_us, l.failures, own_target ? "   " : " *", met ? "met" : "NOT met");
}

json LatencyJson(const Latency& l, bool own_target) {
  json j = ToJson(l);
  j["target"] = own_target ? "p50 < 1 ms" : "p50 < 1 ms (BatchExist's, for comparison)";
  j["met"] = l.failures == 0 && l.p50_us < kLatencyTargetUs;
  return j;
}

json RunLatency(const Config& c) {
  auto server = StartMaster();
  if (!server) return {{"error", "master did not start"}};
  MasterClient client(server->rpc_address(), std::chrono::milliseconds(c.deadline_ms));
  if (!client.Connect() || !Prepare(client, "lat-", kLatencyKeys)) {
    return {{"error", "setup failed"}};
  }
  const Pinger pinger(server->rpc_address(), std::chrono::milliseconds(c.deadline_ms));
  std::printf(
      "\n== Latency over gRPC: master on %s, one channel (one TCP connection), "
      "%d calls after %d untimed, %d keys a call\n",
      server->rpc_address().c_str(), c.calls, kWarmupCalls, kLatencyKeys);

  std::vector<std::string> keys;
  for (int i = 0; i < kLatencyKeys; ++i) keys.push_back(Key("lat-", i));
  const pb::BatchKeysRequest lookup = KeysRequest(keys);

  // Times `call` (true on success) --calls times after kWarmupCalls untimed runs.
  auto time_calls = [&](auto call) {
    std::vector<double> us;
    us.reserve(c.calls);
    uint64_t failures = 0;
    for (int i = 0; i < kWarmupCalls + c.calls; ++i) {
      const double t0 = NowSeconds();
      const bool ok = call();
      const double t1 = NowSeconds();
      if (!ok) {
        ++failures;
      } else if (i >= kWarmupCalls) {
        us.push_back((t1 - t0) * 1e6);
      }
    }
    return Summarize(std::move(us), failures);
  };
  const Latency exist = time_calls([&] { return client.Exist(lookup); });
  PrintFailures("BatchExist", exist.failures, client.last_error());
  const Latency get = time_calls([&] { return client.GetReplicaList(lookup); });
  PrintFailures("BatchGetReplicaList", get.failures, client.last_error());

  // Puts: fresh keys every call; requests built outside the timed region.
  std::vector<double> start_us, end_us, pair_us;
  uint64_t put_failures = 0;
  for (int i = 0; i < kWarmupCalls + c.calls; ++i) {
    for (int j = 0; j < kLatencyKeys; ++j) {
      keys[j] = Key("put-", static_cast<uint64_t>(i) * kLatencyKeys + j);
    }
    const pb::BatchPutStartRequest start = PutStartRequest(keys);
    const pb::BatchKeysRequest end = KeysRequest(keys);
    const double t0 = NowSeconds();
    const bool started = client.PutStart(start);
    const double t1 = NowSeconds();
    const bool ended = started && client.PutEnd(end);
    const double t2 = NowSeconds();
    if (!ended) {
      ++put_failures;
    } else if (i >= kWarmupCalls) {
      start_us.push_back((t1 - t0) * 1e6);
      end_us.push_back((t2 - t1) * 1e6);
      pair_us.push_back((t2 - t0) * 1e6);
    }
  }
  PrintFailures("BatchPutStart+BatchPutEnd", put_failures, client.last_error());
  const Latency put_start = Summarize(std::move(start_us), put_failures);
  const Latency put_end = Summarize(std::move(end_us), put_failures);
  const Latency put_pair = Summarize(std::move(pair_us), put_failures);

  std::printf("  %-28s %9s %9s %9s %6s   %-13s   %s\n", "call (1,000 keys)", "p50 us", "p99 us",
              "mean us", "fail", "target", "");
  PrintLatencyRow("BatchExist", exist, true);
  PrintLatencyRow("BatchGetReplicaList", get, false);
  PrintLatencyRow("BatchPutStart", put_start, false);
  PrintLatencyRow("BatchPutEnd", put_end, false);
  PrintLatencyRow("BatchPutStart+BatchPutEnd", put_pair, false);
  std::printf("  * the 1 ms target is BatchExist's; shown for the others for comparison\n");
  std::fflush(stdout);
  return {{"address", server->rpc_address()},
          {"keys_per_call", kLatencyKeys},
          {"BatchExist", LatencyJson(exist, true)},
          {"BatchGetReplicaList", LatencyJson(get, false)},
          {"BatchPutStart", LatencyJson(put_start, false)},
          {"BatchPutEnd", LatencyJson(put_end, false)},
          {"BatchPutStart+BatchPutEnd", LatencyJson(put_pair, false)}};
}

// --- 3. Throughput over gRPC -----------------------------------------------------------

enum class Op { kExist, kPut };

struct Throughput {
  uint64_t ops = 0;  // Exist calls, or PutStart+PutEnd pairs
  uint64_t failures = 0;
  double seconds = 0;
  Latency latency;  // per op
  std::string last_error;
};

// `threads` client threads, each with its own MasterClient, doing `op` with `keys` keys a
// call for c.seconds against a fresh master.
Throughput RunThroughputCase(const Config& c, Op op, int keys, int threads) {
  Throughput out;
  auto server = StartMaster();
  if (!server) {
    out.last_error = "master did not start";
    return out;
  }
  const std::chrono::milliseconds deadline(c.deadline_ms);
  {
    MasterClient setup(server->rpc_address(), deadline);
    if (!setup.Connect() || !Prepare(setup, "tp-", op == Op::kExist ? kPreloadKeys : 0)) {
      out.last_error = "setup failed: " + setup.last_error();
      return out;
    }
  }
  const Pinger pinger(server->rpc_address(), deadline);
  struct PerThread {
    uint64_t ops = 0, failures = 0;
    double finished = 0;
    std::vector<double> us;
    std::string last_error;
  };
  std::vector<PerThread> per(threads);
  std::latch ready(threads + 1);
  double begin = 0, end = 0;  // written before ready's last arrival, read after it
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      PerThread& me = per[t];
      MasterClient client(server->rpc_address(), deadline);
      const bool connected = client.Connect();
      ready.arrive_and_wait();
      if (!connected) {
        me.failures = 1;
        me.last_error = "no connection";
        return;
      }
      std::vector<std::string> batch(keys);
      char prefix[16];  // "t07-": with 10 digits, 14-byte keys like the memory figure's
      std::snprintf(prefix, sizeof prefix, "t%02d-", t);
      for (uint64_t i = 0; NowSeconds() < end; ++i) {
        for (int k = 0; k < keys; ++k) {
          const uint64_t n = i * keys + k;
          batch[k] = op == Op::kExist ? Key("tp-", (n + 997 * t) % kPreloadKeys) : Key(prefix, n);
        }
        const double t0 = NowSeconds();
        bool ok = false;
        if (op == Op::kExist) {
          ok = client.Exist(KeysRequest(batch));
        } else {
          ok = client.PutStart(PutStartRequest(batch)) && client.PutEnd(KeysRequest(batch));
        }
        const double t1 = NowSeconds();
        if (ok) {
          ++me.ops;
          me.us.push_back((t1 - t0) * 1e6);
        } else {
          ++me.failures;
          me.last_error = client.last_error();
        }
      }
      me.finished = NowSeconds();
    });
  }
  begin = NowSeconds();
  end = begin + c.seconds;
  ready.arrive_and_wait();
  for (std::thread& w : workers) w.join();
  std::vector<double> all_us;
  double finished = begin;
  for (PerThread& p : per) {
    out.ops += p.ops;
    out.failures += p.failures;
    finished = std::max(finished, p.finished);
    all_us.insert(all_us.end(), p.us.begin(), p.us.end());
    if (!p.last_error.empty()) out.last_error = p.last_error;
  }
  out.seconds = finished - begin;
  out.latency = Summarize(std::move(all_us), out.failures);
  return out;
}

json RunThroughput(const Config& c) {
  std::printf(
      "\n== Throughput over gRPC: fresh master per row, each client thread its own "
      "channel (own TCP connection), %.1f s a row, %u hardware threads shared by "
      "clients and master\n",
      c.seconds, std::thread::hardware_concurrency());
  std::printf("  %-26s %5s %7s %11s %11s %11s %9s %9s %6s   %s\n", "op", "keys", "threads", "ops/s",
              "RPCs/s", "keys/s", "p50 us", "p99 us", "fail", "target");
  json rows = json::array();
  const struct {
    Op op;
    const char* name;
    int rpcs;  // RPCs per op
  } ops[] = {{Op::kExist, "BatchExist", 1}, {Op::kPut, "BatchPutStart+BatchPutEnd", 2}};
  for (int keys : {1, kBatchKeys}) {
    for (const auto& o : ops) {
      for (int threads : c.threads) {
        const Throughput r = RunThroughputCase(c, o.op, keys, threads);
        const double ops_s = r.seconds > 0 ? static_cast<double>(r.ops) / r.seconds : 0;
        std::printf("  %-26s %5d %7d %11.0f %11.0f %11.0f %9.1f %9.1f %6" PRIu64 "   none set\n",
                    o.name, keys, threads, ops_s, ops_s * o.rpcs, ops_s * keys, r.latency.p50_us,
                    r.latency.p99_us, r.failures);
        PrintFailures(o.name, r.failures, r.last_error);
        std::fflush(stdout);
        rows.push_back({{"op", o.name},
                        {"keys_per_call", keys},
                        {"threads", threads},
                        {"channels", "one per thread (own TCP connection)"},
                        {"seconds", r.seconds},
                        {"ops", r.ops},
                        {"ops_per_second", ops_s},
                        {"rpcs_per_second", ops_s * o.rpcs},
                        {"keys_per_second", ops_s * keys},
                        {"latency_per_op", ToJson(r.latency)}});
      }
    }
  }
  std::printf(
      "  an op is one BatchExist call, or one BatchPutStart plus one BatchPutEnd on "
      "fresh keys (two RPCs)\n");
  return rows;
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  CLI::App app{"store_master_bench: the store master's gRPC latency, memory per object, ops/s"};
  app.add_option("--objects", c.objects, "objects put for the memory figure")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 34));
  app.add_option("--fill-limit-seconds", c.fill_limit_seconds,
                 "stop the memory fill after this long and extrapolate to --objects")
      ->check(CLI::PositiveNumber);
  app.add_option("--seconds", c.seconds, "length of each throughput row")
      ->check(CLI::PositiveNumber);
  app.add_option("--calls", c.calls, "timed calls per latency series")
      ->check(CLI::Range(1, 1'000'000));
  app.add_option("--deadline-ms", c.deadline_ms, "deadline of every gRPC call")
      ->check(CLI::Range(1, 600'000));
  app.add_option("--threads", c.threads, "client thread counts of the throughput rows")
      ->delimiter(',')
      ->check(CLI::Range(1, 256));
  app.add_option("--json", c.json_path, "also write every figure to this JSON file");
  app.add_flag("--skip-memory", c.skip_memory, "skip the memory-per-object figure");
  app.add_flag("--skip-grpc", c.skip_grpc, "skip the gRPC latency and throughput figures");
  CLI11_PARSE(app, argc, argv);

  // The master's "no secret" warning would repeat for every master started here; the
  // bench's masters listen on 127.0.0.1 only. FERRY_LOG_LEVEL still wins when set.
  if (std::getenv("FERRY_LOG_LEVEL") == nullptr) ferry::SetLogLevel("error");
  ferry::InitLoggingFromEnv();

  std::printf("store_master_bench: %u hardware threads\n", std::thread::hardware_concurrency());
  json root = {{"hardware_threads", std::thread::hardware_concurrency()}};
  if (!c.skip_memory) root["memory"] = RunMemory(c);
  if (!c.skip_grpc) {
    root["latency"] = RunLatency(c);
    root["throughput"] = RunThroughput(c);
  }
  if (!c.json_path.empty()) {
    std::ofstream f(c.json_path);
    f << root.dump(2) << "\n";
    if (!f) {
      std::fprintf(stderr, "cannot write %s\n", c.json_path.c_str());
      return 1;
    }
    std::printf("\nwrote %s\n", c.json_path.c_str());
  }
  return 0;
}
