# itinera_workflow_module(): a workflow module is one folder under modules/.
#
#   itinera_workflow_module(NAME <name>
#     WORKFLOWS <workflow sources...>   # replayed code: checked by the determinism lint
#     [SOURCES <other sources...>]      # activities, clients, the ITINERA_MODULE function
#     [PROTOS <name>/<file>.proto...]   # domain messages; include as "<name>/<file>.pb.h"
#     [GOLDEN <dir>]                    # recorded histories that must replay against today's code
#     [MIGRATIONS <dir>]                # NNNN_name.sql, numbered from 1 within the module
#     [TESTS <test sources...>])        # gtest tests; the test kit (itinera/testing.h) is linked
#
# builds the library itinera_module_<name> against the SDK (itinera_sdk) only,
# adds it to the module table that modules/CMakeLists.txt generates (so every
# binary registers its ITINERA_MODULE function and applies its migrations),
# and registers its checks as ctest tests: determinism_lint_<name>,
# coroutine_lint_<name> (the GCC 12 co_await rule, docs/architecture.md
# section 15), golden_histories_<name> and <name>_unit_tests.
#
# Sources include each other from modules/ ("booking/activities/x.h"), so
# two modules never clash on a header name.

set(ITINERA_MODULES_DIR "${PROJECT_SOURCE_DIR}/modules")

# itinera_proto_library(<target> <root> <protos...>): compiles .proto files
# under <root> into a library, each named by its path below <root> (as it is
# imported and as its descriptor is registered: "booking/booking.proto" gives
# "booking/booking.pb.h"). Imports resolve from <root>, modules/ and proto/.
function(itinera_proto_library target root)
  set(out_dir "${CMAKE_CURRENT_BINARY_DIR}/proto")
  set(sources "")
  foreach(proto IN LISTS ARGN)
    get_filename_component(abs "${proto}" ABSOLUTE)
    file(RELATIVE_PATH rel "${root}" "${abs}")
    if(rel MATCHES "^\\.\\.")
      message(FATAL_ERROR "${abs}: a proto of ${target} must be under ${root}")
    endif()
    string(REGEX REPLACE "\\.proto$" "" base "${rel}")
    add_custom_command(
      OUTPUT "${out_dir}/${base}.pb.cc" "${out_dir}/${base}.pb.h"
      COMMAND ${CMAKE_COMMAND} -E make_directory "${out_dir}"
      COMMAND protobuf::protoc --cpp_out "${out_dir}" -I "${root}" -I "${ITINERA_MODULES_DIR}"
              -I "${PROJECT_SOURCE_DIR}/proto" "${abs}"
      DEPENDS "${abs}" protobuf::protoc
      COMMENT "protoc ${rel}"
      VERBATIM)
    list(APPEND sources "${out_dir}/${base}.pb.cc")
  endforeach()
  add_library(${target} STATIC ${sources})
  target_include_directories(${target} PUBLIC "${out_dir}")
  target_link_libraries(${target} PUBLIC protobuf::libprotobuf itinera_proto)
  # Generated code is not ours to warn about.
  target_compile_options(${target} PRIVATE -Wno-unused-parameter)
endfunction()

