#include "bench/store/store_bench.h"

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/common/percentile.h"
#include "bench/transfer/transfer_bench.h"
#include "common/byte_size.h"
#include "common/child_process.h"
#include "nlohmann/json.hpp"
#include "store/client.h"
#include "store/master/master_server.h"

namespace ferry::bench {
namespace {

using Clock = std::chrono::steady_clock;
using store::Client;
using store::Piece;

struct Figure {
  std::string op, mode;
  uint64_t size = 0;
  int batch = 0;
  uint64_t objects = 0;
  double seconds = 0, p50_us = 0, p99_us = 0;
  double gbps() const {
    return seconds > 0 ? objects * static_cast<double>(size) / seconds / 1e9 : 0;
  }
  double ops() const { return seconds > 0 ? objects / seconds : 0; }
};

// Calls `call` (one batch, returning false on failure) until `seconds` pass.
Result<Figure> Timed(Figure f, double seconds, const std::function<bool()>& call) {
  std::vector<double> lat;
  const Clock::time_point start = Clock::now();
  Clock::time_point now = start;
  while (now - start < std::chrono::duration<double>(seconds) || lat.size() < 3) {
    const Clock::time_point t0 = Clock::now();
    if (!call()) return InternalError(fmt::format("{} {} failed", f.op, f.mode));
    now = Clock::now();
    lat.push_back(std::chrono::duration<double, std::micro>(now - t0).count());
  }
  f.seconds = std::chrono::duration<double>(now - start).count();
  f.objects = lat.size() * static_cast<uint64_t>(f.batch);
  f.p50_us = Percentile(lat, 50);
  f.p99_us = Percentile(lat, 99);
  return f;
}

Result<std::vector<uint64_t>> ParseList(const std::string& text, bool sizes) {
  std::vector<uint64_t> out;
  for (size_t start = 0; start <= text.size();) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, comma - start);
    uint64_t v = 0;
    if (sizes) {
      FERRY_ASSIGN_OR_RETURN(v, ParseByteSize(item));
    } else {
      v = std::strtoull(item.c_str(), nullptr, 10);
    }
    if (v == 0) return InvalidArgumentError("'" + item + "' must be > 0");
    out.push_back(v);
    start = comma + 1;
  }
  return out;
}

// Waits for `needle` in the child's log file.
Status WaitForLine(const std::string& log, const std::string& needle, ChildProcess& child,
                   std::string* line) {
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < deadline) {
    std::ifstream in(log);
    for (std::string l; std::getline(in, l);) {
      if (l.find(needle) != std::string::npos) {
        *line = l;
        return OkStatus();
      }
    }
    if (!child.Running()) return UnavailableError("the child exited; see " + log);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return DeadlineExceededError("no '" + needle + "' in " + log);
}

class StoreBench {
 public:
  Status Run(const StoreBenchOptions& f);

 private:
  Status Case(uint64_t size, int batch, double seconds);
  std::vector<std::string> Keys(const std::string& prefix, size_t n);
  // Keeps `fig`, and its bandwidth over `raw`'s as "<op> <mode> <size> x<batch> / raw <raw op>".
  void AddAgainstRaw(const Figure& fig, const Figure& raw);

  std::unique_ptr<store::MasterServer> master_;
  std::unique_ptr<ChildProcess> member_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<BenchInitiator> raw_;
  std::vector<char> src_, dst_;
  uint64_t segment_size_ = 0;
  uint64_t round_ = 0;
  std::vector<Figure> figures_;
  std::vector<std::pair<std::string, double>> ratios_;
};

std::vector<std::string> StoreBench::Keys(const std::string& prefix, size_t n) {
  std::vector<std::string> keys;
  keys.reserve(n);
  const uint64_t round = round_++;
  for (size_t i = 0; i < n; ++i) keys.push_back(fmt::format("{}-{}-{}", prefix, round, i));
  return keys;
}

void StoreBench::AddAgainstRaw(const Figure& fig, const Figure& raw) {
  figures_.push_back(fig);
  ratios_.emplace_back(fmt::format("{} {} {} x{} / raw {}", fig.op, fig.mode,
                                   FormatByteSize(fig.size), fig.batch, raw.op),
                       fig.gbps() / std::max(raw.gbps(), 1e-12));
}

