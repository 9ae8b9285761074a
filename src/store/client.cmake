# The store client library ferry_store (see CMakeLists.txt).
#   master_client  the master's RPCs with deadlines, auth tags and error mapping
#   master_locator which master to call: one, a list, or the HA leader named in etcd
#   client_impl    Client (client.h): puts and gets over the transfer engine
add_library(ferry_store STATIC client_impl.cc master_client.cc master_locator.cc)
target_link_libraries(ferry_store PUBLIC ferry_store_core ferry_transfer ferry_common
  PRIVATE ferry_store_rpc ferry_metadata)
