// MetadataStore: a small key-value interface over the metadata services that segment
// descriptors are published to.
//
//   FERRY_ASSIGN_OR_RETURN(auto store, MetadataStore::Create("etcd://127.0.0.1:2379"));
//   FERRY_RETURN_IF_ERROR(store->Put("ferry/segments/10.0.0.2:17000", json, deadline));
//   FERRY_ASSIGN_OR_RETURN(std::string v, store->Get("ferry/segments/10.0.0.2:17000", deadline));
//
// Connection strings:
//   "http://host:port/path"     GET/PUT/DELETE path?key=K (Mooncake's HTTP metadata contract;
//                               `ferry metadata-server` serves it)
//   "etcd://host:port[,host:port...]"  etcd v3 through its HTTP/JSON gateway (/v3/kv/...)
//   "host:port"                 same as etcd:// (what the reference accepts)
// "P2PHANDSHAKE" is not a store: the engine asks peers directly; Create rejects it.
//
// Thread safety: all methods are thread-safe. Every call takes a deadline, and no reply
// is read past kMaxValueBytes.
#pragma once

#include <memory>
#include <string>

#include "common/deadline.h"
#include "ferry/status.h"

namespace ferry::metadata {

class MetadataStore {
 public:
  virtual ~MetadataStore() = default;

  // `secret`: the deployment's shared secret; an http:// store then signs every request
  // for a `ferry metadata-server --secret` (and checks its replies). Default: "" (none).
  // Errors: InvalidArgument for an unknown scheme or malformed address.
  static Result<std::unique_ptr<MetadataStore>> Create(const std::string& connection,
                                                       const std::string& secret = "");

  // Stores value under key, replacing any. Errors: Unavailable / DeadlineExceeded.
  virtual Status Put(const std::string& key, const std::string& value, Deadline deadline) = 0;
  // Errors: NotFound if the key is absent; Unavailable / DeadlineExceeded.
  virtual Result<std::string> Get(const std::string& key, Deadline deadline) = 0;
  // Deleting an absent key is OK. Errors: Unavailable / DeadlineExceeded.
  virtual Status Delete(const std::string& key, Deadline deadline) = 0;

  // The connection string it was created from.
  virtual std::string Describe() const = 0;
};

// Largest value stored or read (a reply over it fails the call).
inline constexpr size_t kMaxValueBytes = 16u << 20;

// Key under which an engine publishes its segment descriptor.
inline std::string SegmentKey(const std::string& segment_name) {
  return "ferry/segments/" + segment_name;
}

}  // namespace ferry::metadata
