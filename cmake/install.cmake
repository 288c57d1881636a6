# Install rules (included from the top-level CMakeLists.txt when
# RQ_INSTALL is ON): librq.a (with RQ_SHARED also librq.so and its
# SONAME links), rq.h, rq_bridge.h, the CMake package (find_package(rq CONFIG) -> rq::rq,
# and rq::rq_shared when built, with a version file) and rq.pc for
# pkg-config, and the manual pages.  rqctl's rule is in tools/CMakeLists.txt.
include(CMakePackageConfigHelpers)

set(RQ_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/rq)
set(rq_installed_libraries rq)
if(TARGET rq_shared)
  list(APPEND rq_installed_libraries rq_shared)
endif()
install(TARGETS ${rq_installed_libraries} EXPORT rqTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        PUBLIC_HEADER DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# The manual pages of the library (rq(3), a page per family, a .so link per
# function); rqctl(1) is installed with rqctl (tools/CMakeLists.txt).
install(DIRECTORY ${PROJECT_SOURCE_DIR}/man/man3 DESTINATION ${CMAKE_INSTALL_MANDIR})
# rq_bridge.h: header-only, for applications reading rq-bridge's records.
install(FILES ${PROJECT_SOURCE_DIR}/include/rq_bridge.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT rqTargets NAMESPACE rq:: DESTINATION ${RQ_INSTALL_CMAKEDIR})

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/rqConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/rqConfig.cmake
                              INSTALL_DESTINATION ${RQ_INSTALL_CMAKEDIR})
# 0.x: a new minor version may change the API.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/rqConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/rqConfig.cmake ${PROJECT_BINARY_DIR}/rqConfigVersion.cmake
        DESTINATION ${RQ_INSTALL_CMAKEDIR})

# rq.pc finds its prefix from where it lies (${pcfiledir}), so it stays
# right for `cmake --install --prefix DIR` and for DESTDIR staging.
file(RELATIVE_PATH RQ_PC_UP /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
string(REGEX REPLACE "/$" "" RQ_PC_UP "${RQ_PC_UP}")
set(RQ_PC_PREFIX "\${pcfiledir}/${RQ_PC_UP}")
foreach(dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${dir}}")
    set(RQ_PC_${dir} "${CMAKE_INSTALL_${dir}}")
    set(RQ_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  else()
    set(RQ_PC_${dir} "\${prefix}/${CMAKE_INSTALL_${dir}}")
  endif()
endforeach()
# What librq links against: in Libs when only the static library is
# installed; in Libs.private (used by `pkg-config --static`) when the shared
# one is, since -lrq then finds librq.so, which carries its own dependencies.
set(RQ_PC_LIBS "")
set(RQ_PC_LIBS_PRIVATE "")
if(NOT WIN32)
  if(TARGET rq_shared)
    set(RQ_PC_LIBS_PRIVATE "-pthread -lrt")
  else()
    set(RQ_PC_LIBS "-pthread -lrt")
  endif()
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/rq.pc.in ${PROJECT_BINARY_DIR}/rq.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/rq.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
