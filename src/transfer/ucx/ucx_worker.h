// UcxWorker: the ucx transport's UCX state and the one thread that makes every UCX call.
//
// It owns one ucp_context (RMA + WAKEUP) and one ucp_worker. Callers hand it work through a
// mutex-protected queue and wake it with ucp_worker_signal; its progress thread drains the
// queue, posts the RMA operations, progresses the worker (busy-polling briefly while
// requests are in flight, then arming the worker's wake-up fd and sleeping in epoll with a
// bounded timeout for deadline sweeps) and completes slices. The context and worker are
// created before the thread starts and destroyed after it has been joined.
//
//   FERRY_ASSIGN_OR_RETURN(auto w, UcxWorker::Create(settings, on_refused));
//   FERRY_ASSIGN_OR_RETURN(std::string info_json, w->SetLocalBuffers(buffers, deadline));
//   w->Submit(peer, std::move(slices), deadline);   // each slice's done() runs once
//
// Initiator side: one endpoint per peer process (created from the peer's worker address,
// error mode PEER) with the peer's rkeys unpacked on it, refreshed when the peer's
// descriptor version changes. A WRITE is a ucp_put_nbx and completes when the flush posted
// after a submission's puts completes (remote completion); a READ is a ucp_get_nbx and
// completes with it. A submission that misses its deadline while requests are outstanding
// closes its endpoint forcibly (so UCX cannot touch the memory later), after which every
// unfinished slice on that endpoint fails (DeadlineExceeded for expired ones, Unavailable
// for the others); the next submission makes a new endpoint. An endpoint error (the peer
// died) fails its slices with Unavailable.
//
// Target side: SetLocalBuffers maps the engine's registered buffers with ucp_mem_map (no
// allocation), packs their rkeys, unmaps those no longer registered, and returns the
// UcxPeerInfo JSON to publish. A registered buffer that Allocate made keeps the memory
// handle of its allocation (UCX memory: shared memory for same-host peers), which lives
// until Free.
//
// Thread safety: all public methods are thread-safe. Slice callbacks run on the progress
// thread. The destructor fails queued and in-flight slices with Aborted, closes every
// endpoint, unmaps all memory (freeing what Allocate made) and joins the thread.
#pragma once

#include <ucp/api/ucp.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "transfer/transport.h"
#include "transfer/ucx/ucx_peer_info.h"
#include "transfer/ucx/ucx_settings.h"

namespace ferry::transfer::ucx {

// Monotonic counters of one ucx transport (initiator side).
struct UcxCounters {
  uint64_t bytes_written = 0;  // WRITE bytes completed
  uint64_t bytes_read = 0;     // READ bytes completed
  uint64_t slices_done = 0;    // slices completed OK
  uint64_t slices_failed = 0;  // slices completed with an error
  uint64_t endpoints_created = 0;
  uint64_t endpoint_errors = 0;  // endpoints that failed (peer died, transport error)
  uint64_t deadline_closes = 0;  // endpoints closed forcibly after a missed deadline
};

class UcxWorker {
 public:
  // A peer as the transport identified it: its parsed ucx info, the descriptor version it
  // came with, and its key (name + pid: one endpoint per peer process).
  struct Peer {
    std::string name;
    std::string key;
    uint64_t version = 0;
    std::shared_ptr<const UcxPeerInfo> info;
  };
  // Told (on the progress thread) when a peer cannot be served for a reason other than the
  // data: the endpoint could not be created or its rkeys could not be unpacked.
  using RefuseFn = std::function<void(const Peer& peer, const Status& why)>;

  // Errors: Unavailable when UCX cannot create a context or worker with these settings
  // (no usable transport or device); InvalidArgument when UCX rejects a setting.
  static Result<std::unique_ptr<UcxWorker>> Create(const UcxSettings& settings, RefuseFn refuse);
  ~UcxWorker();
  UcxWorker(const UcxWorker&) = delete;
  UcxWorker& operator=(const UcxWorker&) = delete;

  // Raw bytes of this worker's address (what peers create endpoints from).
  const std::string& address() const { return address_; }

