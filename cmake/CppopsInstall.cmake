# Installation: the CLI, both agent libraries with their header, man pages, and a CMake package plus a
# pkg-config file so that programs can link the agent:
#   find_package(cppops REQUIRED)  ->  target_link_libraries(app PRIVATE cppops::agent)   (or cppops::agent_static)
include(CMakePackageConfigHelpers)

install(TARGETS cppops_agent_shared cppops_agent_static EXPORT cppopsTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY agent/include/cppops DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT cppopsTargets NAMESPACE cppops:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/cppops)

configure_package_config_file(cmake/cppopsConfig.cmake.in ${PROJECT_BINARY_DIR}/cppopsConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/cppops)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/cppopsConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cppopsConfig.cmake ${PROJECT_BINARY_DIR}/cppopsConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/cppops)

file(RELATIVE_PATH CPPOPS_PC_TO_PREFIX "/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/")
configure_file(cmake/cppops-agent.pc.in ${PROJECT_BINARY_DIR}/cppops-agent.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/cppops-agent.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
