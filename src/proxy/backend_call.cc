#include "proxy/backend_call.h"

#include "common/mutex.h"
#include "http/http_client_timeouts.h"

namespace ferry::proxy {

BackendCall::BackendCall(const Backend& backend, const Timeouts& timeouts)
    : client_(backend.host, backend.port), last_activity_(SteadyClock::now()) {
  http::SetTimeouts(client_, timeouts.connect, timeouts.io);
}

std::unique_ptr<BackendCall> BackendCall::Start(const Backend& backend, const std::string& path,
                                                const httplib::Headers& headers, std::string body,
                                                const Timeouts& timeouts) {
  std::unique_ptr<BackendCall> call(new BackendCall(backend, timeouts));
  BackendCall* c = call.get();
  call->thread_ =
      std::thread([c, path, headers, body = std::move(body)] { c->Run(path, headers, body); });
  return call;
}

BackendCall::~BackendCall() {
  Cancel();
  if (thread_.joinable()) thread_.join();
}

void BackendCall::Cancel() {
  {
    MutexLock lock(&mu_);
    if (done_ || cancelled_) return;
    cancelled_ = true;
  }
  client_.stop();
}

void BackendCall::Run(const std::string& path, const httplib::Headers& headers,
                      const std::string& body) {
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.headers = headers;
  req.body = body;
  req.set_header("Content-Type", "application/json");
  req.response_handler = [this](const httplib::Response& r) {
    MutexLock lock(&mu_);
    have_headers_ = true;
    status_ = r.status;
    content_type_ = r.get_header_value("Content-Type");
    last_activity_ = SteadyClock::now();
    cv_.SignalAll();
    return !cancelled_;
  };
  req.content_receiver = [this](const char* data, size_t n, uint64_t, uint64_t) {
    MutexLock lock(&mu_);
    chunks_.emplace_back(data, n);
    last_activity_ = SteadyClock::now();
    cv_.SignalAll();
    return !cancelled_;
  };
  auto r = client_.send(req);
  MutexLock lock(&mu_);
  if (!r) error_ = cancelled_ ? "cancelled" : httplib::to_string(r.error());
  done_ = true;
  cv_.SignalAll();
}

BackendCall::Wait BackendCall::WaitHeaders(Deadline deadline,
                                           const std::function<bool()>& give_up) {
  MutexLock lock(&mu_);
  while (true) {
    if (have_headers_) return Wait::kHeaders;
    if (done_) return Wait::kFailed;
    if (deadline.Expired()) return Wait::kTimedOut;
    lock.Unlock();
    const bool stop = give_up && give_up();
    lock.Lock();
    if (stop && !have_headers_ && !done_) return Wait::kGaveUp;
    cv_.WaitFor(&mu_, std::min<std::chrono::nanoseconds>(deadline.Remaining(),
                                                         std::chrono::milliseconds(100)));
  }
}

bool BackendCall::NextChunks(std::chrono::milliseconds wait, std::string* out) {
  out->clear();
  MutexLock lock(&mu_);
  cv_.WaitFor(&mu_, wait, [&]() FERRY_REQUIRES(mu_) { return !chunks_.empty() || done_; });
  while (!chunks_.empty()) {
    *out += chunks_.front();
    chunks_.pop_front();
  }
  return !out->empty() || !done_;
}

std::string BackendCall::TakeAll(Deadline deadline) {
  MutexLock lock(&mu_);
  while (!done_ && !deadline.Expired()) {
    cv_.WaitFor(&mu_, std::min<std::chrono::nanoseconds>(deadline.Remaining(),
                                                         std::chrono::milliseconds(100)));
  }
  std::string body;
  for (auto& c : chunks_) body += c;
  chunks_.clear();
  return body;
}

bool BackendCall::WaitDone(Deadline deadline) {
  MutexLock lock(&mu_);
  while (!done_ && !deadline.Expired()) {
    cv_.WaitFor(&mu_, std::min<std::chrono::nanoseconds>(deadline.Remaining(),
                                                         std::chrono::milliseconds(100)));
  }
  return done_;
}

int BackendCall::status() const {
  MutexLock lock(&mu_);
  return status_;
}

std::string BackendCall::content_type() const {
  MutexLock lock(&mu_);
  return content_type_;
}

std::string BackendCall::error() const {
  MutexLock lock(&mu_);
  return error_;
}

SteadyClock::time_point BackendCall::last_activity() const {
  MutexLock lock(&mu_);
  return last_activity_;
}

}  // namespace ferry::proxy
