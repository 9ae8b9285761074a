// The engine's metadata-service path (options.metadata = "http://..."): descriptors are
// published on start and after every (un)registration, found by name, and removed when
// the engine goes away.
#include <gtest/gtest.h>

#include <vector>

#include "ferry/transfer_engine.h"
#include "metadata/http_metadata_server.h"
#include "metadata/metadata_store.h"

#include <nlohmann/json.hpp>
#include "test_util.h"

namespace ferry {
namespace {

std::unique_ptr<TransferEngine> MakeWithMetadata(const std::string& url,
                                                 const std::string& secret = "") {
  TransferEngineOptions o;
  o.metadata = url;
  o.transport = "tcp";
  o.secret = secret;
  auto e = TransferEngine::Create(o);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  return e.ok() ? std::move(*e) : nullptr;
}

TEST(MetadataPathTest, HttpStorePublishesFindsAndRemovesSegments) {
  auto server = metadata::HttpMetadataServer::Create({});
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  std::string url = (*server)->url();
  auto target = MakeWithMetadata(url);
  auto initiator = MakeWithMetadata(url);
  ASSERT_TRUE(target && initiator);
  std::vector<char> a(1 << 20), b(1 << 20), local(1 << 20);
  ASSERT_TRUE(target->RegisterMemory({a.data(), a.size()}).ok());
  auto seg = initiator->OpenSegment(target->local_name());
  ASSERT_TRUE(seg.ok()) << seg.status().ToString();
  testing::FillRandom(local.data(), local.size(), 3);
  TransferRequest w{TransferOp::kWrite, local.data(), *seg, reinterpret_cast<uintptr_t>(a.data()),
                    local.size()};
  ASSERT_TRUE(initiator->TransferSync({&w, 1}).ok());
  EXPECT_EQ(a, local);
  // A buffer registered after the descriptor was cached is found by a refresh from the
  // store.
  ASSERT_TRUE(target->RegisterMemory({b.data(), b.size()}).ok());
  TransferRequest w2{TransferOp::kWrite, local.data(), *seg, reinterpret_cast<uintptr_t>(b.data()),
                     local.size()};
  Status s = initiator->TransferSync({&w2, 1});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(b, local);
  std::string name = target->local_name();
  target.reset();  // deletes its key
  auto other = MakeWithMetadata(url);
  auto gone = other->OpenSegment(name);
  EXPECT_EQ(gone.status().code(), StatusCode::kNotFound) << gone.status().ToString();
}

TEST(MetadataPathTest, RewrittenDescriptorIsRefusedWithASecret) {
  // Whoever can write to the store (an open metadata server, an etcd user) used to be able
  // to point a peer's writes at memory of its choosing by rewriting a descriptor.
  auto server = metadata::HttpMetadataServer::Create({});
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  std::string url = (*server)->url();
  auto target = MakeWithMetadata(url, "k");
  auto initiator = MakeWithMetadata(url, "k");
  ASSERT_TRUE(target && initiator);
  std::vector<char> a(4096);
  ASSERT_TRUE(target->RegisterMemory({a.data(), a.size()}).ok());
  ASSERT_TRUE(initiator->OpenSegment(target->local_name()).ok());

  auto attacker = MakeWithMetadata(url);  // no secret: publishes unsigned
  ASSERT_TRUE(attacker);
  auto store = metadata::MetadataStore::Create(url);
  ASSERT_TRUE(store.ok());
  const std::string key = metadata::SegmentKey(target->local_name());
  SegmentDescriptor fake = attacker->LocalDescriptor();
  fake.name = target->local_name();
  ASSERT_TRUE((*store)->Put(key, fake.ToJson(), Deadline::In(std::chrono::seconds(5))).ok());
  auto fresh = MakeWithMetadata(url, "k");
  auto seg = fresh->OpenSegment(target->local_name());
  ASSERT_FALSE(seg.ok());
  EXPECT_EQ(seg.status().code(), StatusCode::kPermissionDenied) << seg.status().ToString();
  // A forged envelope fails too.
  std::string forged =
      R"({"ferry_signed_descriptor":)" + nlohmann::json(fake.ToJson()).dump() + R"(,"mac":"00"})";
  ASSERT_TRUE((*store)->Put(key, forged, Deadline::In(std::chrono::seconds(5))).ok());
  EXPECT_EQ(fresh->OpenSegment(target->local_name()).status().code(),
            StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace ferry
