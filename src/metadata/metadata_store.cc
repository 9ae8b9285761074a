#include "metadata/metadata_store.h"

#include "metadata/etcd_store.h"
#include "metadata/http_store.h"

namespace ferry::metadata {
namespace {

constexpr char kAcceptedForms[] =
    "expected 'http://host:port/path', 'etcd://host:port[,host:port...]' or a bare "
    "'host:port[,host:port...]' (etcd)";

}  // namespace

Result<std::unique_ptr<MetadataStore>> MetadataStore::Create(const std::string& connection,
                                                             const std::string& secret) {
  if (connection == "P2PHANDSHAKE") {
    return InvalidArgumentError(
        "'P2PHANDSHAKE' is not a metadata store: the transfer engine exchanges segment "
        "descriptors with its peers itself; create no MetadataStore for it");
  }
  if (connection.empty()) {
    return InvalidArgumentError(std::string("empty metadata connection string: ") + kAcceptedForms);
  }
  const size_t scheme_end = connection.find("://");
  if (scheme_end == std::string::npos) {
    // A bare endpoint list means etcd, as in the reference. The port is required here so
    // that a mistyped keyword is not taken for an etcd host name.
    for (size_t start = 0; start <= connection.size();) {
      size_t comma = connection.find(',', start);
      if (comma == std::string::npos) comma = connection.size();
      auto hp = ParseHostPort(std::string_view(connection).substr(start, comma - start));
      if (!hp.ok()) {
        return InvalidArgumentError("bad metadata connection string '" + connection + "' (" +
                                    hp.status().message() + "): " + kAcceptedForms);
      }
      start = comma + 1;
    }
    FERRY_ASSIGN_OR_RETURN(auto store, EtcdMetadataStore::Create(connection, connection));
    return std::unique_ptr<MetadataStore>(std::move(store));
  }
  const std::string scheme = connection.substr(0, scheme_end);
  if (scheme == "http") {
    FERRY_ASSIGN_OR_RETURN(auto store, HttpMetadataStore::Create(connection, secret));
    return std::unique_ptr<MetadataStore>(std::move(store));
  }
  if (scheme == "etcd") {
    std::string endpoints = connection.substr(scheme_end + 3);
    if (endpoints.find('/') != std::string::npos) {
      return InvalidArgumentError("bad metadata connection string '" + connection +
                                  "': etcd endpoints take no path; " + kAcceptedForms);
    }
    FERRY_ASSIGN_OR_RETURN(auto store, EtcdMetadataStore::Create(endpoints, connection));
    return std::unique_ptr<MetadataStore>(std::move(store));
  }
  return InvalidArgumentError("unsupported metadata scheme '" + scheme + "' in '" + connection +
                              "': " + kAcceptedForms + ", or 'P2PHANDSHAKE' for the engine");
}

}  // namespace ferry::metadata
