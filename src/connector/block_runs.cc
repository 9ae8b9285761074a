#include "connector/block_runs.h"

#include <string>

namespace ferry::connector {

Result<std::vector<BlockRun>> PairBlockRuns(const std::vector<int32_t>& src_blocks,
                                            const std::vector<int64_t>& dst_blocks) {
  if (dst_blocks.size() > src_blocks.size()) {
    return InvalidArgumentError("P num blocks less than D: prefill holds " +
                                std::to_string(src_blocks.size()) + ", decode asks for " +
                                std::to_string(dst_blocks.size()));
  }
  // Decode may already hold a prefix (its own cache hits): send prefill's last n blocks.
  size_t offset = src_blocks.size() - dst_blocks.size();
  std::vector<BlockRun> runs;
  for (size_t i = 0; i < dst_blocks.size(); ++i) {
    int64_t s = src_blocks[offset + i];
    int64_t d = dst_blocks[i];
    if (s < 0 || d < 0) return InvalidArgumentError("negative block id");
    if (!runs.empty() && runs.back().src_block + runs.back().count == s &&
        runs.back().dst_block + runs.back().count == d) {
      runs.back().count++;
    } else {
      runs.push_back({s, d, 1});
    }
  }
  return runs;
}

}  // namespace ferry::connector
