# The dependencies of the pbnn::pbnn interface target; pbnnConfig.cmake mirrors them with find_dependency.
find_package(Eigen3 3.4 REQUIRED NO_MODULE)
find_package(xtensor REQUIRED)
find_package(fmt REQUIRED)
find_package(ZLIB REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)

# The optional OpenCL backend (pbnn::opencl): the ICD loader and the Khronos C++ bindings.
if(PBNN_OPENCL)
  find_package(OpenCL)
  find_path(PBNN_OPENCL_HPP_DIR CL/opencl.hpp HINTS ${OpenCL_INCLUDE_DIRS})
  if(OpenCL_FOUND AND PBNN_OPENCL_HPP_DIR)
    set(PBNN_WITH_OPENCL ON)
  else()
    set(PBNN_WITH_OPENCL OFF)
    message(STATUS "pbnn: no OpenCL (loader or CL/opencl.hpp missing): pbnn::opencl, its tests and examples are "
                   "not built. Debian: apt-get install ocl-icd-opencl-dev opencl-clhpp-headers")
  endif()
endif()
