// EtcdClient against a real etcd (ranges, txns, leases, watches, compaction), against
// endpoints that do not answer, and against a scripted server that answers garbage.
#include "metadata/etcd_client.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <condition_variable>
#include <functional>
#include <iterator>
#include <mutex>
#include <thread>

#include "metadata_test_util.h"

namespace ferry::metadata {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

Deadline Soon() { return Deadline::In(seconds(10)); }

std::unique_ptr<EtcdClient> Connect(const std::string& endpoints) {
  auto client = EtcdClient::Create(endpoints);
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  return client.ok() ? std::move(client).value() : nullptr;
}

// Collects what a watch delivers, for a test thread to wait on.
class WatchLog {
 public:
  void OnEvents(const std::vector<EtcdWatchEvent>& events, int64_t revision) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const EtcdWatchEvent& e : events) {
      events_.push_back(e);
      EXPECT_GE(revision, e.kv.mod_revision);
    }
    cv_.notify_all();
  }
  void OnError(const Status& status) {
    std::lock_guard<std::mutex> lock(mu_);
    errors_.push_back(status);
    cv_.notify_all();
  }
  auto EventsFn() {
    return [this](const std::vector<EtcdWatchEvent>& e, int64_t r) { OnEvents(e, r); };
  }
  auto ErrorFn() {
    return [this](const Status& s) { OnError(s); };
  }
  // Waits (up to 10 s) until `done` holds for the events so far; returns them.
  std::vector<EtcdWatchEvent> WaitUntil(
      const std::function<bool(const std::vector<EtcdWatchEvent>&)>& done) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, seconds(10), [&] { return done(events_); });
    return events_;
  }
  // Waits (up to 10 s) until at least `n` events have arrived; returns them.
  std::vector<EtcdWatchEvent> WaitEvents(size_t n) {
    return WaitUntil([n](const std::vector<EtcdWatchEvent>& e) { return e.size() >= n; });
  }
  std::vector<Status> WaitErrors(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, seconds(10), [&] { return errors_.size() >= n; });
    return errors_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<EtcdWatchEvent> events_;
  std::vector<Status> errors_;
};

// One etcd for the suite; each test uses its own key prefix.
class EtcdClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { etcd_ = testing::StartEtcdOrFail().release(); }
  static void TearDownTestSuite() {
    delete etcd_;
    etcd_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(etcd_, nullptr);
    client_ = Connect(etcd_->endpoint());
    ASSERT_NE(client_, nullptr);
    prefix_ =
        std::string("/") + ::testing::UnitTest::GetInstance()->current_test_info()->name() + "/";
  }

  static testing::EtcdProcess* etcd_;
  std::unique_ptr<EtcdClient> client_;
  std::string prefix_;
};

testing::EtcdProcess* EtcdClientTest::etcd_ = nullptr;

