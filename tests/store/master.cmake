# Master suites.
ferry_add_gtest(store_offset_allocator_test
  SOURCES offset_allocator_test.cc
  LIBS ferry_store_master
  LABELS unit store)
ferry_add_gtest(store_segment_table_test
  SOURCES segment_table_test.cc
  LIBS ferry_store_master
  LABELS unit store)
ferry_add_gtest(store_master_service_test
  SOURCES master_service_test.cc
  LIBS ferry_store_master
  LABELS unit store)
ferry_add_gtest(store_master_disk_tier_test
  SOURCES master_disk_tier_test.cc
  LIBS ferry_store_master
  LABELS unit store)
ferry_add_gtest(store_master_server_test
  SOURCES master_server_test.cc
  LIBS ferry_store_master ferry_store_rpc PkgConfig::HTTPLIB nlohmann_json::nlohmann_json
  LABELS integration store)
if(FERRY_PYTHON_EXECUTABLE)
add_test(NAME store_master_cli_test
  COMMAND ${FERRY_PYTHON_EXECUTABLE} -m pytest -q -p no:cacheprovider
    ${CMAKE_CURRENT_SOURCE_DIR}/ferry_master_cli_test.py)
set_tests_properties(store_master_cli_test PROPERTIES
  ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1;FERRY_BIN=$<TARGET_FILE:ferry_cli>"
  LABELS "store;integration" TIMEOUT 120)
endif()
ferry_add_gtest(store_master_metadata_log_test
  SOURCES metadata_log_test.cc
  LIBS ferry_store_master
  LABELS unit store)
# HA against a real etcd: the log in etcd, the election, failover with a following client.
ferry_add_gtest(store_master_ha_test
  SOURCES master_ha_test.cc ../metadata/metadata_test_util.cc
  LIBS ferry_store_master ferry_store ferry_store_rpc ferry_metadata PkgConfig::HTTPLIB
    nlohmann_json::nlohmann_json
  LABELS integration store
  TIMEOUT 300)
