include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(PBNN_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/pbnn)
install(DIRECTORY include/pbnn DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS pbnn EXPORT pbnnTargets)
install(EXPORT pbnnTargets NAMESPACE pbnn:: DESTINATION ${PBNN_CMAKE_DIR})
# pbnn::opencl in an export set of its own, loaded by pbnnConfig only where OpenCL is found, so that
# consumers without OpenCL still get pbnn::pbnn.
if(PBNN_WITH_OPENCL)
  install(TARGETS pbnn_opencl EXPORT pbnnOpenCLTargets)
  install(EXPORT pbnnOpenCLTargets NAMESPACE pbnn:: DESTINATION ${PBNN_CMAKE_DIR})
endif()
configure_package_config_file(cmake/pbnnConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/pbnnConfig.cmake INSTALL_DESTINATION ${PBNN_CMAKE_DIR})
# Header-only: the package fits any architecture.
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/pbnnConfigVersion.cmake
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/pbnnConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/pbnnConfigVersion.cmake
  DESTINATION ${PBNN_CMAKE_DIR})
