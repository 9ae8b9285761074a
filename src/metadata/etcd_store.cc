#include "metadata/etcd_store.h"

namespace ferry::metadata {

Result<std::unique_ptr<EtcdMetadataStore>> EtcdMetadataStore::Create(const std::string& endpoints,
                                                                     std::string description) {
  if (description.empty()) description = "etcd://" + endpoints;
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<EtcdClient> client, EtcdClient::Create(endpoints));
  return std::unique_ptr<EtcdMetadataStore>(
      new EtcdMetadataStore(std::move(client), std::move(description)));
}

Status EtcdMetadataStore::Put(const std::string& key, const std::string& value, Deadline deadline) {
  return client_->Put(key, value, /*lease=*/0, deadline).status();
}

Result<std::string> EtcdMetadataStore::Get(const std::string& key, Deadline deadline) {
  FERRY_ASSIGN_OR_RETURN(EtcdRange range, client_->Range(key, "", /*limit=*/1, deadline));
  if (range.kvs.empty()) {
    return NotFoundError("no metadata under key '" + key + "' in " + description_);
  }
  return std::move(range.kvs.front().value);
}

Status EtcdMetadataStore::Delete(const std::string& key, Deadline deadline) {
  return client_->DeleteRange(key, "", deadline).status();
}

}  // namespace ferry::metadata
