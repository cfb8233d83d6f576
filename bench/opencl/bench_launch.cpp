// The host's share of a kernel launch on the default device (PBNN_OPENCL_DEVICE picks another): at
// batch 8 a training step is some 100-200 launches of small kernels, and where enqueueing them takes
// longer than the device takes to run them, the host bounds the step.
//   BM_opencl_set_args/N: clSetKernelArg alone, N buffer arguments, per argument
//   BM_opencl_enqueue/N:  N arguments set and a 256-item kernel enqueued (pbnn's launch_range), 100
//                         times per iteration, timed without the wait for the device: the host's
//                         launches per second (items_per_second); <N, true>: all but the first
//                         argument int scalars
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <utility>

#include <fmt/format.h>

#include <pbnn/opencl/buffer.hpp>
#include <pbnn/opencl/launch.hpp>
#include <pbnn/opencl/runtime.hpp>

#include "bench_device.hpp"

namespace {

using namespace pbnn;

using pbnn_bench::device;

// A kernel of `args` arguments that writes its item number into the first, a buffer; the others are
// buffers too, or int scalars.
const std::string& touch_source(int args, bool scalars = false) {
  static std::string sources[2][17];
  std::string& s = sources[scalars][args];
  if (s.empty()) {
    s = "__kernel void touch(__global int* out";
    for (int i = 1; i < args; ++i) s += scalars ? fmt::format(", const int in{}", i) : fmt::format(", __global const int* in{}", i);
    s += ") { out[get_global_id(0)] = (int)get_global_id(0); }\n";
  }
  return s;
}

void BM_opencl_set_args(benchmark::State& state) {
  auto* rt = device();
  if (!rt) return state.SkipWithError("no OpenCL device");
  const int args = static_cast<int>(state.range(0));
  opencl::device_buffer<int> buffer;
  buffer.resize(*rt, 256);
  cl::Kernel& k = rt->kernel(rt->static_program(touch_source(args), ""), "touch");
  for (auto _ : state)
    for (int i = 0; i < args; ++i) benchmark::DoNotOptimize(k.setArg(static_cast<cl_uint>(i), buffer.handle()));
  state.SetItemsProcessed(state.iterations() * args);
}

template <std::size_t... I>
void launch_touch(opencl::runtime& rt, const cl::Program& program, const opencl::device_buffer<int>& buffer,
                  std::index_sequence<I...>) {
  opencl::detail::launch(rt, program, "touch", 256, ((void)I, buffer.handle())...);
}

template <std::size_t... I>
void launch_touch_scalars(opencl::runtime& rt, const cl::Program& program, const opencl::device_buffer<int>& buffer,
                          std::index_sequence<I...>) {
  opencl::detail::launch(rt, program, "touch", 256, buffer.handle(), cl_int{I}...);
}

// Scalars: every argument after the first an int.
template <std::size_t Args, bool Scalars = false>
void BM_opencl_enqueue(benchmark::State& state) {
  auto* rt = device();
  if (!rt) return state.SkipWithError("no OpenCL device");
  constexpr int per_iteration = 100;
  opencl::device_buffer<int> buffer;
  buffer.resize(*rt, 256);
  const cl::Program& program = rt->static_program(touch_source(static_cast<int>(Args), Scalars), "");
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < per_iteration; ++i) {
      if constexpr (Scalars)
        launch_touch_scalars(*rt, program, buffer, std::make_index_sequence<Args - 1>{});
      else
        launch_touch(*rt, program, buffer, std::make_index_sequence<Args>{});
    }
    const auto t1 = std::chrono::steady_clock::now();
    rt->queue().finish();  // not timed: the device's share
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
  }
  state.SetItemsProcessed(state.iterations() * per_iteration);  // launches per second
}

BENCHMARK(BM_opencl_set_args)->Arg(1)->Arg(8)->Arg(16);
BENCHMARK_TEMPLATE(BM_opencl_enqueue, 2)->UseManualTime();
BENCHMARK_TEMPLATE(BM_opencl_enqueue, 8)->UseManualTime();
BENCHMARK_TEMPLATE(BM_opencl_enqueue, 16)->UseManualTime();
BENCHMARK_TEMPLATE(BM_opencl_enqueue, 16, true)->UseManualTime();

}  // namespace
