// Helpers for the model tests: a tiny model written once per test binary, and the bridge
// to the numpy reference (tests/engine/reference_forward.py, run with /usr/bin/python3).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fixtures/make_model.h"

namespace ferry::engine::testing {

// Removes the directories it was given when the test binary exits.
struct TempDirCleaner {
  std::vector<std::string> dirs;
  ~TempDirCleaner() {
    std::error_code ec;
    for (const std::string& d : dirs) std::filesystem::remove_all(d, ec);
  }
};

// A fresh directory under the gtest temp dir (removed at exit); `name` and the pid keep
// parallel tests apart.
inline std::string TempModelDir(const std::string& name) {
  static TempDirCleaner cleaner;
  std::string dir = ::testing::TempDir() + "ferry_model_" + name + "_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  cleaner.dirs.push_back(dir);
  return dir;
}

// Writes a tiny model with `options` into a temp dir and returns the dir.
inline std::string MakeTinyModel(const std::string& name,
                                 const fixtures::MakeModelOptions& options) {
  const std::string dir = TempModelDir(name);
  const Status s = fixtures::MakeModel(dir, options);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return dir;
}

// One full sequence and the C++ logits at some of its positions.
struct RefCase {
  std::vector<int32_t> tokens;
  std::vector<int> positions;
  std::vector<std::vector<float>> logits;  // one vocab row per position
};

inline bool ReferenceAvailable() {
  return std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0;
}

// Runs the numpy reference on `cases` and expects every logit to match within
// |cpp - ref| <= 1e-4 * max(1, |ref|). Returns the largest absolute difference seen.
inline double CompareWithReference(const std::string& model_dir,
                                   const std::vector<RefCase>& cases) {
  nlohmann::json in = nlohmann::json::array();
  for (const RefCase& c : cases) in.push_back({{"tokens", c.tokens}, {"positions", c.positions}});
  const std::string cases_path = model_dir + "/ref_cases.json";
  const std::string out_path = model_dir + "/ref_out.json";
  std::ofstream(cases_path) << in.dump();
  const std::string cmd = "/usr/bin/python3 " FERRY_ENGINE_TEST_DIR "/reference_forward.py " +
                          model_dir + " " + cases_path + " " + out_path;
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream f(out_path);
  nlohmann::json out = nlohmann::json::parse(f, nullptr, false);
  EXPECT_FALSE(out.is_discarded());
  EXPECT_EQ(out.size(), cases.size());
  double max_diff = 0;
  for (size_t c = 0; c < cases.size() && c < out.size(); ++c) {
    EXPECT_EQ(out[c].size(), cases[c].logits.size());
    for (size_t p = 0; p < cases[c].logits.size() && p < out[c].size(); ++p) {
      const auto ref = out[c][p].get<std::vector<double>>();
      const auto& got = cases[c].logits[p];
      EXPECT_EQ(ref.size(), got.size());
      if (ref.size() != got.size()) continue;
      int bad = 0;
      for (size_t i = 0; i < ref.size(); ++i) {
        const double d = std::fabs(got[i] - ref[i]);
        max_diff = std::max(max_diff, d);
        if (d > 1e-4 * std::max(1.0, std::fabs(ref[i])) && bad++ < 3) {
          ADD_FAILURE() << "case " << c << " position " << cases[c].positions[p] << " logit " << i
                        << ": cpp " << got[i] << " vs numpy " << ref[i];
        }
      }
    }
  }
  return max_diff;
}

}  // namespace ferry::engine::testing
