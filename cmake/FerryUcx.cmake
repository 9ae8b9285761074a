# UCX (libucx-dev): the optional "ucx" transport (docs/ucx.md).
#   FERRY_WITH_UCX  ON by default when UCX is found (pkg-config "ucx", else the ucp/uct/ucs
#                   libraries); OFF builds everything the same without the ucx transport.
# Defines the target ferry_ucx_deps (UCX's headers and libraries) when on.
find_package(PkgConfig QUIET)
set(_ferry_ucx_found OFF)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(UCX QUIET IMPORTED_TARGET ucx)
  if(UCX_FOUND)
    set(_ferry_ucx_found ON)
  endif()
endif()
if(NOT _ferry_ucx_found)
  find_path(UCX_INCLUDE_DIR ucp/api/ucp.h)
  find_library(UCX_UCP_LIBRARY ucp)
  find_library(UCX_UCT_LIBRARY uct)
  find_library(UCX_UCS_LIBRARY ucs)
  if(UCX_INCLUDE_DIR AND UCX_UCP_LIBRARY AND UCX_UCT_LIBRARY AND UCX_UCS_LIBRARY)
    set(_ferry_ucx_found ON)
  endif()
endif()

option(FERRY_WITH_UCX "Build the ucx transport (needs libucx-dev)" ${_ferry_ucx_found})

if(FERRY_WITH_UCX)
  if(NOT _ferry_ucx_found)
    message(FATAL_ERROR "FERRY_WITH_UCX is ON but UCX was not found: apt-get install libucx-dev, "
                        "or configure with -DFERRY_WITH_UCX=OFF")
  endif()
  add_library(ferry_ucx_deps INTERFACE)
  if(UCX_FOUND)
    target_link_libraries(ferry_ucx_deps INTERFACE PkgConfig::UCX)
  else()
    target_include_directories(ferry_ucx_deps INTERFACE ${UCX_INCLUDE_DIR})
    target_link_libraries(ferry_ucx_deps INTERFACE ${UCX_UCP_LIBRARY} ${UCX_UCT_LIBRARY}
                                                   ${UCX_UCS_LIBRARY})
  endif()
  message(STATUS "ucx transport: on")
else()
  message(STATUS "ucx transport: off")
endif()
