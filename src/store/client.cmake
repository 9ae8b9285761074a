# The store client library ferry_store (see CMakeLists.txt).
#   master_client  the master's RPCs with deadlines, auth tags and error mapping
#   master_locator which master to call: one, a list, or the HA leader named in etcd
#   client_impl    Client (client.h): puts and gets over the transfer engine
#   disk_tier      a member's SSD tier: offloads, promotions, its Member service
#   member_client  a reader's calls to a member's Member service (disk copies)
add_library(ferry_store STATIC client_impl.cc disk_tier.cc master_client.cc master_locator.cc
  member_client.cc)
ferry_export_headers(ferry_store PREFIX store
  FILES client.h client_impl.h disk_tier.h master_client.h master_locator.h member_client.h)
target_link_libraries(ferry_store PUBLIC ferry_store_core ferry_transfer ferry_common
  PRIVATE ferry_store_rpc ferry_store_disk ferry_metadata)
