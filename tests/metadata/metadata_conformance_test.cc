// One behaviour suite for every MetadataStore backend: the HTTP store against
// HttpMetadataServer and the etcd store against a real etcd.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "metadata/http_metadata_server.h"
#include "metadata/metadata_store.h"
#include "metadata_test_util.h"

namespace ferry::metadata {
namespace {

using std::chrono::seconds;

Deadline Soon() { return Deadline::In(seconds(10)); }

class MetadataStoreConformanceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string connection;
    if (GetParam() == "http") {
      auto server = HttpMetadataServer::Create({});
      ASSERT_TRUE(server.ok()) << server.status().ToString();
      http_server_ = std::move(server).value();
      connection = http_server_->url();
    } else {
      auto etcd = testing::EtcdProcess::Start(Deadline::In(seconds(30)));
      ASSERT_TRUE(etcd.ok()) << etcd.status().ToString();
      etcd_ = std::move(etcd).value();
      connection = "etcd://" + etcd_->endpoint();
    }
    auto store = MetadataStore::Create(connection);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
  }

  std::unique_ptr<HttpMetadataServer> http_server_;
  std::unique_ptr<testing::EtcdProcess> etcd_;
  std::unique_ptr<MetadataStore> store_;
};

TEST_P(MetadataStoreConformanceTest, PutGetOverwriteDelete) {
  const std::string key = SegmentKey("127.0.0.1:17000");
  ASSERT_TRUE(store_->Put(key, R"({"buffers":[]})", Soon()).ok());
  auto got = store_->Get(key, Soon());
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, R"({"buffers":[]})");

  ASSERT_TRUE(store_->Put(key, "second", Soon()).ok());
  got = store_->Get(key, Soon());
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, "second");

  ASSERT_TRUE(store_->Delete(key, Soon()).ok());
  EXPECT_EQ(store_->Get(key, Soon()).status().code(), StatusCode::kNotFound);
  // Deleting again (an absent key) is OK.
  EXPECT_TRUE(store_->Delete(key, Soon()).ok());
}

TEST_P(MetadataStoreConformanceTest, AbsentKeyIsNotFound) {
  auto got = store_->Get("ferry/segments/never-written:1", Soon());
  EXPECT_EQ(got.status().code(), StatusCode::kNotFound) << got.status().ToString();
}

TEST_P(MetadataStoreConformanceTest, EmptyValueRoundTrips) {
  ASSERT_TRUE(store_->Put("empty", "", Soon()).ok());
  auto got = store_->Get("empty", Soon());
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, "");
}

TEST_P(MetadataStoreConformanceTest, KeysWithOddCharactersStayDistinct) {
  const std::vector<std::string> keys = {
      "ferry/segments/[::1]:17000", "a b", "a+b", "a&key=b", "100%", "q?x=1#frag",
      "ключ/セグメント/🚀",          "a",   "A",   "a/",      "/a",   "tab\there"};
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_TRUE(store_->Put(keys[i], "v" + std::to_string(i), Soon()).ok()) << keys[i];
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    auto got = store_->Get(keys[i], Soon());
    ASSERT_TRUE(got.ok()) << keys[i] << ": " << got.status().ToString();
    EXPECT_EQ(*got, "v" + std::to_string(i)) << keys[i];
  }
}

TEST_P(MetadataStoreConformanceTest, BinaryAndLargeValuesRoundTrip) {
  std::string big(1 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131 + 7) & 0xFF);
  ASSERT_TRUE(store_->Put("big", big, Soon()).ok());
  auto got = store_->Get("big", Soon());
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_TRUE(*got == big) << "1 MiB value came back different (size " << got->size() << ")";
}

TEST_P(MetadataStoreConformanceTest, ConcurrentClientsFromSeveralThreads) {
  constexpr int kThreads = 6;
  constexpr int kOpsPerThread = 20;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kOpsPerThread; ++i) {
        std::string key = "ferry/segments/t" + std::to_string(t) + ":" + std::to_string(i);
        std::string value = "value-" + std::to_string(t * 1000 + i);
        if (!store_->Put(key, value, Soon()).ok()) ++failures;
        auto got = store_->Get(key, Soon());
        if (!got.ok() || *got != value) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST_P(MetadataStoreConformanceTest, ExpiredDeadlineFailsWithoutContact) {
  Deadline past = Deadline::In(std::chrono::nanoseconds(0));
  EXPECT_EQ(store_->Put("k", "v", past).code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(store_->Get("k", past).status().code(), StatusCode::kDeadlineExceeded);
}

INSTANTIATE_TEST_SUITE_P(Backends, MetadataStoreConformanceTest, ::testing::Values("http", "etcd"),
                         [](const auto& info) { return info.param; });

// Failures that need no live server: the same for both backends.
class MetadataStoreFailureTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::unique_ptr<MetadataStore> StoreAt(uint16_t port) {
    std::string where = "127.0.0.1:" + std::to_string(port);
    auto store = MetadataStore::Create(GetParam() == "http" ? "http://" + where + "/metadata"
                                                            : "etcd://" + where);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }
};

TEST_P(MetadataStoreFailureTest, UnreachableServerIsUnavailableWithinTheDeadline) {
  auto store = StoreAt(testing::FreePort());
  ASSERT_NE(store, nullptr);
  auto start = SteadyClock::now();
  Deadline deadline = Deadline::In(seconds(2));
  EXPECT_EQ(store->Put("k", "v", deadline).code(), StatusCode::kUnavailable);
  auto got = store->Get("k", deadline);
  EXPECT_EQ(got.status().code(), StatusCode::kUnavailable) << got.status().ToString();
  EXPECT_EQ(store->Delete("k", deadline).code(), StatusCode::kUnavailable);
  EXPECT_LT(SteadyClock::now() - start, seconds(2));
}

TEST_P(MetadataStoreFailureTest, SilentServerIsDeadlineExceededAtTheDeadline) {
  testing::BlackHoleListener hole;
  auto store = StoreAt(hole.port());
  ASSERT_NE(store, nullptr);
  for (int op = 0; op < 3; ++op) {
    auto start = SteadyClock::now();
    Deadline deadline = Deadline::In(std::chrono::milliseconds(300));
    Status s = op == 0   ? store->Put("k", "v", deadline)
               : op == 1 ? store->Get("k", deadline).status()
                         : store->Delete("k", deadline);
    auto elapsed = SteadyClock::now() - start;
    EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << op << ": " << s.ToString();
    EXPECT_GE(elapsed, std::chrono::milliseconds(290)) << op;
    EXPECT_LT(elapsed, std::chrono::milliseconds(1300)) << op;
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, MetadataStoreFailureTest, ::testing::Values("http", "etcd"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace ferry::metadata