TEST(EtcdClientParseTest, ParsesEndpointLists) {
  auto client = EtcdClient::Create("etcd://127.0.0.1:1;localhost:2");
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  ASSERT_EQ((*client)->endpoints().size(), 2u);
  EXPECT_EQ((*client)->endpoints()[0].ToString(), "127.0.0.1:1");
  EXPECT_EQ((*client)->endpoints()[1].ToString(), "localhost:2");
  EXPECT_EQ((*client)->Describe(), "etcd://127.0.0.1:1;localhost:2");

  auto bare = EtcdClient::Create("a,b;http://[::1]:22379");
  ASSERT_TRUE(bare.ok()) << bare.status().ToString();
  EXPECT_EQ((*bare)->Describe(), "etcd://a:2379;b:2379;[::1]:22379");

  for (std::string bad : {"", ",", ";", "a:1,", "a:1;;b:2", "etcd://", "a:99999", "a:b",
                          "https://a:1", "etcd://a:1/path", "a:1;etcd:/b"}) {
    EXPECT_EQ(EtcdClient::Create(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(EtcdClientParseTest, PrefixEnd) {
  EXPECT_EQ(EtcdClient::PrefixEnd("/a/"), "/a0");
  EXPECT_EQ(EtcdClient::PrefixEnd("a\xff"), "b");
  EXPECT_EQ(EtcdClient::PrefixEnd("\xff\xff"), std::string(1, '\0'));
  EXPECT_EQ(EtcdClient::PrefixEnd(""), std::string(1, '\0'));
}

TEST_F(EtcdClientTest, PutRangeWithLimitAndPagination) {
  int64_t last = 0;
  for (std::string k : {"c", "a", "e", "b", "d"}) {
    auto rev = client_->Put(prefix_ + k, "v" + k, 0, Soon());
    ASSERT_TRUE(rev.ok()) << rev.status().ToString();
    EXPECT_GT(*rev, last);
    last = *rev;
  }
  ASSERT_TRUE(client_->Put(prefix_ + "a", "again", 0, Soon()).ok());

  auto one = client_->Range(prefix_ + "a", "", 0, Soon());
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  ASSERT_EQ(one->kvs.size(), 1u);
  EXPECT_EQ(one->kvs[0].value, "again");
  EXPECT_EQ(one->kvs[0].version, 2);
  EXPECT_GT(one->kvs[0].mod_revision, one->kvs[0].create_revision);
  EXPECT_EQ(one->kvs[0].lease, 0);
  EXPECT_FALSE(one->more);
  EXPECT_EQ(one->revision, last + 1);

  const std::string end = EtcdClient::PrefixEnd(prefix_);
  auto page = client_->Range(prefix_, end, 2, Soon());
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->kvs.size(), 2u);
  EXPECT_TRUE(page->more);
  EXPECT_EQ(page->kvs[0].key, prefix_ + "a");
  EXPECT_EQ(page->kvs[1].key, prefix_ + "b");

  // Pages at one revision: the next starts just after the last key seen.
  std::vector<std::string> keys;
  std::string from = prefix_;
  const int64_t at = page->revision;
  while (true) {
    auto next = client_->Range(from, end, 2, Soon(), at);
    ASSERT_TRUE(next.ok()) << next.status().ToString();
    for (const EtcdKeyValue& kv : next->kvs) keys.push_back(kv.key.substr(prefix_.size()));
    if (!next->more) break;
    from = next->kvs.back().key + std::string(1, '\0');
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "b", "c", "d", "e"}));

  auto missing = client_->Range(prefix_ + "zz", "", 0, Soon());
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing->kvs.empty());
  EXPECT_FALSE(missing->more);
  EXPECT_GT(missing->revision, 0);
}

TEST_F(EtcdClientTest, BinaryKeysAndEmptyValues) {
  const std::string key = prefix_ + std::string("\0\xff\n", 3);
  ASSERT_TRUE(client_->Put(key, "", 0, Soon()).ok());
  auto got = client_->Range(key, "", 0, Soon());
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->kvs.size(), 1u);
  EXPECT_EQ(got->kvs[0].key, key);
  EXPECT_EQ(got->kvs[0].value, "");
}

TEST_F(EtcdClientTest, DeleteRange) {
  for (std::string k : {"a", "b", "c"}) ASSERT_TRUE(client_->Put(prefix_ + k, k, 0, Soon()).ok());
  auto one = client_->DeleteRange(prefix_ + "b", "", Soon());
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  EXPECT_EQ(*one, 1);
  auto none = client_->DeleteRange(prefix_ + "b", "", Soon());
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0);
  auto rest = client_->DeleteRange(prefix_, EtcdClient::PrefixEnd(prefix_), Soon());
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(*rest, 2);
  auto left = client_->Range(prefix_, EtcdClient::PrefixEnd(prefix_), 0, Soon());
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->kvs.empty());
}

