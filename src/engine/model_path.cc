#include "engine/model_path.h"

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace ferry::engine {
namespace {

namespace fs = std::filesystem;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

// The hub cache directory, by the precedence huggingface_hub uses.
std::string HubCacheDir() {
  if (std::string d = Env("HF_HUB_CACHE"); !d.empty()) return d;
  if (std::string d = Env("HUGGINGFACE_HUB_CACHE"); !d.empty()) return d;
  if (std::string d = Env("HF_HOME"); !d.empty()) return d + "/hub";
  if (std::string d = Env("XDG_CACHE_HOME"); !d.empty()) return d + "/huggingface/hub";
  return Env("HOME") + "/.cache/huggingface/hub";
}

// "org/name" or "name": letters, digits, '-', '_', '.', at most one '/', no "..".
bool LooksLikeRepoId(const std::string& s) {
  if (s.empty() || s.front() == '/' || s.back() == '/' || s.find("..") != std::string::npos) {
    return false;
  }
  int slashes = 0;
  for (char c : s) {
    if (c == '/') {
      ++slashes;
    } else if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return slashes <= 1;
}

// The snapshot directory of one cached repo, or "" when there is none.
std::string PickSnapshot(const fs::path& repo) {
  std::error_code ec;
  const fs::path snapshots = repo / "snapshots";
  std::string main_rev;
  if (std::ifstream ref(repo / "refs" / "main"); ref) std::getline(ref, main_rev);
  if (!main_rev.empty() && fs::is_directory(snapshots / main_rev, ec)) {
    return (snapshots / main_rev).string();
  }
  fs::path newest;
  fs::file_time_type newest_time{};
  for (fs::directory_iterator it(snapshots, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_directory(ec)) continue;
    const auto t = it->last_write_time(ec);
    if (newest.empty() || t > newest_time) {
      newest = it->path();
      newest_time = t;
    }
  }
  return newest.string();
}

}  // namespace

Result<std::string> ResolveModelPath(const std::string& model) {
  std::error_code ec;
  if (fs::is_directory(model, ec)) return model;
  const std::string hint =
      " (expected an HF-format directory with config.json, *.safetensors and tokenizer.json";
  if (!LooksLikeRepoId(model)) {
    return NotFoundError("model directory '" + model + "' does not exist" + hint + ")");
  }
  std::string folder = "models--";  // org/name -> models--org--name
  for (char c : model) folder += c == '/' ? std::string("--") : std::string(1, c);
  const fs::path repo = fs::path(HubCacheDir()) / folder;
  std::string snapshot = PickSnapshot(repo);
  if (!snapshot.empty()) return snapshot;
  return NotFoundError("model '" + model + "' is neither a directory nor in the Hugging Face " +
                       "cache (looked for " + (repo / "snapshots").string() + hint +
                       "; Ferry does not download: fetch it with `huggingface-cli download " +
                       model + "` or pass a directory)");
}

}  // namespace ferry::engine
