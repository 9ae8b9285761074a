// Pairing prefill blocks with decode blocks and merging runs, as the protocol asks:
// "runs of consecutive ids on both sides are merged into one transfer", and "if prefill
// holds more blocks than decode asks for, it sends its last n; if decode asks for more,
// the request errors".
#pragma once

#include <cstdint>
#include <vector>

#include "ferry/status.h"

namespace ferry::connector {

// `count` blocks starting at src_block (prefill) go to dst_block (decode).
struct BlockRun {
  int64_t src_block = 0;
  int64_t dst_block = 0;
  int64_t count = 0;
};

// Errors: InvalidArgument "P num blocks less than D" when dst has more blocks than src,
// or for negative ids.
Result<std::vector<BlockRun>> PairBlockRuns(const std::vector<int32_t>& src_blocks,
                                            const std::vector<int64_t>& dst_blocks);

}  // namespace ferry::connector
