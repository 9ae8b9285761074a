# Header examples that compile: the usage examples in header comments are extracted at
# configure time into .cc files that the build compiles, so an example that stops matching
# the code breaks the build.
#
# The marker convention (in a header's comments):
#
#   // Example:
#   //   FERRY_ASSIGN_OR_RETURN(auto cache, KvCache::Create(layout));
#   //   void* base = cache->base();
#
# "// Example:" alone on a line starts an example; the code is every following line that
# starts with "//" and three spaces (those five characters are removed), up to the first
# line that does not. A function-scope example is compiled as the body of a function that
# returns ferry::Status (so FERRY_RETURN_IF_ERROR and FERRY_ASSIGN_OR_RETURN work), with
# "return ferry::OkStatus();" after it. "// Example (namespace scope):" starts one whose code
# sits at namespace scope (declarations, whole functions). Either way the code is placed in
# the header's first namespace (so it reads as if written next to the header's
# declarations) inside a namespace of its own, after an #include of the header itself.
# Blocks of indented comment lines without a marker (pictures, JSON, call tables) are free
# text and are not compiled.

# ';', '[', ']' and backslashes in text held as a CMake list would split, join or escape
# list items, so they travel as control characters 1-4 and are put back when the code is
# written. Both change the variable named `var` in the caller's scope.
function(_ferry_header_example_escape var)
  string(ASCII 1 semi)
  string(ASCII 2 lbracket)
  string(ASCII 3 rbracket)
  string(ASCII 4 backslash)
  set(text "${${var}}")
  string(REPLACE "\\" "${backslash}" text "${text}")
  string(REPLACE ";" "${semi}" text "${text}")
  string(REPLACE "[" "${lbracket}" text "${text}")
  string(REPLACE "]" "${rbracket}" text "${text}")
  set(${var} "${text}" PARENT_SCOPE)
endfunction()

function(_ferry_header_example_unescape var)
  string(ASCII 1 semi)
  string(ASCII 2 lbracket)
  string(ASCII 3 rbracket)
  string(ASCII 4 backslash)
  set(text "${${var}}")
  string(REPLACE "${semi}" ";" text "${text}")
  string(REPLACE "${lbracket}" "[" text "${text}")
  string(REPLACE "${rbracket}" "]" text "${text}")
  string(REPLACE "${backslash}" "\\" text "${text}")
  set(${var} "${text}" PARENT_SCOPE)
endfunction()

# ferry_extract_header_examples(<header> <include_name> <out_dir> <result_var>)
#   <header>        absolute path of the header
#   <include_name>  how the generated file includes it ("engine/kv_cache.h")
#   <out_dir>       where the generated .cc files go
#   <result_var>    set to the list of generated files, one per example, in header order
# Fails the configure step if the header has no marker, or a marker without code lines.
# The header is added to CMAKE_CONFIGURE_DEPENDS: editing it re-runs the extraction.
function(ferry_extract_header_examples header include_name out_dir result_var)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${header}")
  file(READ "${header}" content)

  # Lines as a CMake list (see _ferry_header_example_escape).
  _ferry_header_example_escape(content)
  string(REPLACE "\n" ";" lines "${content}")

  set(ns "")
  foreach(line IN LISTS lines)
    if(line MATCHES "^namespace ([A-Za-z0-9_:]+) {")
      set(ns "${CMAKE_MATCH_1}")
      break()
    endif()
  endforeach()

  set(results "")
  set(index 0)
  set(mode "")  # "", "function" or "namespace": inside an example of that kind
  set(code "")
  set(code_lines 0)
  set(marker_line 0)
  set(line_no 0)
  # One empty item past the end closes an example that ends the file.
  list(APPEND lines "")
  foreach(line IN LISTS lines)
    math(EXPR line_no "${line_no} + 1")
    if(NOT mode STREQUAL "")
      if(line MATCHES "^//   (.*)$")
        string(APPEND code "${CMAKE_MATCH_1}\n")
        math(EXPR code_lines "${code_lines} + 1")
        continue()
      endif()
      # The example ended: write it out.
      if(code_lines EQUAL 0)
        message(FATAL_ERROR "${header}:${marker_line}: an example marker without code lines "
                            "(the code follows as lines that start with \"//\" and three spaces)")
      endif()
      math(EXPR index "${index} + 1")
      _ferry_write_header_example("${header}" "${include_name}" "${ns}" "${mode}" "${index}"
                                  "${marker_line}" "${code}" "${out_dir}" generated)
      list(APPEND results "${generated}")
      set(mode "")
      set(code "")
      set(code_lines 0)
    endif()
    string(STRIP "${line}" stripped)
    if(stripped STREQUAL "// Example:")
      set(mode "function")
      set(marker_line ${line_no})
    elseif(stripped STREQUAL "// Example (namespace scope):")
      set(mode "namespace")
      set(marker_line ${line_no})
    endif()
  endforeach()

  if(index EQUAL 0)
    message(FATAL_ERROR "${header}: listed for header examples but has no \"// Example:\" "
                        "or \"// Example (namespace scope):\" marker")
  endif()
  set(${result_var} "${results}" PARENT_SCOPE)
