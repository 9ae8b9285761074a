// Small cryptographic primitives over OpenSSL's libcrypto, for authenticating control
// messages with the deployment's shared secret (message_auth.h) and the transfer engine's
// HELLO handshake.
//
// Example:
//   std::string secret = "s3cret", message = "hello", received;
//   std::string mac = crypto::HmacSha256(secret, message);  // 32 raw bytes
//   if (!crypto::ConstantTimeEqual(mac, received)) return PermissionDeniedError("bad MAC");
//   std::string nonce = crypto::RandomHex(16);  // 32 hex characters
//
// Thread safety: every function is thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ferry::crypto {

// Bytes of an HMAC-SHA256 tag.
inline constexpr size_t kMacBytes = 32;

// HMAC-SHA256 of `data` under `key` (any length, also empty): kMacBytes raw bytes.
std::string HmacSha256(std::string_view key, std::string_view data);

// `n` bytes from the operating system's CSPRNG (OpenSSL RAND_bytes). Aborts the process if
// the generator fails: continuing with predictable nonces would be worse than stopping.
std::string RandomBytes(size_t n);
// RandomBytes(n) as 2n lower-case hex characters.
std::string RandomHex(size_t n);

// Lower-case hex of raw bytes, and back. HexDecode returns false on odd length or a
// non-hex character (and leaves *out unspecified).
std::string HexEncode(std::string_view bytes);
bool HexDecode(std::string_view hex, std::string* out);

// Compares in time that depends only on the lengths, not on where the bytes differ.
bool ConstantTimeEqual(std::string_view a, std::string_view b);

}  // namespace ferry::crypto