Status StoreBench::Case(uint64_t size, int batch, double seconds) {
  const size_t b = static_cast<size_t>(batch);
  // Raw engine: the same batch of `size`-byte requests into the target's memory.
  for (TransferOp op : {TransferOp::kWrite, TransferOp::kRead}) {
    BenchConfig c;
    c.op = op;
    c.block_size = size;
    c.batch_size = batch;
    c.duration_s = seconds;
    FERRY_ASSIGN_OR_RETURN(BenchResult r, raw_->Run(c));
    Figure fig{op == TransferOp::kWrite ? "write" : "read",
               "raw",
               size,
               batch,
               r.requests,
               r.seconds,
               r.lat_p50_us,
               r.lat_p99_us};
    figures_.push_back(fig);
  }
  const Figure raw_write = figures_[figures_.size() - 2], raw_read = figures_.back();

  // Piece lists over the registered source and destination buffers.
  std::vector<Piece> from(b), into(b);
  std::vector<std::span<const std::byte>> spans(b);
  for (size_t i = 0; i < b; ++i) {
    from[i] = {src_.data() + i * size, size};
    into[i] = {dst_.data() + i * size, size};
    spans[i] = std::as_bytes(std::span(src_.data() + i * size, size));
  }
  const uint64_t budget = segment_size_ / 3;  // live bytes before the pool is emptied
  uint64_t live = 0;
  for (const bool zero_copy : {false, true}) {
    auto put = [&]() -> bool {
      if (live + b * size > budget) {
        if (!client_->RemoveAll(true).ok()) return false;
        live = 0;
      }
      std::vector<std::string> keys = Keys("p", b);
      std::vector<Status> r =
          zero_copy ? client_->BatchPutFrom(keys, from) : client_->BatchPut(keys, spans);
      live += b * size;
      return std::all_of(r.begin(), r.end(), [](const Status& s) { return s.ok(); });
    };
    FERRY_ASSIGN_OR_RETURN(
        Figure fig, Timed({"put", zero_copy ? "zero-copy" : "copy", size, batch}, seconds, put));
    AddAgainstRaw(fig, raw_write);
  }
  FERRY_ASSIGN_OR_RETURN(uint64_t removed, client_->RemoveAll(true));
  (void)removed;
  // Gets read a set put once, round after round.
  const size_t set = std::max<size_t>(b, std::min<size_t>(2048, (64u << 20) / size));
  std::vector<std::string> keys = Keys("g", set);
  for (size_t i = 0; i < set; i += b) {
    const size_t n = std::min(b, set - i);
    std::vector<Status> r =
        client_->BatchPutFrom(std::span(keys).subspan(i, n), std::span(from).subspan(0, n));
    for (const Status& s : r) FERRY_RETURN_IF_ERROR(s);
  }
  for (const bool zero_copy : {false, true}) {
    size_t next = 0;
    auto get = [&]() -> bool {
      if (next + b > set) next = 0;
      auto batch_keys = std::span(keys).subspan(next, b);
      next += b;
      if (zero_copy) {
        auto r = client_->BatchGetInto(batch_keys, into);
        return std::all_of(r.begin(), r.end(), [](const auto& x) { return x.ok(); });
      }
      auto r = client_->BatchGet(batch_keys);
      return std::all_of(r.begin(), r.end(), [](const auto& x) { return x.ok(); });
    };
    FERRY_ASSIGN_OR_RETURN(
        Figure fig, Timed({"get", zero_copy ? "zero-copy" : "copy", size, batch}, seconds, get));
    AddAgainstRaw(fig, raw_read);
  }
  if (size == 4096 && batch > 1) {
    size_t next = 0;
    auto exist = [&]() -> bool {
      if (next + b > set) next = 0;
      auto r = client_->BatchExist(std::span(keys).subspan(next, b));
      next += b;
      return std::all_of(r.begin(), r.end(), [](const auto& x) { return x.ok() && *x; });
    };
    FERRY_ASSIGN_OR_RETURN(Figure fig, Timed({"exist", "batch", size, batch}, seconds, exist));
    figures_.push_back(fig);
  }
  FERRY_ASSIGN_OR_RETURN(removed, client_->RemoveAll(true));
  return OkStatus();
}

