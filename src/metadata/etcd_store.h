// EtcdMetadataStore: a MetadataStore over etcd v3's HTTP/JSON gateway (etcd >= 3.4).
//
//   FERRY_ASSIGN_OR_RETURN(auto store,
//                          EtcdMetadataStore::Create("127.0.0.1:2379,127.0.0.1:22379"));
//   FERRY_ASSIGN_OR_RETURN(std::string v, store->Get(SegmentKey("10.0.0.2:17000"), deadline));
//
// Requests (keys and values base64-encoded, as the gateway requires):
//   POST /v3/kv/put          {"key": K, "value": V}
//   POST /v3/kv/range        {"key": K}            -> {"kvs": [{"value": V, ...}]} or no kvs
//   POST /v3/kv/deleterange  {"key": K}
//
// A thin wrapper over EtcdClient (etcd_client.h), which does the HTTP: endpoints are tried
// in order starting from the last one that answered; a request moves on to the next
// endpoint only when it could not connect (nothing reached the server), so a write is
// never sent twice. The connect timeout for each try is the time left divided by the
// endpoints not yet tried. One connection per call. Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/host_port.h"
#include "metadata/etcd_client.h"
#include "metadata/metadata_store.h"

namespace ferry::metadata {

class EtcdMetadataStore final : public MetadataStore {
 public:
  // `endpoints` is "host:port[,host:port...]" as EtcdClient::Create takes it (the port
  // defaults to 2379); `description` is what Describe() returns (the caller's connection
  // string). Errors: InvalidArgument for an empty list or a malformed endpoint. Contacts
  // nothing.
  static Result<std::unique_ptr<EtcdMetadataStore>> Create(const std::string& endpoints,
                                                           std::string description = "");

  // Errors: Unavailable when no endpoint can be reached, on HTTP 5xx or a reply that is
  // not etcd's JSON; DeadlineExceeded; otherwise the gRPC code etcd reports.
  Status Put(const std::string& key, const std::string& value, Deadline deadline) override;
  // Errors: NotFound when the key is absent; otherwise as Put.
  Result<std::string> Get(const std::string& key, Deadline deadline) override;
  // Deleting an absent key is OK. Errors: as Put.
  Status Delete(const std::string& key, Deadline deadline) override;

  std::string Describe() const override { return description_; }

  const std::vector<HostPort>& endpoints() const { return client_->endpoints(); }

 private:
  EtcdMetadataStore(std::unique_ptr<EtcdClient> client, std::string description)
      : client_(std::move(client)), description_(std::move(description)) {}

  const std::unique_ptr<EtcdClient> client_;
  const std::string description_;
};

}  // namespace ferry::metadata
