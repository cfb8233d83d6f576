#pragma once
// The convolution's and pooling's data movement on an OpenCL device (kernels/conv_cl.hpp): im2col,
// col2im, max pooling with its arg-max and the gradient routed back through it. Each call enqueues
// one kernel and waits for none.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include <fmt/format.h>

#include "pbnn/opencl/buffer.hpp"
#include "pbnn/opencl/cl_types.hpp"
#include "pbnn/opencl/kernels/conv_cl.hpp"
#include "pbnn/opencl/launch.hpp"
#include "pbnn/opencl/tensor.hpp"

namespace pbnn::opencl {

// An image batch's geometry under a k x k kernel (channels-last images).
struct conv_geometry {
  std::size_t batch = 1, height = 1, width = 1, channels = 1, kernel = 1, stride = 1, pad = 0;
  std::size_t out_height() const { return (height + 2 * pad - kernel) / stride + 1; }
  std::size_t out_width() const { return (width + 2 * pad - kernel) / stride + 1; }
  std::size_t cols_size() const { return batch * out_height() * out_width() * kernel * kernel * channels; }
  std::size_t image_size() const { return batch * height * width * channels; }
};

namespace detail {

// vec: channels per work-item (a divisor of the channel count); track_max: col2im reduces its largest |dx|.
template <class T>
const cl::Program& conv_program(runtime& rt, std::size_t vec = 1, bool track_max = false) {
  return rt.program(kernels::conv_source, cached_options(std::pair{vec, track_max}, [&] {
                      return fmt::format("-DTQ={} -DVEC={} -DTRACK_MAX={}", cl_type_name<T>(), vec, track_max ? 1 : 0);
                    }));
}

// The widest vector of up to 16 bytes whose element count divides the channel count.
template <class T>
std::size_t channel_vector(std::size_t channels) {
  std::size_t vec = 16 / sizeof(T);
  while (channels % vec) vec /= 2;
  return vec;
}

// A 2-D range of nx x ny work-items in groups of 256 (kernels ignore those past the edges).
inline void launch_grid_args(std::size_t nx, std::size_t ny, cl::NDRange& global, cl::NDRange& local) {
  std::size_t lx = 1;
  while (lx < nx && lx < 64) lx *= 2;
  const std::size_t ly = 256 / lx;
  global = cl::NDRange((nx + lx - 1) / lx * lx, (std::max<std::size_t>(ny, 1) + ly - 1) / ly * ly);
  local = cl::NDRange(lx, ly);
}

template <class... Args>
void launch_grid(runtime& rt, const cl::Program& program, const char* name, std::size_t nx, std::size_t ny,
                 const Args&... args) {
  if (nx > 0x7fffffff || ny > 0x7fffffff) throw std::invalid_argument("pbnn::opencl: a dimension exceeds 2^31");
  cl::NDRange global, local;
  launch_grid_args(nx, ny, global, local);
  launch_range(rt, program, name, global, local, args...);
}

inline void check_geometry(const conv_geometry& g) {
  if (g.kernel == 0 || g.stride == 0 || g.height + 2 * g.pad < g.kernel || g.width + 2 * g.pad < g.kernel)
    throw std::invalid_argument(fmt::format("pbnn::opencl: a {}x{} kernel (stride {}, padding {}) does not fit a {}x{} image",
                                            g.kernel, g.kernel, g.stride, g.pad, g.height, g.width));
}

inline cl_int as_int(std::size_t v) {
  if (v > 0x7fffffff) throw std::invalid_argument("pbnn::opencl: a dimension exceeds 2^31");
  return static_cast<cl_int>(v);
}

}  // namespace detail

template <class T>
void im2col(runtime& rt, const device_buffer<T>& x, const conv_geometry& g, device_buffer<T>& cols) {
  detail::check_geometry(g);
  cols.resize(rt, g.cols_size());
  using detail::as_int;
  const std::size_t vec = detail::channel_vector<T>(g.channels);
  detail::launch_grid(rt, detail::conv_program<T>(rt, vec), "im2col", g.kernel * g.kernel * g.channels / vec,
                      g.batch * g.out_height() * g.out_width(), x.handle(), as_int(g.batch), as_int(g.height),
                      as_int(g.width), as_int(g.channels), as_int(g.kernel), as_int(g.stride), as_int(g.pad),
                      as_int(g.out_height()), as_int(g.out_width()), cols.handle());
}

// track (int32 sums): where the largest |dx| is reduced as dx is written (maxima[slot], as max_abs_int).
template <class T>
void col2im(runtime& rt, const device_buffer<T>& dcols, const conv_geometry& g, device_buffer<T>& dx,
            const maximum_target& track = {}) {
  if (track.maxima && !std::is_same_v<T, std::int32_t>)
    throw std::logic_error("pbnn::opencl::col2im: the largest magnitude is reduced for int32 sums only");
  detail::check_geometry(g);
  dx.resize(rt, g.image_size());
  using detail::as_int;
  const std::size_t vec = detail::channel_vector<T>(g.channels);
  const auto launch_with = [&](const auto&... track_args) {
    detail::launch_grid(rt, detail::conv_program<T>(rt, vec, track.maxima != nullptr), "col2im", g.channels / vec,
                        g.batch * g.height * g.width, dcols.handle(), as_int(g.batch), as_int(g.height),
                        as_int(g.width), as_int(g.channels), as_int(g.kernel), as_int(g.stride), as_int(g.pad),
                        as_int(g.out_height()), as_int(g.out_width()), dx.handle(), track_args...);
  };
  if (track.maxima) launch_with(track.maxima->handle(), cl_uint{track.slot});
  else launch_with();
}

// y = max over size x size windows (height and width multiples of size); argmax kept if given.
template <class T>
void max_pool(runtime& rt, const device_buffer<T>& x, const conv_geometry& g, std::size_t size, device_buffer<T>& y,
              device_buffer<std::uint8_t>* argmax) {
  if (size == 0 || size > 15 || g.height % size || g.width % size)
    throw std::invalid_argument(fmt::format("pbnn::opencl::max_pool: {}x{} windows do not tile a {}x{} image", size, size,
                                            g.height, g.width));
  const std::size_t n = g.batch * (g.height / size) * (g.width / size) * g.channels;
  y.resize(rt, n);
  if (argmax) argmax->resize(rt, n);
  using detail::as_int;
  detail::launch_grid(rt, detail::conv_program<T>(rt), "max_pool", g.channels, g.channels ? n / g.channels : 0,
                      x.handle(), as_int(g.batch), as_int(g.height), as_int(g.width), as_int(g.channels),
                      as_int(size), y.handle(), argmax ? argmax->handle() : y.handle(), cl_int{argmax != nullptr});
}

template <class T>
void max_pool_grad(runtime& rt, const device_buffer<T>& dy, const device_buffer<std::uint8_t>& argmax,
                   const conv_geometry& g, std::size_t size, device_buffer<T>& dx) {
  dx.resize(rt, g.image_size());
  using detail::as_int;
  detail::launch_grid(rt, detail::conv_program<T>(rt), "max_pool_grad", g.channels,
                      g.channels ? g.image_size() / (g.channels * size * size) : 0, dy.handle(), argmax.handle(),
                      as_int(g.batch), as_int(g.height), as_int(g.width), as_int(g.channels), as_int(size), dx.handle());
}

}  // namespace pbnn::opencl