TEST_F(EtcdClientTest, TxnCreateRevisionZeroSucceedsOnce) {
  const std::string leader = prefix_ + "leader";
  auto campaign = [&](const std::string& me) {
    EtcdTxn txn;
    txn.compares.push_back(EtcdCompare::CreateRevision(leader, EtcdCompare::kEqual, 0));
    txn.success.push_back(EtcdOp::Put(leader, me));
    txn.success.push_back(EtcdOp::Get(leader));
    txn.failure.push_back(EtcdOp::Delete(prefix_ + "nothing"));
    txn.failure.push_back(EtcdOp::Get(leader));
    return client_->Txn(txn, Soon());
  };
  auto first = campaign("me");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_TRUE(first->succeeded);
  ASSERT_EQ(first->ranges.size(), 2u);
  EXPECT_TRUE(first->ranges[0].empty());
  ASSERT_EQ(first->ranges[1].size(), 1u);
  EXPECT_EQ(first->ranges[1][0].value, "me");

  auto second = campaign("you");
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_FALSE(second->succeeded);
  EXPECT_GE(second->revision, first->revision);
  ASSERT_EQ(second->ranges.size(), 2u);
  EXPECT_TRUE(second->ranges[0].empty());
  ASSERT_EQ(second->ranges[1].size(), 1u);
  EXPECT_EQ(second->ranges[1][0].value, "me");  // the holder
  EXPECT_EQ(second->ranges[1][0].create_revision, first->revision);

  // Compare on the value, and an empty branch.
  EtcdTxn by_value;
  by_value.compares.push_back(EtcdCompare::Value(leader, EtcdCompare::kEqual, "me"));
  by_value.success.push_back(EtcdOp::Delete(leader));
  auto released = client_->Txn(by_value, Soon());
  ASSERT_TRUE(released.ok()) << released.status().ToString();
  EXPECT_TRUE(released->succeeded);
  auto again = client_->Txn(by_value, Soon());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_FALSE(again->succeeded);
  EXPECT_TRUE(again->ranges.empty());
}

TEST_F(EtcdClientTest, LeaseGrantKeepAliveRevoke) {
  auto lease = client_->LeaseGrant(seconds(2), Soon());
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  EXPECT_NE(lease->id, 0);
  EXPECT_EQ(lease->ttl, seconds(2));
  ASSERT_TRUE(client_->Put(prefix_ + "k", "v", lease->id, Soon()).ok());
  auto got = client_->Range(prefix_ + "k", "", 0, Soon());
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->kvs.size(), 1u);
  EXPECT_EQ(got->kvs[0].lease, lease->id);

  auto ttl = client_->LeaseKeepAlive(lease->id, Soon());
  ASSERT_TRUE(ttl.ok()) << ttl.status().ToString();
  EXPECT_EQ(*ttl, seconds(2));

  ASSERT_TRUE(client_->LeaseRevoke(lease->id, Soon()).ok());
  auto gone = client_->Range(prefix_ + "k", "", 0, Soon());
  ASSERT_TRUE(gone.ok());
  EXPECT_TRUE(gone->kvs.empty());
  auto dead = client_->LeaseKeepAlive(lease->id, Soon());
  EXPECT_EQ(dead.status().code(), StatusCode::kNotFound) << dead.status().ToString();
  EXPECT_EQ(client_->LeaseRevoke(lease->id, Soon()).code(), StatusCode::kNotFound);
  EXPECT_EQ(client_->Put(prefix_ + "k", "v", lease->id, Soon()).status().code(),
            StatusCode::kNotFound);

  // Below etcd's minimum TTL: raised to it.
  auto short_lease = client_->LeaseGrant(seconds(1), Soon());
  ASSERT_TRUE(short_lease.ok()) << short_lease.status().ToString();
  EXPECT_GE(short_lease->ttl, seconds(1));
  EXPECT_TRUE(client_->LeaseRevoke(short_lease->id, Soon()).ok());
}

TEST_F(EtcdClientTest, KeyOfAnExpiredLeaseDisappears) {
  auto lease = client_->LeaseGrant(seconds(2), Soon());
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  ASSERT_TRUE(client_->Put(prefix_ + "k", "v", lease->id, Soon()).ok());
  auto start = SteadyClock::now();
  bool gone = false;
  while (!gone && SteadyClock::now() - start < seconds(8)) {
    std::this_thread::sleep_for(milliseconds(200));
    auto got = client_->Range(prefix_ + "k", "", 0, Soon());
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    gone = got->kvs.empty();
  }
  EXPECT_TRUE(gone);
  EXPECT_GE(SteadyClock::now() - start, milliseconds(1500));
  EXPECT_EQ(client_->LeaseKeepAlive(lease->id, Soon()).status().code(), StatusCode::kNotFound);
}

