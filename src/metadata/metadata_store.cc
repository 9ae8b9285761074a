#include "metadata/metadata_store.h"

namespace ferry::metadata {

// Placeholder until the HTTP and etcd backends land (issue 2, metadata part).
Result<std::unique_ptr<MetadataStore>> MetadataStore::Create(const std::string& connection) {
  return UnimplementedError("metadata backend for '" + connection + "' is not built yet");
}

}  // namespace ferry::metadata
