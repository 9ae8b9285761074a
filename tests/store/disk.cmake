# The member's SSD tier (src/store/disk): bucket files on a real file system.
find_library(FERRY_XXHASH_LIB xxhash REQUIRED)  # the test crafts files with valid checksums
ferry_add_gtest(store_bucket_store_test
  SOURCES bucket_store_test.cc
  LIBS ferry_store_disk ${FERRY_XXHASH_LIB}
  LABELS unit store)
ferry_add_gtest(store_disk_checksum_test
  SOURCES disk_checksum_test.cc
  LIBS ferry_store_disk ${FERRY_XXHASH_LIB}
  LABELS unit store)
