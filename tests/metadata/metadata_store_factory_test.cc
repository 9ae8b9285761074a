// MetadataStore::Create: every accepted connection string and the rejected ones.
#include <gtest/gtest.h>

#include "metadata/etcd_store.h"
#include "metadata/http_store.h"
#include "metadata/metadata_store.h"

namespace ferry::metadata {
namespace {

TEST(MetadataStoreFactoryTest, HttpUrlsMakeHttpStores) {
  for (std::string url : {"http://127.0.0.1:8080/metadata", "http://localhost:8080",
                          "http://127.0.0.1/metadata", "http://[::1]:8080/a/b"}) {
    auto store = MetadataStore::Create(url);
    ASSERT_TRUE(store.ok()) << url << ": " << store.status().ToString();
    EXPECT_NE(dynamic_cast<HttpMetadataStore*>(store->get()), nullptr) << url;
    EXPECT_EQ((*store)->Describe(), url);
  }
}

TEST(MetadataStoreFactoryTest, EtcdFormsMakeEtcdStores) {
  for (std::string conn :
       {"etcd://127.0.0.1:2379", "etcd://127.0.0.1:2379,127.0.0.1:22379", "etcd://localhost",
        "127.0.0.1:2379", "127.0.0.1:2379,127.0.0.1:22379", "[::1]:2379", "localhost:2379"}) {
    auto store = MetadataStore::Create(conn);
    ASSERT_TRUE(store.ok()) << conn << ": " << store.status().ToString();
    auto* etcd = dynamic_cast<EtcdMetadataStore*>(store->get());
    ASSERT_NE(etcd, nullptr) << conn;
    EXPECT_EQ(etcd->Describe(), conn);
  }
  auto two = EtcdMetadataStore::Create("127.0.0.1:2379,127.0.0.1:22379");
  ASSERT_TRUE(two.ok());
  EXPECT_EQ((*two)->endpoints().size(), 2u);
}

TEST(MetadataStoreFactoryTest, P2PHandshakeIsRejectedAsNotAStore) {
  auto store = MetadataStore::Create("P2PHANDSHAKE");
  EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(store.status().message().find("engine"), std::string::npos)
      << store.status().ToString();
}

TEST(MetadataStoreFactoryTest, UnknownFormsListTheAcceptedOnes) {
  for (std::string conn :
       {"", "redis://127.0.0.1:6379", "https://127.0.0.1:8080/metadata", "P2PHANDSHAK",
        "p2phandshake", "127.0.0.1", "127.0.0.1:", "127.0.0.1:2379,", "etcd://", "etcd://a:1,,b:2",
        "etcd://a:99999", "etcd://127.0.0.1:2379/v3", "http://", "http://:8080/metadata",
        "http://127.0.0.1:8080/metadata?key=x", "http://a:b/metadata"}) {
    auto store = MetadataStore::Create(conn);
    EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument)
        << "'" << conn << "' was accepted";
  }
  auto store = MetadataStore::Create("zookeeper://127.0.0.1:2181");
  EXPECT_NE(store.status().message().find("http://host:port/path"), std::string::npos);
  EXPECT_NE(store.status().message().find("etcd://host:port"), std::string::npos);
}

}  // namespace
}  // namespace ferry::metadata
