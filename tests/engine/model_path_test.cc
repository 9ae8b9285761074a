// ResolveModelPath: directories as is, repo ids through a Hugging Face hub cache laid out
// as huggingface_hub writes it (refs/main, snapshots/<rev>/ with symlinks into blobs/).
#include "engine/model_path.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace ferry::engine {
namespace {

namespace fs = std::filesystem;

class ModelPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ferry-hfcache-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    const char* old = std::getenv("HF_HUB_CACHE");
    had_old_ = old != nullptr;
    if (had_old_) old_ = old;
    ::setenv("HF_HUB_CACHE", (root_ + "/hub").c_str(), 1);
  }
  void TearDown() override {
    if (had_old_) {
      ::setenv("HF_HUB_CACHE", old_.c_str(), 1);
    } else {
      ::unsetenv("HF_HUB_CACHE");
    }
    fs::remove_all(root_);
  }
  // Writes models--org--name with one snapshot `rev` holding config.json -> blobs/<rev>.
  std::string AddSnapshot(const std::string& folder, const std::string& rev) {
    const fs::path repo = fs::path(root_) / "hub" / folder;
    fs::create_directories(repo / "blobs");
    fs::create_directories(repo / "snapshots" / rev);
    std::ofstream(repo / "blobs" / rev) << "{}";
    fs::create_symlink(fs::path("../../blobs") / rev, repo / "snapshots" / rev / "config.json");
    return (repo / "snapshots" / rev).string();
  }
  std::string root_, old_;
  bool had_old_ = false;
};

TEST_F(ModelPathTest, DirectoryIsUsedAsIs) {
  auto p = ResolveModelPath(root_);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(*p, root_);
}

TEST_F(ModelPathTest, RepoIdFindsTheSnapshotRefsMainNames) {
  AddSnapshot("models--Qwen--Qwen2.5-0.5B-Instruct", "aaa111");
  const std::string main = AddSnapshot("models--Qwen--Qwen2.5-0.5B-Instruct", "bbb222");
  AddSnapshot("models--Qwen--Qwen2.5-0.5B-Instruct", "ccc333");
  fs::create_directories(root_ + "/hub/models--Qwen--Qwen2.5-0.5B-Instruct/refs");
  std::ofstream(root_ + "/hub/models--Qwen--Qwen2.5-0.5B-Instruct/refs/main") << "bbb222";
  auto p = ResolveModelPath("Qwen/Qwen2.5-0.5B-Instruct");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(*p, main);
  EXPECT_TRUE(fs::exists(*p + "/config.json"));  // through the blob symlink
}

TEST_F(ModelPathTest, WithoutRefsMainTheOnlySnapshotIsUsed) {
  const std::string only = AddSnapshot("models--gpt2", "0123abc");
  auto p = ResolveModelPath("gpt2");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(*p, only);
}

TEST_F(ModelPathTest, HfHomeIsHonouredWhenHubCacheIsUnset) {
  ::unsetenv("HF_HUB_CACHE");
  const char* home = std::getenv("HF_HOME");
  const std::string saved = home ? home : "";
  ::setenv("HF_HOME", root_.c_str(), 1);  // $HF_HOME/hub is root_/hub
  const std::string snap = AddSnapshot("models--org--m", "r1");
  auto p = ResolveModelPath("org/m");
  if (home) {
    ::setenv("HF_HOME", saved.c_str(), 1);
  } else {
    ::unsetenv("HF_HOME");
  }
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(*p, snap);
}

TEST_F(ModelPathTest, MissingModelSaysWhereItLookedAndHowToFetch) {
  auto p = ResolveModelPath("Qwen/Qwen2.5-7B-Instruct");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kNotFound);
  EXPECT_NE(p.status().message().find(root_ + "/hub/models--Qwen--Qwen2.5-7B-Instruct"),
            std::string::npos)
      << p.status().message();
  EXPECT_NE(p.status().message().find("huggingface-cli download"), std::string::npos);
  // Not a repo id: a plain missing-directory message.
  for (const char* bad : {"/no/such/dir", "a/b/c", "../x", "x y"}) {
    auto q = ResolveModelPath(bad);
    ASSERT_FALSE(q.ok()) << bad;
    EXPECT_NE(q.status().message().find("does not exist"), std::string::npos) << bad;
  }
}

}  // namespace
}  // namespace ferry::engine