TEST_F(EtcdClientTest, WatchSeesPutsAndDeletesInOrderAndReplays) {
  const std::string end = EtcdClient::PrefixEnd(prefix_);
  auto before = client_->Put(prefix_ + "before", "x", 0, Soon());
  ASSERT_TRUE(before.ok());

  WatchLog live;
  auto watch = client_->Watch(prefix_, end, 0, live.EventsFn(), live.ErrorFn());
  ASSERT_TRUE(watch.ok()) << watch.status().ToString();
  // A watch "from now" may start a moment after Watch() returns: put markers until it
  // sees one, then make the writes that count.
  const std::string marker = prefix_ + "marker";
  auto marker_deadline = SteadyClock::now() + seconds(10);
  while (live.WaitEvents(0).empty() && SteadyClock::now() < marker_deadline) {
    ASSERT_TRUE(client_->Put(marker, "m", 0, Soon()).ok());
    std::this_thread::sleep_for(milliseconds(50));
  }
  ASSERT_FALSE(live.WaitEvents(1).empty());

  auto r1 = client_->Put(prefix_ + "a", "1", 0, Soon());
  auto r2 = client_->Put(prefix_ + "b", "2", 0, Soon());
  auto r3 = client_->DeleteRange(prefix_ + "a", "", Soon());
  ASSERT_TRUE(r1.ok() && r2.ok() && r3.ok());
  ASSERT_TRUE(client_->Put("/elsewhere", "not watched", 0, Soon()).ok());

  auto is_ours = [&](const EtcdWatchEvent& e) { return e.kv.key != marker; };
  auto events = live.WaitUntil([&](const std::vector<EtcdWatchEvent>& e) {
    return std::count_if(e.begin(), e.end(), is_ours) >= 3;
  });
  std::vector<EtcdWatchEvent> ours;
  std::copy_if(events.begin(), events.end(), std::back_inserter(ours), is_ours);
  ASSERT_EQ(ours.size(), 3u);
  EXPECT_EQ(ours[0].type, EtcdWatchEvent::kPut);
  EXPECT_EQ(ours[0].kv.key, prefix_ + "a");
  EXPECT_EQ(ours[0].kv.value, "1");
  EXPECT_EQ(ours[0].kv.mod_revision, *r1);
  EXPECT_EQ(ours[1].kv.key, prefix_ + "b");
  EXPECT_EQ(ours[1].kv.mod_revision, *r2);
  EXPECT_EQ(ours[2].type, EtcdWatchEvent::kDelete);
  EXPECT_EQ(ours[2].kv.key, prefix_ + "a");
  EXPECT_GT(ours[2].kv.mod_revision, *r2);
  watch->reset();

  // From an old revision: the history replays, in order.
  WatchLog replay;
  auto old = client_->Watch(prefix_, end, *before, replay.EventsFn(), replay.ErrorFn());
  ASSERT_TRUE(old.ok());
  auto replayed = replay.WaitEvents(1);
  ASSERT_FALSE(replayed.empty());
  EXPECT_EQ(replayed[0].kv.key, prefix_ + "before");
  EXPECT_EQ(replayed[0].kv.mod_revision, *before);
  replayed = replay.WaitUntil([](const std::vector<EtcdWatchEvent>& e) {
    return e.back().type == EtcdWatchEvent::kDelete;
  });
  EXPECT_GE(replayed.size(), 5u);  // before, marker(s), a, b, delete a
  int64_t last = 0;
  for (const EtcdWatchEvent& e : replayed) {
    EXPECT_GT(e.kv.mod_revision, last);
    last = e.kv.mod_revision;
  }
  EXPECT_EQ(replayed.back().type, EtcdWatchEvent::kDelete);
}

TEST_F(EtcdClientTest, DestroyingAnIdleWatchIsPrompt) {
  WatchLog log;
  auto watch = client_->Watch(prefix_ + "idle", "", 0, log.EventsFn(), log.ErrorFn());
  ASSERT_TRUE(watch.ok());
  std::this_thread::sleep_for(milliseconds(300));  // let the stream settle into its wait
  auto start = SteadyClock::now();
  watch->reset();
  EXPECT_LT(SteadyClock::now() - start, seconds(1));
  EXPECT_TRUE(log.WaitErrors(0).empty());

  // Destroyed at once, while it may still be connecting.
  auto quick = client_->Watch(prefix_ + "idle", "", 0, log.EventsFn(), log.ErrorFn());
  ASSERT_TRUE(quick.ok());
  start = SteadyClock::now();
  quick->reset();
  EXPECT_LT(SteadyClock::now() - start, seconds(1));
}

