// HttpMetadataStore: a MetadataStore client of Mooncake's HTTP metadata contract.
//
//   FERRY_ASSIGN_OR_RETURN(auto store,
//                          HttpMetadataStore::Create("http://127.0.0.1:8080/metadata"));
//   FERRY_RETURN_IF_ERROR(store->Put("ferry/segments/127.0.0.1:17000", json, deadline));
//
// The contract (Mooncake's example http-metadata-server, and `ferry metadata-server`):
//   GET    <path>?key=<K>          200 + value as body, 404 when absent
//   PUT    <path>?key=<K>  body=V  200 (stores V, replacing any value)
//   DELETE <path>?key=<K>          200 (also when absent)
// K is percent-encoded (RFC 3986 unreserved characters stay as they are).
//
// Each call opens one connection, bounded by its deadline, and closes it: metadata
// traffic is control-plane and rare, and this keeps calls from different threads
// independent. With a secret every request carries an X-Ferry-Auth tag (message_auth.h,
// channel "metadata"), which `ferry metadata-server --secret` requires; replies are not
// authenticated here because what is stored authenticates itself (the transfer engine
// signs its descriptors). Replies over kMaxValueBytes fail. Thread-safe.
#pragma once

#include <memory>
#include <string>

#include "common/host_port.h"
#include "common/message_auth.h"
#include "http/http_client_call.h"
#include "metadata/metadata_store.h"

namespace ferry::metadata {

class HttpMetadataStore final : public MetadataStore {
 public:
  // `url` is "http://host:port[/path]"; the port defaults to 80 and the path to "/" (as a
  // plain curl request to the URL would). Errors: InvalidArgument for another scheme, a
  // malformed host:port, or a path with '?' or '#'. Contacts nothing.
  static Result<std::unique_ptr<HttpMetadataStore>> Create(const std::string& url,
                                                           const std::string& secret = "");

  // Errors: Unavailable (refused, reset, HTTP 5xx), DeadlineExceeded, Internal for an
  // unexpected HTTP status.
  Status Put(const std::string& key, const std::string& value, Deadline deadline) override;
  // Errors: NotFound on HTTP 404; otherwise as Put.
  Result<std::string> Get(const std::string& key, Deadline deadline) override;
  // HTTP 200 and 404 are both OK. Errors: as Put.
  Status Delete(const std::string& key, Deadline deadline) override;

  std::string Describe() const override { return url_; }

 private:
  HttpMetadataStore(std::string url, HostPort server, std::string path, const std::string& secret)
      : url_(std::move(url)),
        server_(std::move(server)),
        path_(std::move(path)),
        auth_(secret, "metadata") {}

  // "<path>?key=<percent-encoded key>".
  std::string Target(const std::string& key) const;
  // Sends one request (signed with a secret), reading at most kMaxValueBytes of reply.
  Result<http::CallReply> Call(const std::string& method, const std::string& target,
                               const std::string& body, Deadline deadline, const std::string& what);

  const std::string url_;
  const HostPort server_;
  const std::string path_;
  MessageAuth auth_;
};

}  // namespace ferry::metadata
