# The package test: installs the rq build tree RQ_BINARY_DIR into a fresh
# prefix under WORK_DIR, checks what was installed, then builds and runs
# consumer.c against it twice: as a CMake project (find_package(rq CONFIG))
# and with a bare compiler command line from `pkg-config --cflags --libs rq`.
#
#   cmake -DRQ_BINARY_DIR=... -DWORK_DIR=... -DRQ_VERSION=... -DLIBDIR=lib
#         -DBINDIR=bin -DINCLUDEDIR=include -DC_COMPILER=... [-DC_FLAGS=...]
#         [-DLINKER_FLAGS=...] [-DGENERATOR=...] [-DCONFIG=...]
#         [-DEXPECT_RQCTL=ON] [-DEXPECT_SHARED=ON] [-DSOVERSION=N] -P run.cmake
#
# With EXPECT_SHARED the shared library must be installed too (with its
# SONAME link), the CMake consumer is built a second time against
# rq::rq_shared, and the pkg-config consumer (which then links librq.so)
# runs with the prefix on LD_LIBRARY_PATH.
cmake_minimum_required(VERSION 3.16)

foreach(var RQ_BINARY_DIR WORK_DIR RQ_VERSION LIBDIR BINDIR INCLUDEDIR C_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run.cmake: -D${var}=... is required")
  endif()
endforeach()
set(here ${CMAKE_CURRENT_LIST_DIR})
set(prefix ${WORK_DIR}/prefix)

# run(<what> COMMAND ...): runs it, fails the test with its output if it fails.
function(run what)
  execute_process(${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
  set(run_output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

# 1. install
set(config_args)
if(CONFIG)
  set(config_args --config ${CONFIG})
endif()
run("cmake --install" COMMAND ${CMAKE_COMMAND} --install ${RQ_BINARY_DIR} --prefix ${prefix}
    ${config_args})

# 2. exactly the public files (rq.h, rq.hpp for C++, rq_bridge.h), and no private header
set(expected ${INCLUDEDIR}/rq.h ${INCLUDEDIR}/rq_bridge.h ${LIBDIR}/librq.a ${LIBDIR}/pkgconfig/rq.pc
    ${LIBDIR}/cmake/rq/rqConfig.cmake ${LIBDIR}/cmake/rq/rqConfigVersion.cmake
    ${LIBDIR}/cmake/rq/rqTargets.cmake)
list(APPEND expected share/man/man3/rq.3 share/man/man3/rq_open.3 share/man/man3/rq_close.3)
if(EXPECT_RQCTL)
  list(APPEND expected ${BINDIR}/rqctl share/man/man1/rqctl.1)
endif()
if(EXPECT_SHARED)
  list(APPEND expected ${LIBDIR}/librq.so ${LIBDIR}/librq.so.${SOVERSION}
       ${LIBDIR}/librq.so.${RQ_VERSION})
endif()
if(EXPECT_BRIDGE)
  list(APPEND expected ${BINDIR}/rq-bridge)
endif()
foreach(f ${expected})
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()
file(GLOB headers RELATIVE ${prefix}/${INCLUDEDIR} ${prefix}/${INCLUDEDIR}/*)
list(SORT headers)
if(NOT headers STREQUAL "rq.h;rq.hpp;rq_bridge.h")
  message(FATAL_ERROR "installed headers are '${headers}', expected rq.h, rq.hpp and rq_bridge.h")
endif()
if(EXPECT_RQCTL)
  run("installed rqctl --version" COMMAND ${prefix}/${BINDIR}/rqctl --version)
  if(NOT run_output STREQUAL "rqctl (rq) ${RQ_VERSION}\n")
    message(FATAL_ERROR "installed rqctl says '${run_output}', expected rqctl (rq) ${RQ_VERSION}")
  endif()
endif()

# 3. a CMake project using find_package(rq CONFIG)
separate_arguments(c_flags UNIX_COMMAND "${C_FLAGS}")
separate_arguments(linker_flags UNIX_COMMAND "${LINKER_FLAGS}")
set(generator_args)
if(GENERATOR)
  set(generator_args -G ${GENERATOR})
endif()
run("configuring the find_package consumer"
    COMMAND ${CMAKE_COMMAND} -S ${here} -B ${WORK_DIR}/cmake-consumer ${generator_args}
            -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=${C_COMPILER}
            "-DCMAKE_C_FLAGS=${C_FLAGS}" "-DCMAKE_EXE_LINKER_FLAGS=${LINKER_FLAGS}"
            -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
            -DRQ_EXPECTED_VERSION=${RQ_VERSION} -DRQ_EXPECTED_PREFIX=${prefix}
            -DRQ_EXPECT_SHARED=${EXPECT_SHARED})
run("building the find_package consumer"
    COMMAND ${CMAKE_COMMAND} --build ${WORK_DIR}/cmake-consumer --config Debug)
find_program(cmake_consumer consumer PATHS ${WORK_DIR}/cmake-consumer
             ${WORK_DIR}/cmake-consumer/Debug NO_DEFAULT_PATH)
if(NOT cmake_consumer)
  message(FATAL_ERROR "the find_package consumer was not built")
endif()
run("running the find_package consumer" COMMAND ${cmake_consumer})
if(NOT run_output STREQUAL "ok\n")
  message(FATAL_ERROR "find_package consumer printed '${run_output}'")
endif()
message(STATUS "find_package(rq CONFIG): built, ran: ok")
if(EXPECT_SHARED)
  # Linked to the installed librq.so (CMake gives it an RPATH in the build
  # tree), and that library must be the one it loads.
  find_program(shared_consumer consumer_shared PATHS ${WORK_DIR}/cmake-consumer
               ${WORK_DIR}/cmake-consumer/Debug NO_DEFAULT_PATH)
  if(NOT shared_consumer)
    message(FATAL_ERROR "the rq::rq_shared consumer was not built")
  endif()
  run("running the rq::rq_shared consumer" COMMAND ${shared_consumer})
  if(NOT run_output STREQUAL "ok\n")
    message(FATAL_ERROR "rq::rq_shared consumer printed '${run_output}'")
  endif()
  run("ldd consumer_shared" COMMAND ldd ${shared_consumer})
  string(FIND "${run_output}" "${prefix}/${LIBDIR}/librq.so.${SOVERSION}" at)
  if(at LESS 0)
    message(FATAL_ERROR "consumer_shared does not load the installed librq.so.${SOVERSION}:\n${run_output}")
  endif()
  message(STATUS "find_package(rq CONFIG), rq::rq_shared: built, ran: ok")
endif()

# 4. a bare compiler command line from pkg-config
find_program(pkg_config NAMES pkg-config pkgconf)
if(NOT pkg_config)
  message(FATAL_ERROR "pkg-config is needed (Debian: apt-get install pkg-config)")
endif()
set(ENV{PKG_CONFIG_PATH} ${prefix}/${LIBDIR}/pkgconfig)
run("pkg-config --modversion rq" COMMAND ${pkg_config} --modversion rq)
if(NOT run_output STREQUAL "${RQ_VERSION}\n")
  message(FATAL_ERROR "pkg-config says rq is '${run_output}', expected ${RQ_VERSION}")
endif()
run("pkg-config --cflags --libs rq" COMMAND ${pkg_config} --cflags --libs rq)
string(STRIP "${run_output}" pc_flags)
separate_arguments(pc_flags UNIX_COMMAND "${pc_flags}")
set(pc_consumer ${WORK_DIR}/pkg-config-consumer)
run("compiling with pkg-config's flags"
    COMMAND ${C_COMPILER} -std=c11 -Wall -Wextra -Wpedantic -Werror ${c_flags}
            "-DEXPECTED_VERSION=\"${RQ_VERSION}\"" ${here}/consumer.c -o ${pc_consumer}
            ${pc_flags} ${linker_flags})
if(EXPECT_SHARED)
  set(ENV{LD_LIBRARY_PATH} ${prefix}/${LIBDIR})
endif()
run("running the pkg-config consumer" COMMAND ${pc_consumer})
if(NOT run_output STREQUAL "ok\n")
  message(FATAL_ERROR "pkg-config consumer printed '${run_output}'")
endif()
message(STATUS "pkg-config rq: built, ran: ok")
