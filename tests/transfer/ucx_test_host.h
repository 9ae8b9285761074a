// UcxTestHost: the engine side of a process as far as the ucx transport needs it (its
// descriptor with the buffers a test registers and what the transport adds), for the ucx
// tests and their peer process. Thread-safe.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "transfer/transport.h"

namespace ferry::transfer::ucx {

class UcxTestHost : public TransportHost {
 public:
  explicit UcxTestHost(std::string name) : name_(std::move(name)) {}

  SegmentDescriptor LocalDescriptor() const override {
    SegmentDescriptor d;
    const Transport* t = nullptr;
    {
      std::lock_guard lock(mu_);
      d.name = name_;
      d.pid = ::getpid();
      d.transports = {"tcp", "ucx"};
      d.version = version_;
      d.buffers = buffers_;
      t = transport_;
    }
    if (t != nullptr) t->DescribeLocal(&d);
    return d;
  }
  Status CheckInboundRange(uint64_t, uint64_t) const override { return OkStatus(); }
  void DeliverNotification(Notification) override {}
  void CountInbound(TransferOp, uint64_t) override {}
  void CountRejected() override {}

  void set_transport(Transport* t) {
    std::lock_guard lock(mu_);
    transport_ = t;
  }
  // Registers [p, p + n) and tells the transport, as the engine does.
  void Register(const void* p, size_t n) {
    Transport* t = nullptr;
    {
      std::lock_guard lock(mu_);
      buffers_.push_back({reinterpret_cast<uintptr_t>(p), n, "cpu", true});
      std::sort(buffers_.begin(), buffers_.end(),
                [](const auto& a, const auto& b) { return a.addr < b.addr; });
      ++version_;
      t = transport_;
    }
    if (t != nullptr) t->LocalMemoryChanged();
  }
  void Unregister(const void* p) {
    Transport* t = nullptr;
    {
      std::lock_guard lock(mu_);
      std::erase_if(buffers_,
                    [&](const auto& b) { return b.addr == reinterpret_cast<uintptr_t>(p); });
      ++version_;
      t = transport_;
    }
    if (t != nullptr) t->LocalMemoryChanged();
  }

 private:
  const std::string name_;
  mutable std::mutex mu_;
  std::vector<BufferDescriptor> buffers_;  // GUARDED_BY(mu_)
  uint64_t version_ = 1;                   // GUARDED_BY(mu_)
  Transport* transport_ = nullptr;         // GUARDED_BY(mu_)
};

}  // namespace ferry::transfer::ucx
