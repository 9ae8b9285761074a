// BackendCall: one POST from the proxy to a prefill or decode instance, run on a thread it
// owns, whose status line, headers and body chunks the proxy's handler consumes as they
// arrive (SSE is relayed chunk by chunk).
//
//   auto call = BackendCall::Start(backend, "/v1/completions", headers, body, timeouts);
//   if (call->WaitHeaders(deadline, [] { return false; }) == BackendCall::Wait::kHeaders) {
//     ... call->status() ... call->NextChunk(...) ...
//   }
//   call.reset();   // cancels the call if it still runs and joins the thread
//
// Thread safety: all methods may be called from any thread. The destructor stops the
// call (closing its connection, which the backend sees as a client that left) and joins.
#pragma once

#include <httplib.h>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/deadline.h"
#include "common/mutex.h"
#include "proxy/proxy_options.h"

namespace ferry::proxy {

class BackendCall {
 public:
  struct Timeouts {
    std::chrono::milliseconds connect{2000};  // to establish the connection
    std::chrono::milliseconds io{600000};     // per socket read/write
  };

  static std::unique_ptr<BackendCall> Start(const Backend& backend, const std::string& path,
                                            const httplib::Headers& headers, std::string body,
                                            const Timeouts& timeouts);
  ~BackendCall();
  BackendCall(const BackendCall&) = delete;
  BackendCall& operator=(const BackendCall&) = delete;

  enum class Wait {
    kHeaders,   // the status line and headers are here
    kFailed,    // the call ended without an answer (error() says why)
    kTimedOut,  // the deadline passed first
    kGaveUp,    // give_up() returned true first
  };
  // Waits for the answer's headers, checking `give_up` every 100 ms.
  Wait WaitHeaders(Deadline deadline, const std::function<bool()>& give_up);

  // Takes the body chunks that arrived; waits up to `wait` for one. Returns false once the
  // body is complete and nothing is left (then error() tells whether it ended early).
  bool NextChunks(std::chrono::milliseconds wait, std::string* out);
  // Waits (up to `deadline`) for the whole body.
  std::string TakeAll(Deadline deadline);
  // Waits (up to `deadline`) for the call to end; true if it has.
  bool WaitDone(Deadline deadline);

  int status() const;
  std::string content_type() const;
  // The transport error that ended the call early, "" if none.
  std::string error() const;
  // Steady-clock time of the last bytes received from the backend.
  SteadyClock::time_point last_activity() const;
  // Stops the call (connection closed); it then ends with an error soon.
  void Cancel();

 private:
  BackendCall(const Backend& backend, const Timeouts& timeouts);
  void Run(const std::string& path, const httplib::Headers& headers, const std::string& body);

  httplib::Client client_;
  mutable Mutex mu_;
  CondVar cv_;
  bool have_headers_ FERRY_GUARDED_BY(mu_) = false;
  int status_ FERRY_GUARDED_BY(mu_) = 0;
  std::string content_type_ FERRY_GUARDED_BY(mu_);
  std::deque<std::string> chunks_ FERRY_GUARDED_BY(mu_);
  bool done_ FERRY_GUARDED_BY(mu_) = false;
  std::string error_ FERRY_GUARDED_BY(mu_);
  bool cancelled_ FERRY_GUARDED_BY(mu_) = false;
  SteadyClock::time_point last_activity_ FERRY_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace ferry::proxy
