// FaultTransport: a wrapper Transport for tests that drops, delays, corrupts and "kills"
// traffic of an inner transport (leveldb's FaultInjectionTestEnv, for the data path).
// Registered as "fault"; "fault:tcp" wraps tcp, "fault:shm" wraps shm.
//
//   TransportOptions o;
//   o.extra = {{"inner", "tcp"}, {"drop", "0.01"}, {"delay_ms", "5"}, {"seed", "7"}};
//   FERRY_ASSIGN_OR_RETURN(auto t, CreateFaultTransport(o, host));
//
// Settings (options.extra; everything else is passed on to the inner transport):
//   inner             name of the wrapped transport (required; set by the registry for
//                     "fault:<inner>").
//   drop              probability in [0,1] that a slice fails with Unavailable without
//                     being sent. Default: 0.
//   delay_ms          latency added before each submission reaches the inner transport.
//                     Default: 0.
//   corrupt           probability in [0,1] that one byte of a slice's payload is flipped in
//                     transit: a WRITE is sent from a corrupted scratch copy (the caller's
//                     source is never modified); a READ has one byte of its destination
//                     flipped after it arrived. Default: 0.
//   kill_after_bytes  after this many bytes have been handed to the inner transport, every
//                     later slice (and the one crossing the limit) fails with Unavailable,
//                     as if the connection died; ForgetPeer revives it. Default: none.
//   seed              seed of the fault generator (same seed, same sequence of
//                     decisions for the same sequence of slices). Default: 1.
//
// Thread safety: all methods are thread-safe. Destruction fails delayed slices with
// Aborted, joins the delay thread, then destroys the inner transport.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "transfer/transport.h"

namespace ferry::transfer::fault {

struct FaultSettings {
  double drop = 0;
  int64_t delay_ms = 0;
  double corrupt = 0;
  std::optional<uint64_t> kill_after_bytes;
  uint64_t seed = 1;
};

// Splits options.extra into fault settings, the inner name and the inner's options.
// Errors: InvalidArgument naming the bad key or value, or a missing "inner".
Status ParseFaultOptions(const TransportOptions& options, FaultSettings* settings,
                         std::string* inner, TransportOptions* inner_options);

class FaultTransport : public Transport {
 public:
  // Creates the inner transport through TransportRegistry::Create. `host` outlives the
  // transport. Errors: as ParseFaultOptions, or the inner transport's creation error.
  static Result<std::unique_ptr<FaultTransport>> Create(const TransportOptions& options,
                                                        TransportHost* host);
  // Wraps an existing transport (tests).
  FaultTransport(std::unique_ptr<Transport> inner, const FaultSettings& settings);
  ~FaultTransport() override;

  std::string_view name() const override { return name_; }
  // Transparent: every capability is the inner transport's.
  bool same_host_only() const override { return inner_->same_host_only(); }
  uint32_t memory_kinds() const override { return inner_->memory_kinds(); }
  bool CanReach(const SegmentDescriptor& peer) const override { return inner_->CanReach(peer); }
  void Submit(const SegmentDescriptor& peer, std::span<Slice> slices, Deadline deadline) override;
  void ForgetPeer(const std::string& peer_name) override;
  void Warm(const SegmentDescriptor& peer, Deadline deadline) override {
    inner_->Warm(peer, deadline);
  }
  void DescribeLocal(SegmentDescriptor* d) const override { inner_->DescribeLocal(d); }
  void LocalMemoryChanged() override { inner_->LocalMemoryChanged(); }
  bool allocates_memory() const override { return inner_->allocates_memory(); }
  Result<void*> AllocateMemory(size_t length) override { return inner_->AllocateMemory(length); }
  Status FreeMemory(void* addr) override { return inner_->FreeMemory(addr); }

  // Counters of injected faults, for tests.
  uint64_t dropped() const;
  uint64_t corrupted() const;

 private:
  struct Delayed {
    SegmentDescriptor peer;
    std::vector<Slice> slices;
    Deadline deadline = Deadline::Infinite();
  };

  // Applies drop / kill / corrupt to `slices`; returns the ones to send (with wrapped
  // done callbacks); failed ones are completed before it returns.
  std::vector<Slice> Inject(std::span<Slice> slices);
  void DelayLoop();

  const std::string name_;
  const FaultSettings settings_;
  std::unique_ptr<Transport> inner_;

  mutable Mutex mu_;
  std::mt19937_64 rng_ FERRY_GUARDED_BY(mu_);
  uint64_t bytes_sent_ FERRY_GUARDED_BY(mu_) = 0;
  bool killed_ FERRY_GUARDED_BY(mu_) = false;
  uint64_t dropped_ FERRY_GUARDED_BY(mu_) = 0;
  uint64_t corrupted_ FERRY_GUARDED_BY(mu_) = 0;
  CondVar cv_;
  std::multimap<SteadyClock::time_point, Delayed> delayed_ FERRY_GUARDED_BY(mu_);  // by release
  bool stop_ FERRY_GUARDED_BY(mu_) = false;
  std::thread delay_thread_;  // only when settings_.delay_ms > 0
};

// Factory for the registry ("fault").
Result<std::unique_ptr<Transport>> CreateFaultTransport(const TransportOptions& options,
                                                        TransportHost* host);

}  // namespace ferry::transfer::fault
