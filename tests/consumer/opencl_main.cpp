// The installed pbnn::opencl target: opens the default OpenCL device and names it.
#include <cstdio>

#include <pbnn/opencl/runtime.hpp>

int main() {
  try {
    pbnn::opencl::runtime rt;
    std::printf("consumer_opencl: %s\n", rt.device().label().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "consumer_opencl: %s\n", e.what());
    return 1;
  }
}
