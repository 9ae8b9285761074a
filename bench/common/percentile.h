// Percentiles of latency samples for the load generators' reports.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace ferry::bench {

// The p-th percentile (p in [0, 100]) of `v`, interpolating linearly between the two
// nearest ranks; 0 for an empty vector.
inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double rank = p / 100.0 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(rank);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (rank - static_cast<double>(lo));
}

}  // namespace ferry::bench