TEST_F(EtcdClientTest, WatchMovesPastADeadEndpoint) {
  auto client =
      Connect("127.0.0.1:" + std::to_string(testing::FreePort()) + ";" + etcd_->endpoint());
  ASSERT_NE(client, nullptr);
  auto start = client_->Put(prefix_ + "k", "0", 0, Soon());
  ASSERT_TRUE(start.ok());
  WatchLog log;
  auto watch = client->Watch(prefix_ + "k", "", *start, log.EventsFn(), log.ErrorFn());
  ASSERT_TRUE(watch.ok());
  ASSERT_TRUE(client_->Put(prefix_ + "k", "1", 0, Soon()).ok());
  auto events = log.WaitEvents(2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kv.value, "0");
  EXPECT_EQ(events[1].kv.value, "1");
  auto errors = log.WaitErrors(1);
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors[0].code(), StatusCode::kUnavailable) << errors[0].ToString();
}

TEST(EtcdClientCompactionTest, CompactedRevisionIsOutOfRange) {
  auto etcd = testing::StartEtcdOrFail();
  ASSERT_NE(etcd, nullptr);
  auto client = Connect(etcd->endpoint());
  ASSERT_NE(client, nullptr);
  std::vector<int64_t> revs;
  for (int i = 0; i < 3; ++i) {
    auto rev = client->Put("k", std::to_string(i), 0, Soon());
    ASSERT_TRUE(rev.ok()) << rev.status().ToString();
    revs.push_back(*rev);
  }
  auto at_first = client->Range("k", "", 0, Soon(), revs[0]);
  ASSERT_TRUE(at_first.ok()) << at_first.status().ToString();
  ASSERT_EQ(at_first->kvs.size(), 1u);
  EXPECT_EQ(at_first->kvs[0].value, "0");

  ASSERT_TRUE(client->Compact(revs[2], Soon()).ok());
  auto old = client->Range("k", "", 0, Soon(), revs[0]);
  EXPECT_EQ(old.status().code(), StatusCode::kOutOfRange) << old.status().ToString();
  EXPECT_EQ(client->Compact(revs[1], Soon()).code(), StatusCode::kOutOfRange);
  auto now = client->Range("k", "", 0, Soon());
  ASSERT_TRUE(now.ok());
  ASSERT_EQ(now->kvs.size(), 1u);
  EXPECT_EQ(now->kvs[0].value, "2");

  // A watch from a compacted revision reports OutOfRange, then follows the newest.
  WatchLog log;
  auto watch = client->Watch("k", "", revs[0], log.EventsFn(), log.ErrorFn());
  ASSERT_TRUE(watch.ok());
  auto errors = log.WaitErrors(1);
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors[0].code(), StatusCode::kOutOfRange) << errors[0].ToString();
  auto deadline = SteadyClock::now() + seconds(10);
  while (log.WaitEvents(0).empty() && SteadyClock::now() < deadline) {
    ASSERT_TRUE(client->Put("k", "new", 0, Soon()).ok());
    std::this_thread::sleep_for(milliseconds(100));
  }
  auto events = log.WaitEvents(1);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events[0].kv.value, "new");
}

TEST(EtcdClientRestartTest, WatchResumesAfterEtcdRestarts) {
  auto etcd = testing::StartEtcdOrFail();
  ASSERT_NE(etcd, nullptr);
  auto client = Connect(etcd->endpoint());
  ASSERT_NE(client, nullptr);
  auto first = client->Put("k", "1", 0, Soon());
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  WatchLog log;
  auto watch = client->Watch("k", "", *first, log.EventsFn(), log.ErrorFn());
  ASSERT_TRUE(watch.ok());
  ASSERT_EQ(log.WaitEvents(1).size(), 1u);

  Status restarted = etcd->Restart(Deadline::In(seconds(30)));
  ASSERT_TRUE(restarted.ok()) << restarted.ToString();
  ASSERT_TRUE(client->Put("k", "2", 0, Soon()).ok());
  auto events = log.WaitEvents(2);
  ASSERT_EQ(events.size(), 2u);  // nothing lost, nothing repeated
  EXPECT_EQ(events[0].kv.value, "1");
  EXPECT_EQ(events[1].kv.value, "2");
  EXPECT_EQ(events[1].kv.mod_revision, *first + 1);
  EXPECT_FALSE(log.WaitErrors(1).empty());
}