Status StoreBench::Run(const StoreBenchOptions& f) {
  FERRY_ASSIGN_OR_RETURN(std::vector<uint64_t> sizes, ParseList(f.sizes, true));
  FERRY_ASSIGN_OR_RETURN(std::vector<uint64_t> batches, ParseList(f.batches, false));
  FERRY_ASSIGN_OR_RETURN(segment_size_, ParseByteSize(f.segment));
  if (f.protocol != "tcp" && f.protocol != "shm") {
    return InvalidArgumentError("--protocol must be tcp or shm");
  }
  const uint64_t max_size = *std::max_element(sizes.begin(), sizes.end());
  const uint64_t max_batch = *std::max_element(batches.begin(), batches.end());
  if (max_size * max_batch * 3 > segment_size_) {
    return InvalidArgumentError("--segment must hold three of the largest batches");
  }

  store::MasterServer::Options mo;
  mo.rpc_address = "127.0.0.1";
  mo.rpc_port = 0;
  mo.metrics_address = "127.0.0.1";
  mo.metrics_port = 0;
  mo.service.default_kv_lease_ttl = std::chrono::seconds(2);
  FERRY_ASSIGN_OR_RETURN(master_, store::MasterServer::Start(mo));

  const std::string log = fmt::format("/tmp/ferry-bench-store-member-{}.log", getpid());
  FERRY_ASSIGN_OR_RETURN(
      member_, ChildProcess::Spawn({"/proc/self/exe", "store", "member", "--master_server_address",
                                    master_->rpc_address(), "--global_segment_size", f.segment,
                                    "--protocol", f.protocol},
                                   log));
  std::string ready;
  FERRY_RETURN_IF_ERROR(WaitForLine(log, "ferry store member ready", *member_, &ready));

  store::ClientOptions co;
  co.master_server_address = master_->rpc_address();
  co.protocol = f.protocol;
  FERRY_ASSIGN_OR_RETURN(client_, Client::Create(co));

  const uint64_t working = max_size * max_batch;
  src_.assign(working, 0);
  dst_.assign(working, 0);
  FillPattern(src_.data(), src_.size(), 0);
  FERRY_RETURN_IF_ERROR(client_->RegisterBuffer(src_.data(), src_.size()));
  FERRY_RETURN_IF_ERROR(client_->RegisterBuffer(dst_.data(), dst_.size()));

  const uint64_t raw_ws = std::max<uint64_t>(working, 64u << 20);
  FERRY_ASSIGN_OR_RETURN(auto target, TargetProcess::Start(raw_ws, f.protocol));
  FERRY_ASSIGN_OR_RETURN(raw_, BenchInitiator::Create(f.protocol, "", target->segment(), raw_ws));

  fmt::print("ferry bench store: protocol {}, member segment {}, {} s per case\n", f.protocol,
             FormatByteSize(segment_size_), f.seconds);
  fmt::print("{:<6} {:<10} {:>8} {:>5} {:>9} {:>12} {:>10} {:>10}\n", "op", "mode", "size", "batch",
             "GB/s", "objects/s", "p50 us", "p99 us");
  size_t printed = 0;
  for (uint64_t size : sizes) {
    for (uint64_t batch : batches) {
      FERRY_RETURN_IF_ERROR(Case(size, static_cast<int>(batch), f.seconds));
      for (; printed < figures_.size(); ++printed) {
        const Figure& x = figures_[printed];
        fmt::print("{:<6} {:<10} {:>8} {:>5} {:>9.3f} {:>12.0f} {:>10.1f} {:>10.1f}\n", x.op,
                   x.mode, FormatByteSize(x.size), x.batch, x.gbps(), x.ops(), x.p50_us, x.p99_us);
      }
      std::fflush(stdout);
    }
  }
  fmt::print("\nstore / raw engine (GB/s ratio; target >= 0.8 for 1 MiB and up)\n");
  for (const auto& [what, ratio] : ratios_) fmt::print("  {:<40} {:.2f}\n", what, ratio);

  if (!f.json.empty()) {
    nlohmann::json out = {
        {"bench", "store"}, {"protocol", f.protocol}, {"cases", nlohmann::json::array()}};
    for (const Figure& x : figures_) {
      out["cases"].push_back({{"op", x.op},
                              {"mode", x.mode},
                              {"size", x.size},
                              {"batch", x.batch},
                              {"gbps", x.gbps()},
                              {"objects_per_s", x.ops()},
                              {"p50_us", x.p50_us},
                              {"p99_us", x.p99_us}});
    }
    for (const auto& [what, ratio] : ratios_) out["ratios"][what] = ratio;
    std::ofstream(f.json) << out.dump(1) << "\n";
  }
  (void)client_->Close();
  member_->Stop(std::chrono::seconds(5));
  return OkStatus();
}

}  // namespace

Status RunStoreBench(const StoreBenchOptions& options) { return StoreBench().Run(options); }

}  // namespace ferry::bench
