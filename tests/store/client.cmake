# Client suites: a real master in-process, real engines, tcp and shm.
ferry_add_gtest(store_client_test
  SOURCES client_test.cc
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
