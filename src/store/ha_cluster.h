// The names an HA cluster of store masters uses in etcd, shared by the masters
// (`ferry master --cluster_id`) and the clients that follow their leader (MasterLocator).
//
//   FERRY_RETURN_IF_ERROR(ferry::store::CheckClusterId(id));
//   std::string key = ferry::store::LeaderKey(id);  // "/ferry/store/<id>/leader"
#pragma once

#include <string>
#include <string_view>

#include "ferry/status.h"

namespace ferry::store {

// Mooncake's default cluster id.
inline constexpr std::string_view kDefaultClusterId = "mooncake_cluster";

// InvalidArgument (naming the id) unless it is 1-128 characters without '/', NUL or a
// newline: it becomes one component of etcd keys.
Status CheckClusterId(std::string_view cluster_id);
// "/ferry/store/<cluster_id>/": the prefix of every key the cluster keeps in etcd.
std::string ClusterPrefix(std::string_view cluster_id);
// ClusterPrefix + "leader": the key the leader holds under its lease.
std::string LeaderKey(std::string_view cluster_id);

}  // namespace ferry::store
