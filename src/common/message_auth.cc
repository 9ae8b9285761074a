#include "common/message_auth.h"

#include <cstdlib>

#include "common/crypto.h"
#include "common/mutex.h"

namespace ferry {
namespace {

constexpr size_t kNonceBytes = 16;

bool IsHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

std::string AuthTag::ToString() const {
  return "v1:" + std::to_string(unix_ms) + ":" + nonce + ":" + mac;
}

Result<AuthTag> AuthTag::Parse(std::string_view text) {
  auto bad = [&] {
    return InvalidArgumentError("authentication tag is not 'v1:<unix_ms>:<nonce>:<mac>'");
  };
  if (text.size() > 200 || text.substr(0, 3) != "v1:") return bad();
  text.remove_prefix(3);
  size_t a = text.find(':');
  if (a == std::string_view::npos || a == 0 || a > 19) return bad();
  int64_t ms = 0;
  for (char c : text.substr(0, a)) {
    if (c < '0' || c > '9') return bad();
    ms = ms * 10 + (c - '0');
  }
  text.remove_prefix(a + 1);
  size_t b = text.find(':');
  if (b != 2 * kNonceBytes) return bad();
  AuthTag tag;
  tag.unix_ms = ms;
  tag.nonce = std::string(text.substr(0, b));
  tag.mac = std::string(text.substr(b + 1));
  if (tag.mac.size() != 2 * crypto::kMacBytes || !IsHex(tag.nonce) || !IsHex(tag.mac)) {
    return bad();
  }
  return tag;
}

MessageAuth::MessageAuth(std::string secret, std::string channel, Options options)
    : secret_(std::move(secret)), channel_(std::move(channel)), options_(options) {}

std::string MessageAuth::Mac(std::string_view kind, int64_t unix_ms, std::string_view nonce,
                             std::string_view message) const {
  // Fields are length-prefixed so that no two different inputs hash the same text.
  std::string text;
  text.reserve(message.size() + 96);
  auto field = [&](std::string_view f) {
    text += std::to_string(f.size());
    text += ':';
    text.append(f.data(), f.size());
  };
  field("ferry-auth-v1");
  field(channel_);
  field(kind);
  field(std::to_string(unix_ms));
  field(nonce);
  field(message);
  return crypto::HexEncode(crypto::HmacSha256(secret_, text));
}

AuthTag MessageAuth::Sign(std::string_view message) const {
  AuthTag tag;
  if (!enabled()) return tag;
  tag.unix_ms = UnixMillis();
  tag.nonce = crypto::RandomHex(kNonceBytes);
  tag.mac = Mac("request", tag.unix_ms, tag.nonce, message);
  return tag;
}

Status MessageAuth::Verify(std::string_view message, const AuthTag& tag) {
  if (!enabled()) return OkStatus();
  auto refuse = [&](const std::string& why) {
    MutexLock lock(&mu_);
    ++refused_;
    return PermissionDeniedError(channel_ + ": message refused: " + why);
  };
  if (tag.mac.empty()) return refuse("it carries no authentication tag (is FERRY_KV_SECRET set?)");
  if (!crypto::ConstantTimeEqual(Mac("request", tag.unix_ms, tag.nonce, message), tag.mac)) {
    return refuse("bad MAC (forged, altered, or signed with another secret)");
  }
  const int64_t now = UnixMillis();
  const int64_t skew = options_.max_skew.count();
  if (tag.unix_ms < now - skew || tag.unix_ms > now + skew) {
    return refuse("its timestamp is " + std::to_string((now - tag.unix_ms) / 1000) +
                  " s away from this host's clock (more than " + std::to_string(skew / 1000) +
                  " s: stale, replayed, or clocks out of sync)");
  }
  MutexLock lock(&mu_);
  ForgetExpiredLocked(now);
  if (seen_.count(tag.nonce) > 0) {
    ++refused_;
    return PermissionDeniedError(channel_ + ": message refused: replayed (nonce seen before)");
  }
  if (seen_.size() >= options_.max_remembered) {
    ++refused_;
    return ResourceExhaustedError(channel_ + ": too many messages in the replay window; retry");
  }
  seen_.insert(tag.nonce);
  // Remembered until no copy of this message can be fresh any more.
  expiry_.emplace_back(tag.unix_ms + skew, tag.nonce);
  return OkStatus();
}

void MessageAuth::ForgetExpiredLocked(int64_t now_ms) {
  // Messages arrive in roughly increasing time order, so the deque is nearly sorted; an
  // entry behind a later one is forgotten a little late, which is safe.
  while (!expiry_.empty() && expiry_.front().first < now_ms) {
    seen_.erase(expiry_.front().second);
    expiry_.pop_front();
  }
}

std::string MessageAuth::SignReply(std::string_view request_nonce, std::string_view reply) const {
  if (!enabled()) return "";
  return Mac("reply", 0, request_nonce, reply);
}

Status MessageAuth::VerifyReply(std::string_view request_nonce, std::string_view reply,
                                std::string_view mac_hex) const {
  if (!enabled()) return OkStatus();
  if (!mac_hex.empty() &&
      crypto::ConstantTimeEqual(Mac("reply", 0, request_nonce, reply), mac_hex)) {
    return OkStatus();
  }
  MutexLock lock(&mu_);
  ++refused_;
  return PermissionDeniedError(
      channel_ + ": reply refused: " +
      (mac_hex.empty() ? std::string("it is not authenticated") : std::string("bad MAC")));
}

uint64_t MessageAuth::refused() const {
  MutexLock lock(&mu_);
  return refused_;
}

std::string HttpAuthMessage(std::string_view method, std::string_view target,
                            std::string_view body) {
  std::string text;
  text.reserve(method.size() + target.size() + body.size() + 2);
  text.append(method);
  text += '\n';
  text.append(target);
  text += '\n';
  text.append(body);
  return text;
}

std::string ProxySignedFields(std::string_view transfer_id, std::string_view bootstrap_addr,
                              std::string_view engine_id) {
  return HttpAuthMessage(transfer_id, bootstrap_addr, engine_id);  // '\n'-joined
}

std::string SecretFromEnvironment() {
  const char* v = std::getenv("FERRY_KV_SECRET");
  return v == nullptr ? std::string() : std::string(v);
}

int64_t UnixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace ferry
