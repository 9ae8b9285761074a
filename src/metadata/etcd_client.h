// EtcdClient: the parts of etcd's v3 API that leader election and a replicated log need
// (ranges with pagination, transactions with compares, leases, watches, compaction), over
// etcd's HTTP/JSON gateway (etcd >= 3.4; Debian 12 ships 3.4). Keys and values are bytes;
// the client base64-encodes them as the gateway requires.
//
//   FERRY_ASSIGN_OR_RETURN(auto etcd, EtcdClient::Create("127.0.0.1:2379;127.0.0.1:22379"));
//   FERRY_ASSIGN_OR_RETURN(EtcdLease lease, etcd->LeaseGrant(std::chrono::seconds(2), deadline));
//   EtcdTxn txn;
//   txn.compares.push_back(EtcdCompare::CreateRevision("/leader", EtcdCompare::kEqual, 0));
//   txn.success.push_back(EtcdOp::Put("/leader", "me", lease.id));
//   FERRY_ASSIGN_OR_RETURN(EtcdTxnResult won, etcd->Txn(txn, deadline));
//
// Endpoints: "host:port" entries separated by ',' or ';' (Mooncake writes
// "etcd://h1:2379;h2:2379"), each optionally with an "etcd://" or "http://" scheme; the port
// defaults to 2379. A call starts at the endpoint that answered last and moves to the next
// only when it could not connect (nothing reached the server), so a write is never sent
// twice. Every call has a deadline; replies are parsed with size and depth limits
// (common/json_limits.h) and checked (a reply that is not etcd's JSON is Unavailable).
//
// Errors: Unavailable when no endpoint answers (or on HTTP 5xx / a reply that is not etcd's
// JSON), DeadlineExceeded, otherwise the gRPC code etcd reports (e.g. NotFound for an
// unknown lease, OutOfRange for a compacted revision).
//
// Thread-safe; one HTTP connection per call (watches hold their own).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/deadline.h"
#include "common/host_port.h"
#include "ferry/status.h"

namespace ferry::metadata {

struct EtcdKeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;  // 0: none
};

struct EtcdCompare {
  enum Target { kCreateRevision, kModRevision, kVersion, kValue, kLease };
  enum Op { kEqual, kNotEqual, kGreater, kLess };
  std::string key;
  Target target = kCreateRevision;
  Op op = kEqual;
  int64_t number = 0;  // for every target but kValue
  std::string value;   // for kValue

  static EtcdCompare CreateRevision(std::string key, Op op, int64_t revision);
  static EtcdCompare Value(std::string key, Op op, std::string value);
};

struct EtcdOp {
  enum Type { kPut, kDeleteRange, kRange };
  Type type = kPut;
  std::string key;
  std::string range_end;  // kDeleteRange / kRange: "" = only `key`
  std::string value;      // kPut
  int64_t lease = 0;      // kPut: 0 = none

  static EtcdOp Put(std::string key, std::string value, int64_t lease = 0);
  static EtcdOp Delete(std::string key, std::string range_end = "");
  static EtcdOp Get(std::string key, std::string range_end = "");
};

struct EtcdTxn {
  std::vector<EtcdCompare> compares;
  std::vector<EtcdOp> success;
  std::vector<EtcdOp> failure;
};

struct EtcdTxnResult {
  bool succeeded = false;
  int64_t revision = 0;  // the store's revision after the txn
  // One entry per op of the branch that ran, in order: the keys a kRange op read (other
  // ops: empty).
  std::vector<std::vector<EtcdKeyValue>> ranges;
};

struct EtcdRange {
  std::vector<EtcdKeyValue> kvs;  // sorted by key, ascending
  bool more = false;              // the limit cut the range short
  int64_t revision = 0;           // the store's revision the range was read at
};

struct EtcdLease {
  int64_t id = 0;
  std::chrono::seconds ttl{0};  // as granted
};

struct EtcdWatchEvent {
  enum Type { kPut, kDelete };
  Type type = kPut;
  EtcdKeyValue kv;  // for kDelete: key and mod_revision only
};

// A running watch; destroying it cancels the watch and joins its thread (promptly: it does
// not wait for the next event).
class EtcdWatch {
 public:
  virtual ~EtcdWatch() = default;
};

class EtcdClient {
 public:
  // Errors: InvalidArgument for an empty list or a malformed endpoint. Contacts nothing.
  static Result<std::unique_ptr<EtcdClient>> Create(const std::string& endpoints);
  ~EtcdClient();

  // The end of the range of every key starting with `prefix` (etcd's range_end).
  static std::string PrefixEnd(std::string_view prefix);

  // Keys in [key, range_end) ("" range_end: just `key`), at most `limit` (0: no limit), at
  // `revision` (0: the newest).
  Result<EtcdRange> Range(const std::string& key, const std::string& range_end, int64_t limit,
                          Deadline deadline, int64_t revision = 0);
  // Returns the store's revision after the put.
  Result<int64_t> Put(const std::string& key, const std::string& value, int64_t lease,
                      Deadline deadline);
  // Returns how many keys were deleted.
  Result<int64_t> DeleteRange(const std::string& key, const std::string& range_end,
                              Deadline deadline);
  Result<EtcdTxnResult> Txn(const EtcdTxn& txn, Deadline deadline);

  // Leases (whole seconds, as etcd keeps them; etcd raises a TTL below its minimum, about
  // 2 s, to that minimum: EtcdLease::ttl says what was granted).
  Result<EtcdLease> LeaseGrant(std::chrono::seconds ttl, Deadline deadline);
  // One keep-alive; returns the TTL the lease has again. NotFound when the lease has
  // expired or was revoked.
  Result<std::chrono::seconds> LeaseKeepAlive(int64_t lease_id, Deadline deadline);
  Status LeaseRevoke(int64_t lease_id, Deadline deadline);

  // Drops the history before `revision` (keys stay). OutOfRange when already compacted.
  Status Compact(int64_t revision, Deadline deadline);

  // Watches [key, range_end) from `start_revision` (0: from now). `on_events` is called on
  // the watch's own thread, in revision order, with each batch etcd sends and the store's
  // revision etcd reported with it (>= the batch's last mod_revision). When the stream
  // breaks the watch reconnects (to any endpoint) and resumes after the last revision it
  // delivered, so no event is lost or repeated; `on_error` (may be empty) is told of each
  // break. When the resume revision has been compacted, `on_error` gets OutOfRange and the
  // watch resumes from the newest revision (the caller re-reads the keys). Errors:
  // InvalidArgument when `on_events` is empty; etcd is contacted on the watch's thread, so
  // an unreachable etcd is reported to `on_error`, not here.
  Result<std::unique_ptr<EtcdWatch>> Watch(
      const std::string& key, const std::string& range_end, int64_t start_revision,
      std::function<void(const std::vector<EtcdWatchEvent>&, int64_t revision)> on_events,
      std::function<void(const Status&)> on_error);

  const std::vector<HostPort>& endpoints() const;
  // The endpoints as "etcd://h1:2379;h2:2379".
  std::string Describe() const;

 private:
  struct Impl;
  explicit EtcdClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferry::metadata
