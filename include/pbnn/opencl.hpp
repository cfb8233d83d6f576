#pragma once
// The umbrella header of the OpenCL backend (link pbnn::opencl): everything of pbnn/pbnn.hpp, plus
// networks and training on an OpenCL device, pbnn::policy<Format, Scheme, pbnn::opencl::backend>.
#include "pbnn/opencl/backend.hpp"
#include "pbnn/opencl/network.hpp"
#include "pbnn/opencl/train.hpp"
#include "pbnn/pbnn.hpp"
