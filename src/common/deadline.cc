#include "common/deadline.h"

#include <climits>

namespace ferry {

int Deadline::RemainingMsForPoll() const {
  if (IsInfinite()) return -1;
  auto left = Remaining();
  if (left.count() <= 0) return 0;
  int64_t ms = (left.count() + 999'999) / 1'000'000;
  return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

}  // namespace ferry
