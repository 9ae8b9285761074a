# `cmake --install <build> [--prefix P] [--component C]` puts libferry in place for other
# projects:
#   component ferry_runtime      lib/libferry.so.<version> (+ its soname link)
#   component ferry_development  include/ferry/*.h, lib/libferry.so,
#                                lib/cmake/Ferry/ (find_package(Ferry) -> Ferry::ferry),
#                                lib/pkgconfig/ferry.pc (pkg-config ferry)
#   component ferry_cli          bin/ferry
# Every installed path is relative to the prefix, so an installed tree can be moved.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(FERRY_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/Ferry)

install(TARGETS ferry EXPORT FerryTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    COMPONENT ferry_runtime
    NAMELINK_COMPONENT ferry_development)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/ferry
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  COMPONENT ferry_development
  FILES_MATCHING PATTERN "*.h")
install(EXPORT FerryTargets
  NAMESPACE Ferry::
  DESTINATION ${FERRY_CMAKE_DIR}
  COMPONENT ferry_development)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/FerryConfig.cmake.in
  ${PROJECT_BINARY_DIR}/FerryConfig.cmake
  INSTALL_DESTINATION ${FERRY_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/FerryConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/FerryConfig.cmake ${PROJECT_BINARY_DIR}/FerryConfigVersion.cmake
  DESTINATION ${FERRY_CMAKE_DIR}
  COMPONENT ferry_development)

# ferry.pc finds the prefix from its own place (${pcfiledir}), not from the configure-time
# CMAKE_INSTALL_PREFIX, so `--prefix` at install time and moving the tree both work.
file(RELATIVE_PATH FERRY_PC_TO_PREFIX
  /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
string(REGEX REPLACE "/$" "" FERRY_PC_TO_PREFIX "${FERRY_PC_TO_PREFIX}")
configure_file(${CMAKE_CURRENT_LIST_DIR}/ferry.pc.in ${PROJECT_BINARY_DIR}/ferry.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/ferry.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
  COMPONENT ferry_development)

install(TARGETS ferry_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT ferry_cli)
