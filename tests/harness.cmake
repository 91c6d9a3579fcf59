# The test harness (a migrated PostgreSQL database per test process) and the
# tests of the store's foundations. Included from tests/CMakeLists.txt.

add_library(itinera_test_support STATIC
  ${CMAKE_CURRENT_LIST_DIR}/support/test_database.cc
)
target_include_directories(itinera_test_support PUBLIC ${CMAKE_CURRENT_LIST_DIR})
# Test databases get the engine's and every module's migrations.
target_link_libraries(itinera_test_support PUBLIC itinera_store itinera_modules GTest::gtest)

add_executable(store_harness_test ${CMAKE_CURRENT_LIST_DIR}/store_harness_test.cc)
target_link_libraries(store_harness_test PRIVATE itinera_test_support GTest::gmock GTest::gtest_main)
# The test compares the embedded migrations with the files themselves.
get_filename_component(_itinera_migrations_dir "${CMAKE_CURRENT_LIST_DIR}/../migrations" ABSOLUTE)
target_compile_definitions(store_harness_test PRIVATE
  ITINERA_MIGRATIONS_DIR="${_itinera_migrations_dir}")

include(GoogleTest)
gtest_discover_tests(store_harness_test DISCOVERY_TIMEOUT 60)
