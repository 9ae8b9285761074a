#include "store/ha_cluster.h"

namespace ferry::store {

Status CheckClusterId(std::string_view cluster_id) {
  constexpr std::string_view kForbidden("/\n\0", 3);
  if (cluster_id.empty() || cluster_id.size() > 128 ||
      cluster_id.find_first_of(kForbidden) != std::string_view::npos) {
    return InvalidArgumentError("bad cluster id '" + std::string(cluster_id) +
                                "' (1-128 characters, no '/')");
  }
  return OkStatus();
}

std::string ClusterPrefix(std::string_view cluster_id) {
  return "/ferry/store/" + std::string(cluster_id) + "/";
}

std::string LeaderKey(std::string_view cluster_id) { return ClusterPrefix(cluster_id) + "leader"; }

}  // namespace ferry::store