endfunction()

function(_ferry_write_header_example header include_name ns mode index marker_line code out_dir
         result_var)
  _ferry_header_example_unescape(code)

  set(text "// Generated by cmake/HeaderExamples.cmake from the example at\n")
  string(APPEND text "// ${header}:${marker_line}. Edit the header, not this file.\n")
  string(APPEND text "#include \"${include_name}\"\n\n#include \"ferry/status.h\"\n\n")
  if(NOT ns STREQUAL "")
    string(APPEND text "namespace ${ns} {\n")
  endif()
  string(APPEND text "namespace header_example_${index} {\n\n")
  if(mode STREQUAL "function")
    string(APPEND text "::ferry::Status Run() {\n${code}  return ::ferry::OkStatus();\n}\n")
  else()
    string(APPEND text "${code}")
  endif()
  string(APPEND text "\n}  // namespace header_example_${index}\n")
  if(NOT ns STREQUAL "")
    string(APPEND text "}  // namespace ${ns}\n")
  endif()

  string(REGEX REPLACE "[^A-Za-z0-9]" "_" stem "${include_name}")
  set(out "${out_dir}/${stem}_${index}.cc")
  # Rewritten only when it changes, so a re-configure does not recompile every example.
  set(old "")
  if(EXISTS "${out}")
    file(READ "${out}" old)
  endif()
  if(NOT old STREQUAL text)
    file(WRITE "${out}" "${text}")
  endif()
  set(${result_var} "${out}" PARENT_SCOPE)
endfunction()

# ferry_add_header_examples(<header> <library>)
#   <header>   the header's path under src/ or include/ ("engine/kv_cache.h"), or from the
#              top for bench/ and demo/ ("bench/trace/request_trace.h")
#   <library>  the target that owns it (its include paths and usage requirements)
# Adds, for example N of the header, the OBJECT library header_example_<stem>_<N> (in ALL:
# a broken example breaks the build) and a ctest entry of the same name that builds it.
function(ferry_add_header_examples include_name library)
  if(EXISTS "${PROJECT_SOURCE_DIR}/src/${include_name}")
    set(header "${PROJECT_SOURCE_DIR}/src/${include_name}")
  elseif(EXISTS "${PROJECT_SOURCE_DIR}/include/${include_name}")
    set(header "${PROJECT_SOURCE_DIR}/include/${include_name}")
  elseif(EXISTS "${PROJECT_SOURCE_DIR}/${include_name}")  # bench/..., demo/...
    set(header "${PROJECT_SOURCE_DIR}/${include_name}")
  else()
    message(FATAL_ERROR "header example: no ${include_name} under src/, include/ or the top")
  endif()
  ferry_extract_header_examples("${header}" "${include_name}"
                                "${CMAKE_CURRENT_BINARY_DIR}/generated" sources)
  foreach(source IN LISTS sources)
    get_filename_component(name "${source}" NAME_WE)
    set(target "header_example_${name}")
    add_library(${target} OBJECT "${source}")
    target_link_libraries(${target} PRIVATE ${library})
    # An example may show a call without using what it returns ([[nodiscard]] still warns).
    target_compile_options(${target} PRIVATE -Wno-unused)
    add_test(NAME ${target}
             COMMAND ${CMAKE_COMMAND} --build ${CMAKE_BINARY_DIR} --target ${target})
    # RUN_SERIAL: two builds of one build tree at once would race on ninja's own files.
    set_tests_properties(${target} PROPERTIES LABELS header_example RUN_SERIAL TRUE)
  endforeach()
endfunction()
