// BenchInitiator: the timed side of `ferry bench transfer` and `ferry demo`.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "bench/common/percentile.h"
#include "bench/transfer/transfer_bench.h"
#include "common/byte_size.h"

namespace ferry::bench {
Result<std::unique_ptr<BenchInitiator>> BenchInitiator::Create(const std::string& transport,
                                                               const std::string& params,
                                                               const std::string& target,
                                                               uint64_t working_set) {
  auto b = std::unique_ptr<BenchInitiator>(new BenchInitiator());
  b->transport_ = transport;
  TransferEngineOptions o;
  o.transport = transport;
  o.transport_params = params;
  FERRY_ASSIGN_OR_RETURN(b->engine_, TransferEngine::Create(o));
  b->working_set_ = working_set;
  b->local_.reset(new char[working_set]);
  FillPattern(b->local_.get(), working_set, 0);  // also faults every page in
  FERRY_RETURN_IF_ERROR(b->engine_->RegisterMemory(MemoryRegion{b->local_.get(), working_set}));
  FERRY_ASSIGN_OR_RETURN(b->segment_, b->engine_->OpenSegment(target));
  FERRY_ASSIGN_OR_RETURN(SegmentDescriptor d, b->engine_->GetSegmentDescriptor(b->segment_));
  auto it = std::find_if(d.buffers.begin(), d.buffers.end(),
                         [&](const BufferDescriptor& x) { return x.length >= working_set; });
  if (it == d.buffers.end()) {
    return FailedPreconditionError("target " + target + " has no buffer of " +
                                   FormatByteSize(working_set) + "; start it with the same " +
                                   "--working-set");
  }
  b->remote_base_ = it->addr;
  return b;
}

Result<BenchResult> BenchInitiator::Run(const BenchConfig& c) {
  if (c.block_size == 0 || c.block_size > working_set_ || c.batch_size < 1 || c.threads < 1) {
    return InvalidArgumentError("block size must be in 1..working set; batch and threads >= 1");
  }
  const uint64_t blocks = working_set_ / c.block_size;
  std::atomic<uint64_t> next_block{0}, bytes{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  Status first_error;          // GUARDED_BY(mu)
  std::vector<double> lat_us;  // GUARDED_BY(mu)
  auto start = SteadyClock::now();
  Deadline until = Deadline::In(std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double>(c.duration_s)));
  auto worker = [&] {
    std::vector<TransferRequest> reqs(static_cast<size_t>(c.batch_size));
    std::vector<double> mine;
    while (!stop.load(std::memory_order_relaxed) && !until.Expired()) {
      uint64_t first = next_block.fetch_add(reqs.size());
      for (size_t i = 0; i < reqs.size(); ++i) {
        uint64_t off = ((first + i) % blocks) * c.block_size;
        reqs[i] =
            TransferRequest{c.op, local_.get() + off, segment_, remote_base_ + off, c.block_size};
      }
      auto t0 = SteadyClock::now();
      Status s = engine_->TransferSync(reqs, std::chrono::seconds(30));
      double us = std::chrono::duration<double, std::micro>(SteadyClock::now() - t0).count();
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first_error.ok()) first_error = s;
        stop = true;
        break;
      }
      mine.insert(mine.end(), reqs.size(), us);
      uint64_t total = bytes.fetch_add(reqs.size() * c.block_size) + reqs.size() * c.block_size;
      if (c.total_bytes > 0 && total >= c.total_bytes) stop = true;
    }
    std::lock_guard<std::mutex> lock(mu);
    lat_us.insert(lat_us.end(), mine.begin(), mine.end());
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < c.threads; ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();  // each stops by its deadline or the first error
  double secs = std::chrono::duration<double>(SteadyClock::now() - start).count();
  if (!first_error.ok()) return first_error;

  BenchResult r;
  r.transport = transport_;
  r.config = c;
  r.working_set = working_set_;
  r.bytes = bytes.load();
  r.requests = lat_us.size();
  r.seconds = secs;
  r.lat_max_us = lat_us.empty() ? 0 : *std::max_element(lat_us.begin(), lat_us.end());
  r.lat_p50_us = Percentile(lat_us, 50);
  r.lat_p90_us = Percentile(lat_us, 90);
  r.lat_p99_us = Percentile(lat_us, 99);
  FERRY_RETURN_IF_ERROR(Verify(c.block_size));
  r.verified = true;
  return r;
}

Status BenchInitiator::Verify(uint64_t block_size) {
  const uint64_t len = std::min<uint64_t>(block_size, 4u << 20);
  std::unique_ptr<char[]> scratch(new char[len]);
  // 1. Blocks read from the target hold the target's pattern (at the first, middle, last
  //    block): reads really fetch the target's memory, and writes left it intact.
  for (uint64_t off : {uint64_t{0}, (working_set_ / 2) / len * len, working_set_ - len}) {
    std::memset(scratch.get(), 0, len);
    TransferRequest r{TransferOp::kRead, scratch.get(), segment_, remote_base_ + off, len};
    FERRY_RETURN_IF_ERROR(engine_->TransferSync({&r, 1}, std::chrono::seconds(30)));
    if (!CheckPattern(scratch.get(), len, off)) {
      return DataLossError(
          fmt::format("block at offset {} read from the target does not hold "
                      "the expected bytes",
                      off));
    }
  }
  // 2. Fresh random bytes written to the target come back unchanged.
  std::mt19937_64 rng(std::random_device{}());
  char* block = local_.get();
  for (uint64_t i = 0; i + 8 <= len; i += 8) {
    uint64_t v = rng();
    std::memcpy(block + i, &v, 8);
  }
  TransferRequest w{TransferOp::kWrite, block, segment_, remote_base_, len};
  FERRY_RETURN_IF_ERROR(engine_->TransferSync({&w, 1}, std::chrono::seconds(30)));
  TransferRequest r{TransferOp::kRead, scratch.get(), segment_, remote_base_, len};
  FERRY_RETURN_IF_ERROR(engine_->TransferSync({&r, 1}, std::chrono::seconds(30)));
  if (std::memcmp(scratch.get(), block, len) != 0) {
    return DataLossError("a block written to the target read back different");
  }
  FillPattern(block, len, 0);  // restore both sides
  FERRY_RETURN_IF_ERROR(engine_->TransferSync({&w, 1}, std::chrono::seconds(30)));
  return OkStatus();
}

}  // namespace ferry::bench
