#pragma once
// OpenCL C for a kernel whose work-groups each write a part of a result and whose last group to
// finish combines the parts (batch norm's sums over slices of the positions), so that no second
// launch is needed. Counters come from runtime::counters: zero between launches, and the last
// group of each counter sets it back to zero. Joined in front of a kernel source (join.hpp);
// -DNVIDIA_PTX=1 on NVIDIA devices (runtime::nvidia) publishes the parts with PTX's membar.gl.
namespace pbnn::opencl::kernels {

inline constexpr char last_group_source[] = R"CLC(
#ifndef NVIDIA_PTX
#define NVIDIA_PTX 0
#endif
#if NVIDIA_PTX
#define GLOBAL_FENCE() asm volatile("membar.gl;" ::: "memory")
#else
#define GLOBAL_FENCE() mem_fence(CLK_GLOBAL_MEM_FENCE)
#endif

// Whether this work-group is the last of `arrivals` groups counting in counters[counter] to get
// here: if so, every group's global writes made before its call are visible to it (read them
// through volatile pointers: no stale cache lines). flag: a __local int of the kernel's. Every
// work-item of the group calls it (uniform barriers).
bool last_to_arrive(volatile __global int* counters, const uint counter, const uint arrivals, __local int* flag) {
  GLOBAL_FENCE();
  barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
  if (get_local_id(0) == 0 && get_local_id(1) == 0) {
    const int last = atomic_inc(counters + counter) == (int)arrivals - 1;
    if (last) counters[counter] = 0;  // every other group has counted: ready for the next launch
    *flag = last;
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  const bool last = *flag != 0;
  if (last) GLOBAL_FENCE();
  return last;
}
)CLC";

}  // namespace pbnn::opencl::kernels