TEST(EtcdClientUnreachableTest, UnavailableWithinTheDeadline) {
  auto client = Connect("127.0.0.1:" + std::to_string(testing::FreePort()) +
                        ",127.0.0.1:" + std::to_string(testing::FreePort()));
  ASSERT_NE(client, nullptr);
  auto start = SteadyClock::now();
  Deadline deadline = Deadline::In(seconds(3));
  auto range = client->Range("k", "", 0, deadline);
  EXPECT_EQ(range.status().code(), StatusCode::kUnavailable) << range.status().ToString();
  EXPECT_NE(range.status().message().find("is etcd running"), std::string::npos);
  EXPECT_EQ(client->LeaseGrant(seconds(2), deadline).status().code(), StatusCode::kUnavailable);
  EXPECT_LT(SteadyClock::now() - start, seconds(3));

  // A watch reports each failed try, backing off; destroying it ends the backoff at once.
  WatchLog log;
  auto watch = client->Watch("k", "", 0, log.EventsFn(), log.ErrorFn());
  ASSERT_TRUE(watch.ok());
  auto errors = log.WaitErrors(4);  // backoffs of 200, 400, 800 ms so far: now 1 s
  ASSERT_GE(errors.size(), 4u);
  EXPECT_EQ(errors[0].code(), StatusCode::kUnavailable) << errors[0].ToString();
  start = SteadyClock::now();
  watch->reset();
  EXPECT_LT(SteadyClock::now() - start, milliseconds(500));

  // An endpoint that accepts and never answers: DeadlineExceeded, on time.
  testing::BlackHoleListener hole;
  auto silent = Connect("127.0.0.1:" + std::to_string(hole.port()));
  ASSERT_NE(silent, nullptr);
  start = SteadyClock::now();
  auto put = silent->Put("k", "v", 0, Deadline::In(milliseconds(500)));
  EXPECT_EQ(put.status().code(), StatusCode::kDeadlineExceeded) << put.status().ToString();
  EXPECT_LT(SteadyClock::now() - start, seconds(2));
}

