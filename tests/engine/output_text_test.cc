#include "engine/output_text.h"

#include <gtest/gtest.h>

namespace ferry::engine {
namespace {

TEST(OutputTextTest, ReleasesPlainTextImmediately) {
  OutputText t;
  EXPECT_FALSE(t.Append("hel"));
  EXPECT_EQ(t.TakeDelta(), "hel");
  t.Append("lo");
  EXPECT_EQ(t.TakeDelta(), "lo");
  EXPECT_EQ(t.TakeRest(), "");
}

TEST(OutputTextTest, HoldsBackIncompleteUtf8) {
  OutputText t;
  t.Append("a\xC3");  // first byte of "é"
  EXPECT_EQ(t.TakeDelta(), "a");
  t.Append("\xA9");
  EXPECT_EQ(t.TakeDelta(), "\xC3\xA9");
  t.Append("\xE2\x82");  // 2 of 3 bytes of "€"
  EXPECT_EQ(t.TakeDelta(), "");
  t.Append("\xAC");
  EXPECT_EQ(t.TakeDelta(), "\xE2\x82\xAC");
}

TEST(OutputTextTest, StopStringAcrossAppendsIsTrimmed) {
  OutputText t({"END"});
  t.Append("abcE");
  EXPECT_EQ(t.TakeDelta(), "abc");  // "E" may start "END"
  t.Append("N");
  EXPECT_EQ(t.TakeDelta(), "");
  EXPECT_TRUE(t.Append("Dxyz"));
  EXPECT_TRUE(t.stopped());
  EXPECT_EQ(t.text(), "abc");
  EXPECT_EQ(t.TakeDelta() + t.TakeRest(), "");
}

TEST(OutputTextTest, FalseStopPrefixIsReleased) {
  OutputText t({"END", "\n\n"});
  t.Append("xEN");
  EXPECT_EQ(t.TakeDelta(), "x");
  t.Append("Q\n");
  EXPECT_EQ(t.TakeDelta(), "ENQ");
  EXPECT_EQ(t.TakeRest(), "\n");
}

TEST(OutputTextTest, EarliestStopWins) {
  OutputText t({"cd", "b"});
  EXPECT_TRUE(t.Append("abcd"));
  EXPECT_EQ(t.text(), "a");
}

TEST(OutputTextTest, IncompleteTailLength) {
  EXPECT_EQ(IncompleteUtf8Tail(""), 0u);
  EXPECT_EQ(IncompleteUtf8Tail("abc"), 0u);
  EXPECT_EQ(IncompleteUtf8Tail("\xF0\x9F\x98"), 3u);
  EXPECT_EQ(IncompleteUtf8Tail("\xF0\x9F\x98\x80"), 0u);
}

}  // namespace
}  // namespace ferry::engine
