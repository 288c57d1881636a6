# Finds cmocka for the test suite (included from the top-level
# CMakeLists.txt when RQ_BUILD_TESTS is ON): defines cmocka::cmocka and sets
# RQ_HAVE_CMOCKA.  Without cmocka the tests are left out with a warning, or,
# with RQ_REQUIRE_DEPS, the configuration fails.
set(RQ_CMOCKA_DIR "" CACHE PATH "cmocka built for the target (mingw: scripts/mingw-deps.sh)")
if(RQ_CMOCKA_DIR)
  # Debian has no mingw cmocka; scripts/mingw-deps.sh builds a static one.
  if(NOT EXISTS ${RQ_CMOCKA_DIR}/lib/libcmocka.a)
    message(FATAL_ERROR "no cmocka in ${RQ_CMOCKA_DIR}: run scripts/mingw-deps.sh first")
  endif()
  add_library(cmocka::cmocka STATIC IMPORTED)
  set_target_properties(cmocka::cmocka PROPERTIES
    IMPORTED_LOCATION ${RQ_CMOCKA_DIR}/lib/libcmocka.a
    INTERFACE_INCLUDE_DIRECTORIES ${RQ_CMOCKA_DIR}/include)
else()
  find_package(cmocka CONFIG QUIET)
endif()
if(NOT TARGET cmocka::cmocka AND NOT cmocka_FOUND)
  find_package(PkgConfig QUIET)
  if(PkgConfig_FOUND)
    pkg_check_modules(CMOCKA QUIET IMPORTED_TARGET cmocka)
  endif()
  if(NOT CMOCKA_FOUND)
    set(why "the tests need cmocka (Debian: apt-get install libcmocka-dev pkg-config)")
    if(RQ_REQUIRE_DEPS)
      message(FATAL_ERROR "${why}; or configure with -DRQ_BUILD_TESTS=OFF")
    endif()
    message(WARNING "${why}: the tests are not built (-DRQ_BUILD_TESTS=OFF silences this)")
    set(RQ_HAVE_CMOCKA OFF)
    return()
  endif()
  add_library(cmocka::cmocka ALIAS PkgConfig::CMOCKA)
endif()
if(NOT TARGET cmocka::cmocka)
  # Debian's cmocka-config.cmake defines variables, not a target.
  add_library(rq_cmocka INTERFACE)
  target_include_directories(rq_cmocka INTERFACE ${CMOCKA_INCLUDE_DIR} ${CMOCKA_INCLUDE_DIRS})
  target_link_libraries(rq_cmocka INTERFACE ${CMOCKA_LIBRARY} ${CMOCKA_LIBRARIES})
  add_library(cmocka::cmocka ALIAS rq_cmocka)
endif()
set(RQ_HAVE_CMOCKA ON)

