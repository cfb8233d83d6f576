#pragma once
// OpenCL C for a kernel whose work-groups each write a part of a result and whose last group to
// finish combines the parts (batch norm's sums over slices of the positions), so that no second
// launch is needed. Counters come from runtime::counters: zero between launches, and the last
// group of each counter sets it back to zero. Where the host knows every group of a launch to be
// resident at once (runtime::resident_groups), groups may also wait for the last one to publish what it
// combined (release, wait_for_release), so that one launch does both passes of a reduction and its
// use. Joined in front of a kernel source (join.hpp);
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

// The last group's publication: its global writes before this call become visible to the groups
// waiting for flags[flag] == seq (a number of this launch's, never left in the flag by an earlier one).
// Every work-item of the group calls it (uniform barrier).
void release(volatile __global int* flags, const uint flag, const int seq) {
  GLOBAL_FENCE();
  barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
  if (get_local_id(0) == 0 && get_local_id(1) == 0) flags[flag] = seq;
}

// Waits for release(flags, flag, seq); the released writes are then visible to the whole group (read
// them through volatile pointers). Only for groups that are all resident at once: one that waited for a
// group not yet started would wait for ever. Every work-item calls it (uniform barrier).
void wait_for_release(volatile __global const int* flags, const uint flag, const int seq) {
  if (get_local_id(0) == 0 && get_local_id(1) == 0)
    while (flags[flag] != seq) {
    }
  barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
  GLOBAL_FENCE();
}
)CLC";

}  // namespace pbnn::opencl::kernels