function(itinera_workflow_module)
  cmake_parse_arguments(PARSE_ARGV 0 M "" "NAME;GOLDEN;MIGRATIONS" "WORKFLOWS;SOURCES;PROTOS;TESTS")
  if(NOT M_NAME MATCHES "^[a-z][a-z0-9_]*$")
    message(FATAL_ERROR "itinera_workflow_module: NAME must be a lower-case C identifier, got '${M_NAME}'")
  endif()
  if(M_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "itinera_workflow_module(${M_NAME}): unknown arguments ${M_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT M_WORKFLOWS AND NOT M_SOURCES)
    message(FATAL_ERROR "itinera_workflow_module(${M_NAME}): no WORKFLOWS or SOURCES")
  endif()
  set(target itinera_module_${M_NAME})

  add_library(${target} STATIC ${M_WORKFLOWS} ${M_SOURCES})
  target_include_directories(${target} PUBLIC ${ITINERA_MODULES_DIR})
  target_link_libraries(${target} PUBLIC itinera_sdk)

  # The messages, in a library of their own: code that only needs the types
  # (a tool, a test) does not link the workflows.
  if(M_PROTOS)
    itinera_proto_library(${target}_proto ${ITINERA_MODULES_DIR} ${M_PROTOS})
    target_link_libraries(${target} PUBLIC ${target}_proto)
  endif()

  set(migrations_cc "")
  if(M_MIGRATIONS)
    itinera_embed_migrations("${M_MIGRATIONS}" ModuleMigrations_${M_NAME} migrations_cc)
    target_sources(${target} PRIVATE ${migrations_cc})
  endif()

  set_property(GLOBAL APPEND PROPERTY ITINERA_MODULES ${M_NAME})
  if(M_MIGRATIONS)
    set_property(GLOBAL APPEND PROPERTY ITINERA_MODULES_WITH_MIGRATIONS ${M_NAME})
  endif()

  # The checks, over this module's sources only.
  set(workflow_files "")
  foreach(f IN LISTS M_WORKFLOWS)
    get_filename_component(abs "${f}" ABSOLUTE)
    list(APPEND workflow_files "${abs}")
  endforeach()
  set(all_files ${workflow_files})
  foreach(f IN LISTS M_SOURCES)
    get_filename_component(abs "${f}" ABSOLUTE)
    list(APPEND all_files "${abs}")
  endforeach()
  if(workflow_files)
    add_test(NAME determinism_lint_${M_NAME}
             COMMAND ${PROJECT_SOURCE_DIR}/tests/determinism_lint.sh ${workflow_files})
  endif()
  # Every coroutine of the module, activities' helpers included: the rule is GCC's, not the replayer's.
  add_test(NAME coroutine_lint_${M_NAME}
           COMMAND python3 ${PROJECT_SOURCE_DIR}/tests/lint/coroutine_lint.py ${all_files})
  if(M_GOLDEN)
    get_filename_component(golden "${M_GOLDEN}" ABSOLUTE)
    add_test(NAME golden_histories_${M_NAME}
             COMMAND ${PROJECT_SOURCE_DIR}/tests/golden_replay.sh $<TARGET_FILE:itinera> ${golden})
  endif()
  if(M_TESTS)
    add_executable(${M_NAME}_unit_tests ${M_TESTS})
    # With the test kit (itinera/testing.h): a test may run the module's
    # workflows on a real database with time skipped.
    target_link_libraries(${M_NAME}_unit_tests PRIVATE ${target} itinera_testing itinera_modules GTest::gtest_main)
    include(GoogleTest)
    gtest_discover_tests(${M_NAME}_unit_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300)
  endif()
endfunction()

# itinera_module_table(): after the last module, the table the binaries
# register from (target itinera_modules, header modules/module_table.h).
function(itinera_module_table)
  get_property(modules GLOBAL PROPERTY ITINERA_MODULES)
  get_property(with_migrations GLOBAL PROPERTY ITINERA_MODULES_WITH_MIGRATIONS)
  set(decls "")
  set(entries "")
  foreach(m IN LISTS modules)
    string(APPEND decls "void itinera_register_module_${m}(::itinera::Registry&, const ::itinera::ModuleConfig&);\n")
    if(m IN_LIST with_migrations)
      string(APPEND decls "namespace itinera::store {\n"
                          "const std::vector<EmbeddedMigration>& ModuleMigrations_${m}();\n}\n")
      set(migrations "&::itinera::store::ModuleMigrations_${m}")
    else()
      set(migrations "nullptr")
    endif()
    string(APPEND entries "      {\"${m}\", &itinera_register_module_${m}, ${migrations}},\n")
  endforeach()
  set(out "${CMAKE_CURRENT_BINARY_DIR}/module_table_generated.cc")
  file(CONFIGURE OUTPUT "${out}" CONTENT
"// Generated by itinera_module_table() (cmake/ItineraModule.cmake) from
// modules/CMakeLists.txt: do not edit.
#include \"module_table.h\"

${decls}
namespace itinera::modules {

const std::vector<ModuleEntry>& All() {
  static const std::vector<ModuleEntry> kModules = {
${entries}  };
  return kModules;
}

}  // namespace itinera::modules
")
  add_library(itinera_modules STATIC ${CMAKE_CURRENT_SOURCE_DIR}/module_table.cc "${out}")
  target_include_directories(itinera_modules PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(itinera_modules PUBLIC itinera_sdk itinera_store)
  foreach(m IN LISTS modules)
    target_link_libraries(itinera_modules PUBLIC itinera_module_${m})
  endforeach()
endfunction()
