#pragma once
// The Khronos C++ bindings, targeting OpenCL 1.2 so that kernels and host code run on any OpenCL
// 1.2+ driver (PoCL, NVIDIA, FPGA toolchains). pbnn checks every returned error code itself and does
// not need the bindings' exceptions; a program that enables them gets cl::Error as well.
#ifndef CL_HPP_TARGET_OPENCL_VERSION
#define CL_HPP_TARGET_OPENCL_VERSION 120
#endif
#ifndef CL_HPP_MINIMUM_OPENCL_VERSION
#define CL_HPP_MINIMUM_OPENCL_VERSION 120
#endif
#include <CL/opencl.hpp>
