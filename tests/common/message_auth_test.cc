#include "common/message_auth.h"

#include <gtest/gtest.h>

#include <thread>

#include "common/crypto.h"

namespace ferry {
namespace {

TEST(CryptoTest, HmacSha256MatchesRfc4231) {
  // RFC 4231 test case 2.
  EXPECT_EQ(crypto::HexEncode(crypto::HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(CryptoTest, HexRoundTripsAndRejectsJunk) {
  std::string raw = crypto::RandomBytes(33), back;
  ASSERT_TRUE(crypto::HexDecode(crypto::HexEncode(raw), &back));
  EXPECT_EQ(back, raw);
  EXPECT_FALSE(crypto::HexDecode("abc", &back));
  EXPECT_FALSE(crypto::HexDecode("zz", &back));
  EXPECT_NE(crypto::RandomHex(16), crypto::RandomHex(16));
  EXPECT_EQ(crypto::RandomHex(16).size(), 32u);
}

TEST(CryptoTest, ConstantTimeEqual) {
  EXPECT_TRUE(crypto::ConstantTimeEqual("abc", "abc"));
  EXPECT_FALSE(crypto::ConstantTimeEqual("abc", "abd"));
  EXPECT_FALSE(crypto::ConstantTimeEqual("abc", "ab"));
  EXPECT_TRUE(crypto::ConstantTimeEqual("", ""));
}

TEST(MessageAuthTest, GenuineMessageIsAcceptedOnce) {
  MessageAuth sender("s3cret", "test"), receiver("s3cret", "test");
  AuthTag tag = sender.Sign("hello");
  EXPECT_TRUE(receiver.Verify("hello", tag).ok());
  Status replay = receiver.Verify("hello", tag);
  EXPECT_EQ(replay.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(replay.message().find("replayed"), std::string::npos);
  EXPECT_EQ(receiver.refused(), 1u);
}

TEST(MessageAuthTest, RefusesAlteredForgedAndForeignMessages) {
  MessageAuth sender("s3cret", "test"), receiver("s3cret", "test");
  AuthTag tag = sender.Sign("hello");
  EXPECT_EQ(receiver.Verify("hellO", tag).code(), StatusCode::kPermissionDenied);
  AuthTag forged = tag;
  forged.mac[0] = forged.mac[0] == 'a' ? 'b' : 'a';
  EXPECT_EQ(receiver.Verify("hello", forged).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(receiver.Verify("hello", AuthTag{}).code(), StatusCode::kPermissionDenied);
  MessageAuth other_secret("other", "test"), other_channel("s3cret", "bootstrap");
  EXPECT_EQ(receiver.Verify("x", other_secret.Sign("x")).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(receiver.Verify("x", other_channel.Sign("x")).code(), StatusCode::kPermissionDenied);
  // The genuine tag still works: refusals do not poison the replay cache.
  EXPECT_TRUE(receiver.Verify("hello", tag).ok());
}

TEST(MessageAuthTest, RefusesStaleTimestamps) {
  MessageAuth::Options opts;
  opts.max_skew = std::chrono::milliseconds(50);
  MessageAuth sender("k", "test"), receiver("k", "test", opts);
  AuthTag tag = sender.Sign("m");
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  Status s = receiver.Verify("m", tag);
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(s.message().find("clock"), std::string::npos);
}

TEST(MessageAuthTest, ReplayCacheIsBounded) {
  MessageAuth::Options opts;
  opts.max_remembered = 3;
  MessageAuth sender("k", "test"), receiver("k", "test", opts);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(receiver.Verify("m", sender.Sign("m")).ok());
  EXPECT_EQ(receiver.Verify("m", sender.Sign("m")).code(), StatusCode::kResourceExhausted);
}

TEST(MessageAuthTest, RepliesAreBoundToTheirRequest) {
  MessageAuth a("k", "test"), b("k", "test");
  AuthTag t1 = a.Sign("req1"), t2 = a.Sign("req2");
  std::string mac = b.SignReply(t1.nonce, "FINISH");
  EXPECT_TRUE(a.VerifyReply(t1.nonce, "FINISH", mac).ok());
  EXPECT_EQ(a.VerifyReply(t2.nonce, "FINISH", mac).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(a.VerifyReply(t1.nonce, "ERROR", mac).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(a.VerifyReply(t1.nonce, "FINISH", "").code(), StatusCode::kPermissionDenied);
}

TEST(MessageAuthTest, DisabledWithoutSecret) {
  MessageAuth off("", "test");
  EXPECT_FALSE(off.enabled());
  AuthTag tag = off.Sign("m");
  EXPECT_TRUE(tag.mac.empty());
  EXPECT_TRUE(off.Verify("m", tag).ok());
  EXPECT_TRUE(off.Verify("m", tag).ok());
  EXPECT_TRUE(off.VerifyReply("n", "r", "").ok());
}

TEST(AuthTagTest, RoundTripsAndRejectsMalformed) {
  MessageAuth a("k", "test");
  AuthTag tag = a.Sign("m");
  auto back = AuthTag::Parse(tag.ToString());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->unix_ms, tag.unix_ms);
  EXPECT_EQ(back->nonce, tag.nonce);
  EXPECT_EQ(back->mac, tag.mac);
  for (const char* bad : {"", "v1:", "v2:1:aa:bb", "v1:12:short:mac", "v1:x:0:0",
                          "v1:99999999999999999999:00000000000000000000000000000000:00"}) {
    EXPECT_FALSE(AuthTag::Parse(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace ferry
