# Module edges: each library exports only its own headers.
#
# No source folder (src/, bench/, demo/) is on any include path. Instead each library
# calls ferry_export_headers, which links its headers under
# ${PROJECT_BINARY_DIR}/modinc/<target>/<PREFIX>/ and makes that folder the target's
# PUBLIC build include directory. So `#include "engine/llm_engine.h"` compiles in a target
# that links ferry_engine (directly, or through a library that links it PUBLIC) and fails
# with "No such file" anywhere else, which keeps the dependency graph in CMake true.
#
#   ferry_export_headers(<target> PREFIX <include prefix>
#                        [DIR <folder>] [FILES <header>...])
#
# PREFIX is the path the headers are included under ("engine", "store/master", "ferry").
# DIR is the folder that holds them (default: the current source folder). Without FILES
# the whole folder is linked (a module that owns its folder, internal/ headers included,
# which only its own sources are meant to use); with FILES only the listed headers are
# (several modules sharing one folder, e.g. src/store).
function(ferry_export_headers target)
  cmake_parse_arguments(ARG "" "PREFIX;DIR" "FILES" ${ARGN})
  if(NOT ARG_PREFIX)
    message(FATAL_ERROR "ferry_export_headers(${target}): PREFIX is required")
  endif()
  if(NOT ARG_DIR)
    set(ARG_DIR ${CMAKE_CURRENT_SOURCE_DIR})
  endif()
  set(root ${PROJECT_BINARY_DIR}/modinc/${target})
  set(dest ${root}/${ARG_PREFIX})
  if(ARG_FILES)
    foreach(header IN LISTS ARG_FILES)
      if(NOT EXISTS ${ARG_DIR}/${header})
        message(FATAL_ERROR "ferry_export_headers(${target}): ${ARG_DIR}/${header} does not exist")
      endif()
      get_filename_component(parent ${dest}/${header} DIRECTORY)
      file(MAKE_DIRECTORY ${parent})
      file(CREATE_LINK ${ARG_DIR}/${header} ${dest}/${header} SYMBOLIC)
    endforeach()
  else()
    get_filename_component(parent ${dest} DIRECTORY)
    file(MAKE_DIRECTORY ${parent})
    if(IS_SYMLINK ${dest} OR EXISTS ${dest})
      file(REMOVE ${dest})
    endif()
    file(CREATE_LINK ${ARG_DIR} ${dest} SYMBOLIC)
  endif()
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "INTERFACE_LIBRARY")
    target_include_directories(${target} INTERFACE $<BUILD_INTERFACE:${root}>)
  else()
    target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${root}>)
  endif()
endfunction()