TEST(EtcdClientMalformedTest, WrongShapesAreUnavailableNotCrashes) {
  testing::ScriptedHttpServer fake;
  auto reply = [](std::string body) {
    return [body](const httplib::Request&, httplib::Response& res) {
      res.set_content(body, "application/json");
    };
  };
  fake.server().Post("/v3/kv/range", [](const httplib::Request& req, httplib::Response& res) {
    // The key picks the malformation: keys are base64 in the request body.
    static const std::pair<const char*, const char*> kReplies[] = {
        {"YQ==", R"({"kvs": [{"key": "YQ==", "mod_revision": {}}]})"},  // "a"
        {"Yg==", R"({"header": "x"})"},                                 // "b"
        {"Yw==", R"({"header": {"revision": "12x"}})"},                 // "c"
        {"ZA==", R"({"more": "yes"})"},                                 // "d"
        {"ZQ==", R"({"kvs": [17]})"},                                   // "e"
        {"Zg==", R"({"kvs": [{"key": 5}]})"},                           // "f"
        {"Zw==", R"([1, 2])"},                                          // "g"
        {"aA==", R"({"header": {"revision": 1e400}})"},                 // "h"
    };
    for (const auto& [key, body] : kReplies) {
      if (req.body.find(key) != std::string::npos) {
        res.set_content(body, "application/json");
        return;
      }
    }
    res.set_content(R"({"kvs": [)", "application/json");  // truncated
  });
  fake.server().Post("/v3/kv/put", reply(R"({"header": {"revision": "9223372036854775808"}})"));
  fake.server().Post("/v3/kv/deleterange", reply(R"({"deleted": true})"));
  fake.server().Post("/v3/kv/txn",
                     reply(R"({"succeeded": true, "responses": [{"response_range": []}]})"));
  fake.server().Post("/v3/lease/grant", reply(R"({"TTL": "2"})"));
  fake.server().Post(
      "/v3/lease/keepalive", [](const httplib::Request& req, httplib::Response& res) {
        if (req.body.find("\"ID\":1") != std::string::npos) {
          res.set_content(R"({"result": 5})", "application/json");
        } else {
          res.set_content(R"({"error": {"grpc_code": 5, "message": "lease not found"}})"
                          "\n",
                          "application/json");
        }
      });
  fake.server().Post("/v3/lease/revoke", [](const httplib::Request&, httplib::Response& res) {
    res.status = 500;
    res.set_content("oops", "text/plain");
  });
  fake.server().Post("/v3/watch", [](const httplib::Request& req, httplib::Response& res) {
    if (req.body.find("Ymln") != std::string::npos) {  // "big": a message past the cap
      res.set_content(std::string(5u << 20, 'x'), "application/json");
    } else {
      res.set_content(
          "{\"result\": {\"created\": true}}\n{\"result\": {\"events\": [{\"type\": "
          "\"BOGUS\"}]}}\n",
          "application/json");
    }
  });
  ASSERT_TRUE(fake.Start());
  auto client = Connect("127.0.0.1:" + std::to_string(fake.port()));
  ASSERT_NE(client, nullptr);

  for (std::string key : {"a", "b", "c", "d", "e", "f", "g", "h", "i"}) {
    auto got = client->Range(key, "", 0, Soon());
    EXPECT_EQ(got.status().code(), StatusCode::kUnavailable) << key << got.status().ToString();
    EXPECT_NE(got.status().message().find("etcd range '" + key + "'"), std::string::npos)
        << got.status().ToString();
  }
  EXPECT_EQ(client->Put("k", "v", 0, Soon()).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(client->DeleteRange("k", "", Soon()).status().code(), StatusCode::kUnavailable);
  EtcdTxn txn;
  txn.success.push_back(EtcdOp::Get("k"));
  auto t = client->Txn(txn, Soon());
  EXPECT_EQ(t.status().code(), StatusCode::kUnavailable) << t.status().ToString();
  txn.success.push_back(EtcdOp::Get("k2"));  // two ops, one response
  EXPECT_EQ(client->Txn(txn, Soon()).status().code(), StatusCode::kUnavailable);
  auto lease = client->LeaseGrant(seconds(2), Soon());
  EXPECT_EQ(lease.status().code(), StatusCode::kUnavailable) << lease.status().ToString();
  EXPECT_EQ(client->LeaseKeepAlive(1, Soon()).status().code(), StatusCode::kUnavailable);
  auto missing = client->LeaseKeepAlive(2, Soon());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound) << missing.status().ToString();
  EXPECT_NE(missing.status().message().find("lease not found"), std::string::npos);
  EXPECT_EQ(client->LeaseRevoke(1, Soon()).code(), StatusCode::kUnavailable);

  WatchLog log;
  auto watch = client->Watch("k", "", 0, log.EventsFn(), log.ErrorFn());
  ASSERT_TRUE(watch.ok());
  auto errors = log.WaitErrors(2);  // it keeps reconnecting
  ASSERT_GE(errors.size(), 2u);
  EXPECT_EQ(errors[0].code(), StatusCode::kUnavailable) << errors[0].ToString();
  EXPECT_NE(errors[0].message().find("etcd watch 'k'"), std::string::npos);
  EXPECT_TRUE(log.WaitEvents(0).empty());
  auto start = SteadyClock::now();
  watch->reset();  // most likely in its backoff between two tries
  EXPECT_LT(SteadyClock::now() - start, milliseconds(500));

  WatchLog big;
  auto huge = client->Watch("big", "", 0, big.EventsFn(), big.ErrorFn());
  ASSERT_TRUE(huge.ok());
  errors = big.WaitErrors(1);
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors[0].code(), StatusCode::kUnavailable) << errors[0].ToString();
  EXPECT_NE(errors[0].message().find("larger than"), std::string::npos) << errors[0].ToString();
}

}  // namespace
}  // namespace ferry::metadata
