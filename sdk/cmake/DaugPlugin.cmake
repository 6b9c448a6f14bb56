# daug_add_plugin(<name> SOURCES a.cpp ... [LIBS libs...] [TESTS t.cpp ...] [TEST_LIBS ...])
#
# Builds <name> as a MODULE library libdaug-plugin-<name>.so (a prefix no project library uses, so no plugin name is reserved) (hidden visibility: only daug_plugin_manifest is
# exported), linked against daug::sdk and LibTorch, into the plugin directory the loader searches.
# TESTS become a GoogleTest executable <name>_test that links the plugin's objects directly (so tests can
# construct the plugin class with explicit Options) and is registered with ctest.
include_guard(GLOBAL)

if(NOT DEFINED DAUG_PLUGIN_OUTPUT_DIR)
  set(DAUG_PLUGIN_OUTPUT_DIR ${CMAKE_BINARY_DIR}/plugins)
endif()

function(daug_add_plugin name)
  cmake_parse_arguments(P "" "" "SOURCES;LIBS;TESTS;TEST_LIBS" ${ARGN})
  if(NOT P_SOURCES)
    message(FATAL_ERROR "daug_add_plugin(${name}): SOURCES is required")
  endif()
  add_library(${name}_objects OBJECT ${P_SOURCES})
  target_link_libraries(${name}_objects PUBLIC daug::sdk torch ${P_LIBS})
  set_target_properties(${name}_objects PROPERTIES CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON)
  add_library(${name} MODULE $<TARGET_OBJECTS:${name}_objects>)
  target_link_libraries(${name} PRIVATE ${name}_objects)
  set_target_properties(${name} PROPERTIES PREFIX "libdaug-plugin-" LIBRARY_OUTPUT_DIRECTORY ${DAUG_PLUGIN_OUTPUT_DIR})
  if(DEFINED DAUG_PLUGIN_INSTALL_DIR)
    # Installed, the plugin finds libdaug_sdk/libdaug_data in the lib/ above the plugin directory, and keeps the
    # non-system directories it linked from (an out-of-tree plugin: the daug prefix it was built against).
    set(_libdir ${CMAKE_INSTALL_LIBDIR})
    if(NOT _libdir)
      set(_libdir lib)
    endif()
    file(RELATIVE_PATH _to_lib /p/${DAUG_PLUGIN_INSTALL_DIR} /p/${_libdir})
    set_target_properties(${name} PROPERTIES INSTALL_RPATH "$ORIGIN/${_to_lib}" INSTALL_RPATH_USE_LINK_PATH ON)
    install(TARGETS ${name} LIBRARY DESTINATION ${DAUG_PLUGIN_INSTALL_DIR})
  endif()
  if(P_TESTS AND DAUG_BUILD_TESTS)
    add_executable(${name}_test ${P_TESTS} $<TARGET_OBJECTS:${name}_objects>)
    target_link_libraries(${name}_test PRIVATE ${name}_objects daug_test_support daug_test_main ${P_TEST_LIBS})
    gtest_discover_tests(${name}_test DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 120 PROPERTIES LABELS "plugin;${name}"
      ENVIRONMENT "OMP_NUM_THREADS=1")
  endif()
endfunction()
