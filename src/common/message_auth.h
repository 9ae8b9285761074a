// MessageAuth: authenticates the control messages of one channel (side channel, bootstrap
// server, metadata server, ...) with the deployment's shared secret.
//
// A sender tags each request with Sign(); the tag carries the sender's wall-clock time, a
// random nonce and an HMAC-SHA256 over the channel name, the time, the nonce and the
// message. A receiver's Verify() refuses a tag whose MAC does not match (forged, or another
// secret), whose time is more than max_skew away from its own clock (stale), or whose nonce
// it has seen within that window (replayed). A reply is bound to its request's nonce
// (SignReply / VerifyReply), so that neither a reply nor a request can be replayed in
// another exchange.
//
// Example:
//   std::string secret = "s3cret", payload = "request", reply = "answer";
//   MessageAuth auth(secret, "side-channel");       // sender
//   MessageAuth peer_auth(secret, "side-channel");  // receiver
//   AuthTag tag = auth.Sign(payload);
//   Status ok = peer_auth.Verify(payload, tag);  // PermissionDenied if bad
//   std::string mac = peer_auth.SignReply(tag.nonce, reply);
//   Status r = auth.VerifyReply(tag.nonce, reply, mac);
//
// With an empty secret the object is disabled: Sign returns an empty tag and every Verify
// succeeds, so callers need no second code path (they check enabled() only to decide
// whether to put a tag on the wire).
//
// Thread safety: all methods are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>

#include "common/mutex.h"
#include "ferry/status.h"

namespace ferry {

struct AuthTag {
  int64_t unix_ms = 0;  // sender's wall clock
  std::string nonce;    // 32 hex characters
  std::string mac;      // 64 hex characters

  // "v1:<unix_ms>:<nonce>:<mac>", e.g. for an HTTP header.
  std::string ToString() const;
  // Errors: InvalidArgument for anything but the form above.
  static Result<AuthTag> Parse(std::string_view text);
};

class MessageAuth {
 public:
  struct Options {
    // Largest accepted difference between the sender's clock and ours. Default: 60 s.
    std::chrono::milliseconds max_skew{60000};
    // Most nonces remembered at once; beyond it Verify refuses (ResourceExhausted) until
    // old ones expire. Only messages with a valid MAC are remembered. Default: 1,000,000.
    size_t max_remembered = 1000000;
  };

  MessageAuth(std::string secret, std::string channel) : MessageAuth(secret, channel, Options{}) {}
  MessageAuth(std::string secret, std::string channel, Options options);
  MessageAuth(const MessageAuth&) = delete;
  MessageAuth& operator=(const MessageAuth&) = delete;

  bool enabled() const { return !secret_.empty(); }
  const std::string& channel() const { return channel_; }

  // Tags `message` (empty tag when disabled).
  AuthTag Sign(std::string_view message) const;
  // OK when disabled, or when the tag is genuine, fresh and not seen before (its nonce is
  // then remembered). Errors: PermissionDenied naming why (the message is to be refused).
  Status Verify(std::string_view message, const AuthTag& tag);

  // MAC (hex) of a reply to the request whose tag had `request_nonce` ("" when disabled).
  std::string SignReply(std::string_view request_nonce, std::string_view reply) const;
  // OK when disabled or when `mac_hex` is SignReply's. Errors: PermissionDenied.
  Status VerifyReply(std::string_view request_nonce, std::string_view reply,
                     std::string_view mac_hex) const;

  // Messages refused by Verify / VerifyReply so far.
  uint64_t refused() const;

 private:
  std::string Mac(std::string_view kind, int64_t unix_ms, std::string_view nonce,
                  std::string_view message) const;
  void ForgetExpiredLocked(int64_t now_ms) FERRY_REQUIRES(mu_);

  const std::string secret_;
  const std::string channel_;
  const Options options_;

  mutable Mutex mu_;
  std::unordered_set<std::string> seen_ FERRY_GUARDED_BY(mu_);
  std::deque<std::pair<int64_t, std::string>> expiry_
      FERRY_GUARDED_BY(mu_);  // (forget at ms, nonce)
  mutable uint64_t refused_ FERRY_GUARDED_BY(mu_) = 0;
};

// HTTP services authenticate requests and replies with these headers (a request's tag
// covers HttpAuthMessage(method, target, body); a reply's MAC, bound to the request's
// nonce, covers HttpAuthMessage(status, "", body)).
inline constexpr char kAuthHeader[] = "X-Ferry-Auth";
inline constexpr char kAuthReplyHeader[] = "X-Ferry-Auth-Reply";
// What an HTTP request's (or reply's) tag covers. `target` is the path with its query.
std::string HttpAuthMessage(std::string_view method, std::string_view target,
                            std::string_view body);

// What `ferry proxy` signs (channel "proxy") in a decode request's kv_transfer_params
// (ferry_proxy_auth), so that a decoder knows the bootstrap address came from a proxy that
// holds the secret.
std::string ProxySignedFields(std::string_view transfer_id, std::string_view bootstrap_addr,
                              std::string_view engine_id);

// The deployment's shared secret from FERRY_KV_SECRET ("" when unset).
std::string SecretFromEnvironment();

// Wall-clock milliseconds since the Unix epoch.
int64_t UnixMillis();

}  // namespace ferry
