#include "engine/request_stream.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace ferry::engine {
namespace {

using Poll = RequestStream::Poll;
using std::chrono::milliseconds;

RequestOutput Output(std::string text, bool finished = false) {
  RequestOutput o;
  o.text = std::move(text);
  o.finished = finished;
  return o;
}

TEST(RequestStreamTest, EmptyWaitTimesOutAndTheStreamStaysUsable) {
  RequestStream s;
  RequestOutput out;
  out.text = "untouched";
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(s.Next(Deadline::In(milliseconds(30)), &out), Poll::kTimedOut);
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(30));
  EXPECT_EQ(out.text, "untouched");  // written only on kOutput
  s.Push(Output("a"));
  ASSERT_EQ(s.Next(Deadline::In(milliseconds(0)), &out), Poll::kOutput);
  EXPECT_EQ(out.text, "a");
}

TEST(RequestStreamTest, OutputsInOrderThenClosedAfterTheFinalOne) {
  RequestStream s;
  s.Push(Output("a"));
  s.Push(Output("b", /*finished=*/true));
  s.Push(Output("dropped"));  // after the final output
  EXPECT_TRUE(s.finished());
  RequestOutput out;
  ASSERT_EQ(s.Next(Deadline::In(milliseconds(0)), &out), Poll::kOutput);
  EXPECT_EQ(out.text, "a");
  ASSERT_EQ(s.Next(Deadline::In(milliseconds(0)), &out), Poll::kOutput);
  EXPECT_EQ(out.text, "b");
  EXPECT_TRUE(out.finished);
  // Closed, not timed out, and at once even with a long deadline.
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(s.Next(Deadline::In(std::chrono::seconds(10)), &out), Poll::kClosed);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

TEST(RequestStreamTest, AFailedRequestIsAnOutputCarryingItsError) {
  RequestStream s;
  RequestOutput failed = Output("", /*finished=*/true);
  failed.error = InternalError("model failed");
  failed.finish_reason = "abort";
  s.Push(std::move(failed));
  RequestOutput out;
  ASSERT_EQ(s.Next(Deadline::In(milliseconds(0)), &out), Poll::kOutput);
  EXPECT_EQ(out.error.code(), StatusCode::kInternal);
  EXPECT_EQ(s.Next(Deadline::In(milliseconds(0)), &out), Poll::kClosed);
}

TEST(RequestStreamTest, WaiterWakesOnPushFromAnotherThread) {
  RequestStream s;
  std::thread producer([&] {
    std::this_thread::sleep_for(milliseconds(20));
    s.Push(Output("late", /*finished=*/true));
  });
  RequestOutput out;
  EXPECT_EQ(s.Next(Deadline::In(std::chrono::seconds(10)), &out), Poll::kOutput);
  EXPECT_EQ(out.text, "late");
  producer.join();
}

TEST(RequestStreamTest, SignalIsNotifiedOnEveryPush) {
  auto signal = std::make_shared<StreamSignal>();
  RequestStream s(signal);
  const uint64_t before = signal->count();
  s.Push(Output("a"));
  s.Push(Output("b", true));
  EXPECT_EQ(signal->count(), before + 2);
}

}  // namespace
}  // namespace ferry::engine
