# Client suites: a real master in-process, real engines, tcp and shm.
ferry_add_gtest(store_client_test
  SOURCES client_test.cc
  LIBS ferry_store ferry_store_master
  LABELS integration store)
# The SSD tier: a master with --enable_offload, a member lending a disk directory.
ferry_add_gtest(store_client_disk_tier_test
  SOURCES client_disk_tier_test.cc
  LIBS ferry_store ferry_store_master
  LABELS integration store)
if(FERRY_PYTHON_EXECUTABLE)
add_test(NAME store_e2e_test
  COMMAND ${FERRY_PYTHON_EXECUTABLE} -m pytest -q -p no:cacheprovider
    ${CMAKE_CURRENT_SOURCE_DIR}/store_e2e_test.py)
set_tests_properties(store_e2e_test PROPERTIES
  ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1;FERRY_BIN=$<TARGET_FILE:ferry_cli>"
  LABELS "store;e2e" TIMEOUT 240)
endif()
# The master's HA (etcd leader election, failover): needs etcd (skips without) and the
# ferry.store module (build/python) for its long-running client.
if(FERRY_PYTHON_EXECUTABLE)
find_program(FERRY_ETCD_BIN etcd)
add_test(NAME store_ha_e2e
  COMMAND ${FERRY_PYTHON_EXECUTABLE} -m pytest -q -p no:cacheprovider
    ${CMAKE_CURRENT_SOURCE_DIR}/store_ha_e2e_test.py)
set_tests_properties(store_ha_e2e PROPERTIES
  ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1;FERRY_BIN=$<TARGET_FILE:ferry_cli>;PYTHONPATH=${PROJECT_BINARY_DIR}/python;ETCD_BIN=${FERRY_ETCD_BIN}"
  LABELS "store;e2e" TIMEOUT 300)
endif()
# The SSD tier (offload to a member's disk, read back, promotion, crash, corruption, full
# disk): the master, members and clients as processes; the Python reader needs build/python.
if(FERRY_PYTHON_EXECUTABLE)
add_test(NAME store_ssd_e2e
  COMMAND ${FERRY_PYTHON_EXECUTABLE} -m pytest -q -p no:cacheprovider
    ${CMAKE_CURRENT_SOURCE_DIR}/store_ssd_e2e_test.py)
set_tests_properties(store_ssd_e2e PROPERTIES
  ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1;FERRY_BIN=$<TARGET_FILE:ferry_cli>;PYTHONPATH=${PROJECT_BINARY_DIR}/python"
  LABELS "store;e2e" TIMEOUT 300)
endif()
