#include "transfer/fault/fault_transport.h"

#include <charconv>
#include <cstdlib>
#include <utility>

#include "common/mutex.h"

namespace ferry::transfer::fault {
namespace {

Status ParseProbability(const std::string& key, const std::string& v, double* out) {
  char* end = nullptr;
  double p = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || !(p >= 0 && p <= 1)) {
    return InvalidArgumentError("fault transport: " + key +
                                " must be a probability in [0,1], got '" + v + "'");
  }
  *out = p;
  return OkStatus();
}

Status ParseUint(const std::string& key, const std::string& v, uint64_t* out) {
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), *out);
  if (v.empty() || ec != std::errc() || ptr != v.data() + v.size()) {
    return InvalidArgumentError("fault transport: " + key +
                                " must be a non-negative integer, got '" + v + "'");
  }
  return OkStatus();
}

}  // namespace

Status ParseFaultOptions(const TransportOptions& options, FaultSettings* settings,
                         std::string* inner, TransportOptions* inner_options) {
  *inner_options = options;
  inner_options->extra.clear();
  inner->clear();
  for (const auto& [k, v] : options.extra) {
    if (k == "inner") {
      *inner = v;
    } else if (k == "drop") {
      FERRY_RETURN_IF_ERROR(ParseProbability(k, v, &settings->drop));
    } else if (k == "corrupt") {
      FERRY_RETURN_IF_ERROR(ParseProbability(k, v, &settings->corrupt));
    } else if (k == "delay_ms") {
      uint64_t ms = 0;
      FERRY_RETURN_IF_ERROR(ParseUint(k, v, &ms));
      if (ms > 3'600'000) return InvalidArgumentError("fault transport: delay_ms above one hour");
      settings->delay_ms = static_cast<int64_t>(ms);
    } else if (k == "kill_after_bytes") {
      uint64_t n = 0;
      FERRY_RETURN_IF_ERROR(ParseUint(k, v, &n));
      settings->kill_after_bytes = n;
    } else if (k == "seed") {
      FERRY_RETURN_IF_ERROR(ParseUint(k, v, &settings->seed));
    } else {
      inner_options->extra.emplace_back(k, v);
    }
  }
  if (inner->empty()) {
    return InvalidArgumentError("fault transport needs an inner transport: use 'fault:tcp'");
  }
  if (*inner == "fault" || inner->rfind("fault:", 0) == 0) {
    return InvalidArgumentError("fault transport cannot wrap itself");
  }
  return OkStatus();
}

Result<std::unique_ptr<FaultTransport>> FaultTransport::Create(const TransportOptions& options,
                                                               TransportHost* host) {
  FaultSettings settings;
  std::string inner_name;
  TransportOptions inner_options;
  FERRY_RETURN_IF_ERROR(ParseFaultOptions(options, &settings, &inner_name, &inner_options));
  auto inner = TransportRegistry::Create(inner_name, inner_options, host);
  if (!inner.ok())
    return inner.status().WithContext("fault transport's inner '" + inner_name + "'");
  return std::make_unique<FaultTransport>(std::move(*inner), settings);
}

FaultTransport::FaultTransport(std::unique_ptr<Transport> inner, const FaultSettings& settings)
    : name_("fault:" + std::string(inner->name())),
      settings_(settings),
      inner_(std::move(inner)),
      rng_(settings.seed) {
  if (settings_.delay_ms > 0) delay_thread_ = std::thread([this] { DelayLoop(); });
}

FaultTransport::~FaultTransport() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  cv_.SignalAll();
  if (delay_thread_.joinable()) delay_thread_.join();
  std::multimap<SteadyClock::time_point, Delayed> left;
  {
    MutexLock lock(&mu_);
    left.swap(delayed_);
  }
  for (auto& [when, d] : left) {
    for (Slice& s : d.slices) s.done(AbortedError("fault transport shut down"));
  }
  inner_.reset();  // fails the inner's pending slices with Aborted
}