  // Starts `slices` to `peer`; see the class comment for how each completes.
  void Submit(Peer peer, std::vector<Slice> slices, Deadline deadline);
  // Maps exactly the remote-accessible `buffers` (unmapping the others) and returns the
  // UcxPeerInfo JSON that describes them. Blocks until the progress thread has done it.
  // A buffer UCX cannot map is left out (logged). Errors: DeadlineExceeded, Aborted
  // (shutting down).
  Result<std::string> SetLocalBuffers(std::vector<BufferDescriptor> buffers, Deadline deadline);
  // Closes the endpoints to every process named `name` (their unfinished slices fail with
  // Unavailable).
  void ForgetPeer(const std::string& name);
  // Allocates `length` bytes with ucp_mem_map(UCP_MEM_MAP_ALLOCATE): UCX's first
  // allocation method that works (shared memory, then huge pages, then mmap; see
  // UCX_ALLOC_PRIO), registered with every memory domain (an RDMA NIC pins it). Not
  // necessarily zeroed. Blocks until the progress thread
  // has done it. Errors: Unavailable (UCX cannot allocate, or the memory is not
  // page-aligned), DeadlineExceeded, Aborted.
  Result<void*> Allocate(size_t length, Deadline deadline);
  // Frees memory of Allocate. Errors: NotFound, FailedPrecondition (still mapped as a
  // registered buffer: SetLocalBuffers without it first), DeadlineExceeded, Aborted.
  Status Free(void* addr, Deadline deadline);

  UcxCounters counters() const;

 private:
  struct Conn;
  struct Group;
  struct Op;
  struct LocalMap {
    uint64_t length = 0;
    ucp_mem_h memh = nullptr;
    bool allocated = false;  // memh belongs to allocated_ (not unmapped with this entry)
    std::string rkey;        // packed
  };
  struct Allocation {
    uint64_t length = 0;
    ucp_mem_h memh = nullptr;
  };
  using Task = std::function<void(bool aborted)>;

  UcxWorker(ucp_context_h context, ucp_worker_h worker, int epoll_fd, std::string address,
            const UcxSettings& settings, RefuseFn refuse);
  void Post(Task task);
  // Runs `fn` on the progress thread and waits for its result until `deadline`
  // (DeadlineExceeded naming `what`; Aborted when shutting down).
  template <typename T>
  Result<T> RunOnThread(std::function<Result<T>()> fn, Deadline deadline, const char* what);
  void Loop();
  void Shutdown();

  // Progress-thread only from here on.
  void StartGroup(Peer& peer, std::vector<Slice>& slices, Deadline deadline);
  Result<Conn*> ConnFor(const Peer& peer);
  Status UnpackRkeys(Conn* conn, const Peer& peer);
  void PostSlice(Group* g, size_t i);
  void Complete(Group* g, size_t i, const Status& s);
  void OpDone(Op* op, ucs_status_t status);
  // Closes conn's endpoint forcibly, then fails its unfinished slices with `why` (those of
  // expired submissions with DeadlineExceeded) and destroys its rkeys.
  void FailConn(uint64_t conn_id, const Status& why);
  void SweepDeadlines();
  void ReapGroups();
  Result<std::string> Remap(const std::vector<BufferDescriptor>& buffers);
  void DestroyRkeys(std::vector<ucp_rkey_h>& rkeys);
  static void OnOpComplete(void* request, ucs_status_t status, void* user_data);
  static void OnEndpointError(void* arg, ucp_ep_h ep, ucs_status_t status);

  ucp_context_h context_;
  ucp_worker_h worker_;
  const int epoll_fd_;  // ours; it watches the worker's wake-up fd (owned by UCX)
  const std::string address_;
  const std::chrono::microseconds busy_poll_;
  const bool peer_errors_;
  const RefuseFn refuse_;

  Mutex mu_;
  std::deque<Task> queue_ FERRY_GUARDED_BY(mu_);
  bool stop_ FERRY_GUARDED_BY(mu_) = false;
  bool sleeping_ FERRY_GUARDED_BY(mu_) = false;  // the thread is (about to be) in epoll_wait

  struct AtomicCounters {
    std::atomic<uint64_t> bytes_written{0}, bytes_read{0}, slices_done{0}, slices_failed{0},
        endpoints_created{0}, endpoint_errors{0}, deadline_closes{0};
  };
  AtomicCounters counters_;

  // Progress-thread state.
  std::map<std::string, std::unique_ptr<Conn>> conns_;  // by peer key
  uint64_t next_conn_id_ = 1;
  std::vector<uint64_t> failed_conns_;  // endpoint errors not yet handled (conn ids)
  std::list<std::unique_ptr<Group>> groups_;
  size_t unfinished_groups_ = 0;              // groups with slices not yet completed
  std::vector<void*> closing_;                // ep close requests still in progress
  std::map<uint64_t, LocalMap> local_;        // mapped buffers by addr
  std::map<uint64_t, Allocation> allocated_;  // memory of Allocate by addr

  std::thread thread_;  // last: starts after everything above exists
};

}  // namespace ferry::transfer::ucx