std::vector<Slice> FaultTransport::Inject(std::span<Slice> slices) {
  std::vector<Slice> send;
  std::vector<std::pair<Slice, Status>> failed;
  {
    MutexLock lock(&mu_);
    std::uniform_real_distribution<double> coin(0.0, 1.0);
    for (Slice& s : slices) {
      if (!killed_ && settings_.kill_after_bytes &&
          bytes_sent_ + s.length > *settings_.kill_after_bytes) {
        killed_ = true;
      }
      if (killed_) {
        failed.emplace_back(std::move(s), UnavailableError("fault: connection killed after " +
                                                           std::to_string(bytes_sent_) + " bytes"));
        continue;
      }
      if (settings_.drop > 0 && coin(rng_) < settings_.drop) {
        ++dropped_;
        failed.emplace_back(std::move(s), UnavailableError("fault: slice dropped"));
        continue;
      }
      bytes_sent_ += s.length;
      if (settings_.corrupt > 0 && s.length > 0 && coin(rng_) < settings_.corrupt) {
        ++corrupted_;
        size_t at = std::uniform_int_distribution<size_t>(0, s.length - 1)(rng_);
        unsigned char mask = static_cast<unsigned char>(1u << (rng_() % 8));
        if (s.op == TransferOp::kWrite) {
          // Send a corrupted copy; the scratch lives until the slice ends.
          auto scratch = std::make_shared<std::vector<char>>(s.local, s.local + s.length);
          (*scratch)[at] = static_cast<char>((*scratch)[at] ^ mask);
          s.local = scratch->data();
          s.done = [scratch, done = std::move(s.done)](const Status& st) { done(st); };
        } else {
          char* dst = s.local + at;
          s.done = [dst, mask, done = std::move(s.done)](const Status& st) {
            if (st.ok()) *dst = static_cast<char>(*dst ^ mask);
            done(st);
          };
        }
      }
      send.push_back(std::move(s));
    }
  }
  for (auto& [s, st] : failed) s.done(st);
  return send;
}

void FaultTransport::Submit(const SegmentDescriptor& peer, std::span<Slice> slices,
                            Deadline deadline) {
  std::vector<Slice> send = Inject(slices);
  if (send.empty()) return;
  if (settings_.delay_ms <= 0) {
    inner_->Submit(peer, send, deadline);
    return;
  }
  auto release = SteadyClock::now() + std::chrono::milliseconds(settings_.delay_ms);
  {
    MutexLock lock(&mu_);
    if (!stop_) {
      delayed_.emplace(release, Delayed{peer, std::move(send), deadline});
      send.clear();
    }
  }
  for (Slice& s : send) s.done(AbortedError("fault transport shut down"));
  cv_.SignalAll();
}

void FaultTransport::DelayLoop() {
  MutexLock lock(&mu_);
  while (!stop_) {
    if (delayed_.empty()) {
      cv_.Wait(&mu_, [this]() FERRY_REQUIRES(mu_) { return stop_ || !delayed_.empty(); });
      continue;
    }
    auto first = delayed_.begin();
    // Release early if the deadline comes first: the inner transport then fails it in time.
    auto due = std::min(first->first, first->second.deadline.when());
    if (SteadyClock::now() < due) {
      cv_.WaitUntil(&mu_, due);
      continue;
    }
    Delayed d = std::move(first->second);
    delayed_.erase(first);
    lock.Unlock();
    if (d.deadline.Expired()) {
      for (Slice& s : d.slices)
        s.done(DeadlineExceededError("fault: deadline passed during delay"));
    } else {
      inner_->Submit(d.peer, d.slices, d.deadline);
    }
    lock.Lock();
  }
}

void FaultTransport::ForgetPeer(const std::string& peer_name) {
  {
    MutexLock lock(&mu_);
    killed_ = false;
    bytes_sent_ = 0;
  }
  inner_->ForgetPeer(peer_name);
}

uint64_t FaultTransport::dropped() const {
  MutexLock lock(&mu_);
  return dropped_;
}

uint64_t FaultTransport::corrupted() const {
  MutexLock lock(&mu_);
  return corrupted_;
}

Result<std::unique_ptr<Transport>> CreateFaultTransport(const TransportOptions& options,
                                                        TransportHost* host) {
  FERRY_ASSIGN_OR_RETURN(auto t, FaultTransport::Create(options, host));
  return std::unique_ptr<Transport>(std::move(t));
}

}  // namespace ferry::transfer::fault
