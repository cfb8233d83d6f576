#pragma once
// The three products of a dense or convolutional layer on an OpenCL device, as the CPU backend's
// detail/matmul.hpp has them (row-major; W is [n x k]):
//   matmul_xwt:  Y[b x n]  = X[b x k] W^T        matmul_dyw:  dX[b x k] = dY[b x n] W
//   matmul_dytx: dW[n x k] = dY^T X              (fp32: float results; int8/int16: int32 sums)
// Each enqueues its kernels (one, or two where k is split) without waiting. Tile sizes are build
// options (-DTS, -DWPT), so a device can be given its own (gemm_tuning). int8 and float products run
// on NVIDIA tensor cores (gemm_mma_cl.hpp) where the device builds those kernels: int8 sums equal to
// the portable kernel's, float ones through 3xTF32 (about fp32's precision). int16 products always
// take the portable kernel. PBNN_OPENCL_TENSOR_CORES=0 in the environment, or
// gemm_tuning::tensor_cores, turns tensor cores off. Float products of a batch of at most 8 rows take
// gemm_few_rows_cl.hpp's kernels on any device (gemm_tuning::few_rows).
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include <fmt/format.h>

#include "pbnn/opencl/buffer.hpp"
#include "pbnn/opencl/cl_types.hpp"
#include "pbnn/opencl/conv.hpp"
#include "pbnn/opencl/error.hpp"
#include "pbnn/opencl/kernels/gemm_cl.hpp"
#include "pbnn/opencl/kernels/gemm_few_rows_cl.hpp"
#include "pbnn/opencl/kernels/gemm_mma_cl.hpp"
#include "pbnn/opencl/launch.hpp"
#include "pbnn/opencl/runtime.hpp"
#include "pbnn/opencl/tensor.hpp"

namespace pbnn::opencl {

// The tensor-core kernel's tiling (gemm_mma_cl.hpp); a 0 takes the default.
struct mma_tiling {
  int block = 0;   // the work-group's tile of C, block x block (64 or 128); 0: by the shape (resolve_mma_tiling)
  int warp_m = 0;  // each warp's block of it, warp_m x warp_n (32 or 64); 0: 64 in 128 blocks, else 32
  int warp_n = 0;
  int k_words = 0;  // 4-byte words of k per local tile (16 or 32); 0: 32 in 64 blocks, else 16
  int stages = 0;   // local tiles per operand: 1, or 2 to store the next while this one is read; 0: 2 in 64 blocks, else 1
};

struct gemm_tuning {
  int tile = 0;             // TS: the work-group computes a tile x tile block of C; 0: 64 for large C, else 32
  int per_item = 4;         // WPT: each work-item computes per_item x per_item outputs
  // Long reductions over few output tiles (a convolution's weight gradient sums over every pixel of
  // the batch into a small C) leave most of a GPU idle: k is then split over work-groups until about
  // this many run, each summing at least min_split_k of it, and the slices are added up after. 512
  // (about 4 per SM of an H200) rather than 1024: batch 256 2 % faster in fp32, 5 % in fixed8.
  std::size_t target_groups = 512;
  std::size_t min_split_k = 512;
  bool tensor_cores = true;  // int8 and float operands through PTX mma.sync where the device compiles it
  mma_tiling mma{};
  // Float products of a batch of at most 8 rows (a small batch's dense layers) through the kernels
  // of gemm_few_rows_cl.hpp, which read each weight once in 16-byte words: on an H200 the batch-8
  // products of Table 1's dense layers take 0.09 ms of device time in place of 0.19 (bench/RESULTS.md).
  bool few_rows = true;
};

namespace detail {

template <class T>
using gemm_result_t = std::conditional_t<std::is_same_v<T, float>, float, std::int32_t>;

// track_max: the kernels that write the final sums reduce their largest magnitude (gemm_cl.hpp).
template <class T>
const std::string& gemm_options(bool a_kmajor, bool b_kmajor, const gemm_tuning& t, bool track_max = false) {
  return cached_options(std::tuple{a_kmajor, b_kmajor, t.tile, t.per_item, track_max}, [&] {
    return fmt::format("-DTA={} -DTACC={} -DA_KMAJOR={} -DB_KMAJOR={} -DTS={} -DWPT={} -DTRACK_MAX={}{}",
                       cl_type_name<T>(), std::is_same_v<T, float> ? "float" : "int", a_kmajor ? 1 : 0,
                       b_kmajor ? 1 : 0, t.tile, t.per_item, track_max ? 1 : 0,
                       std::is_same_v<T, float> ? "" : " -DWIDE");
  });
}

// One of the GEMM kernels as built: each work-group of local_x x local_y items computes a tile x tile
// block of C.
struct gemm_kernel {
  const cl::Program* program = nullptr;
  const char* name = "";
  std::size_t tile = 0, local_x = 0, local_y = 0;
};

template <class T>
gemm_kernel portable_gemm(runtime& rt, bool a_kmajor, bool b_kmajor, const gemm_tuning& t, bool track_max = false) {
  const auto items = static_cast<std::size_t>(t.tile / t.per_item);
  return {&rt.program(kernels::gemm_source, gemm_options<T>(a_kmajor, b_kmajor, t, track_max)), "gemm",
          static_cast<std::size_t>(t.tile), items, items};
}

// The tiling the tensor-core kernel takes for an m x n x k product: tuning.mma's fields, defaults
// where they are 0. Throws std::invalid_argument for a tiling the kernel cannot take.
inline mma_tiling resolve_mma_tiling(std::size_t m, std::size_t n, std::size_t k, const gemm_tuning& tuning) {
  mma_tiling t = tuning.mma;
  // 128-wide tiles where C has 256 of them, or where k is long enough to be split into that many
  // work-groups (a weight gradient's few tiles summed over every pixel of the batch: conv 2's dW at
  // batch 256 takes 1.37 ms in 128-wide tiles against 2.04 in 64-wide ones); else 64.
  if (t.block == 0)
    t.block = (m / 128) * (n / 128) * std::max<std::size_t>(1, k / std::max<std::size_t>(tuning.min_split_k, 1)) >= 256
                  ? 128
                  : 64;
  // 64 x 64 warps in 128-wide tiles load (and for 3xTF32 split) half as many fragments per product
  // as 32 x 32 ones: conv 2's products 16-24 % faster in fp32, 13-27 % in int8 on an H200
  // (bench/RESULTS.md).
  const int warp = t.block == 128 ? 64 : 32;
  if (t.warp_m == 0) t.warp_m = warp;
  if (t.warp_n == 0) t.warp_n = warp;
  // 64-wide tiles (few of them: the products of small batches) take k in steps of 32 words, the next
  // local tile loaded while this one is multiplied: a batch-8 step 9 % faster on an H200 (1.25 against
  // 1.37 ms, bench/RESULTS.md); 128-wide ones are fastest with 16 words and one stage.
  if (t.k_words == 0) t.k_words = t.block == 64 ? 32 : 16;
  if (t.stages == 0) t.stages = t.block == 64 ? 2 : 1;
  const auto one_of = [](int v, int a, int b) { return v == a || v == b; };
  const std::size_t local_bytes = static_cast<std::size_t>(t.stages) * 2 * t.block * (t.k_words + 4) * 4;
  if (!one_of(t.block, 64, 128) || !one_of(t.warp_m, 32, 64) || !one_of(t.warp_n, 32, 64) || t.warp_m > t.block ||
      t.warp_n > t.block || !one_of(t.k_words, 16, 32) || !one_of(t.stages, 1, 2) || local_bytes > 48 * 1024)
    throw std::invalid_argument(fmt::format(
        "pbnn::opencl: tensor-core tiling block {} warp {} x {} k_words {} stages {} is not one of block 64 or 128, "
        "warps 32 or 64 no larger than the block, k_words 16 or 32, stages 1 or 2 within 48 KiB of local memory",
        t.block, t.warp_m, t.warp_n, t.k_words, t.stages));
  return t;
}

// Which operands of a product are read in place of the matrices they stand for (gemm_mma_cl.hpp's
// A_IMAGE, B_IMAGE, B_FLIPPED): none; A, an image's im2col (row-major: Y = im2col(x) W^T); B, an image's
// im2col (k-major: dW = dY^T im2col(x)); or both for a stride-1 convolution's dX (A the im2col of dY,
// B the weights as the flipped kernel, k-major [n = input channels]). geometry: the image's.
struct image_operand {
  enum which_operand { none, a, b, dx } which = none;
  conv_geometry geometry{};
};

// The tensor-core kernel for an m x n product whose k slices all start and end at multiples of
// `align`. A row-major operand is read in 16-byte or 4-byte words where align and its row length
// allow, a k-major one in words of 4 rows where its row count is a multiple of 4 (gemm_mma_cl.hpp).
template <class T>
gemm_kernel mma_gemm(runtime& rt, std::size_t m, std::size_t n, std::size_t k, bool a_kmajor, bool b_kmajor,
                     std::size_t align, const gemm_tuning& tuning, const image_operand& image = {},
                     bool track_max = false) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, std::int8_t>, "tensor-core GEMMs take int8 or float");
  const mma_tiling t = resolve_mma_tiling(m, n, k, tuning);
  const auto aligned = [&](std::size_t bytes) { return (align * sizeof(T)) % bytes == 0 && (k * sizeof(T)) % bytes == 0; };
  const auto words = [&](bool kmajor, std::size_t rows) { return kmajor ? rows % 4 == 0 : aligned(4); };
  const conv_geometry& g = image.geometry;
  const auto as_key = [](std::size_t v) { return static_cast<int>(v); };
  const bool dx = image.which == image_operand::dx;
  const std::array<int, 22> key{int{track_max}, int{a_kmajor}, int{b_kmajor}, int{words(a_kmajor, m)},
                                int{words(b_kmajor, n)}, int{!a_kmajor && aligned(16)}, int{!b_kmajor && aligned(16)},
                                t.block, t.warp_m, t.warp_n, t.k_words, t.stages, static_cast<int>(image.which),
                                as_key(g.height), as_key(g.width), as_key(g.channels), as_key(g.out_height()),
                                as_key(g.out_width()), as_key(g.kernel), as_key(g.stride), as_key(g.pad),
                                dx ? as_key(n) : 0};
  const std::string& options = cached_options(key, [&] {
    std::string o = fmt::format(
        "-DFLOAT_OPERANDS={} -DA_KMAJOR={} -DB_KMAJOR={} -DA_WORDS={} -DB_WORDS={} -DA_ALIGN16={} -DB_ALIGN16={} "
        "-DBM={} -DBN={} -DWM={} -DWN={} -DKW={} -DSTAGES={} -DTRACK_MAX={}",
        int{std::is_same_v<T, float>}, int{a_kmajor}, int{b_kmajor}, key[3], key[4], key[5], key[6], t.block, t.block,
        t.warp_m, t.warp_n, t.k_words, t.stages, int{track_max});
    if (image.which != image_operand::none)
      o += fmt::format(" -D{}_IMAGE=1 -DIMG_H={} -DIMG_W={} -DIMG_C={} -DOUT_H={} -DOUT_W={} -DKSIZE={} -DSTRIDE={} -DPAD={}",
                       image.which == image_operand::b ? 'B' : 'A', g.height, g.width, g.channels, g.out_height(),
                       g.out_width(), g.kernel, g.stride, g.pad);
    if (dx) o += fmt::format(" -DB_FLIPPED=1 -DW_COUT={} -DW_CIN={}", g.channels, n);
    return o;
  });
  const auto block = static_cast<std::size_t>(t.block);
  return {&rt.program(kernels::gemm_mma_source, options), "gemm_mma", block,
          (block / t.warp_m) * (block / t.warp_n) * 32, 1};
}

}  // namespace detail

// Whether int8 and float GEMMs on this runtime's device run on tensor cores: an NVIDIA device (sm_80
// or later) whose compiler builds both mma kernels, and PBNN_OPENCL_TENSOR_CORES not 0. Probed once
// per runtime.
inline bool tensor_core_gemms(runtime& rt) {
  return rt.probe("mma.sync GEMMs", [&] {
    const char* env = std::getenv("PBNN_OPENCL_TENSOR_CORES");
    if ((env && std::string_view(env) == "0") || !rt.nvidia()) return false;
    try {
      // The kernels a small product takes, created too: some drivers defer the machine code to that step.
      for (const auto& kernel : {detail::mma_gemm<std::int8_t>(rt, 64, 64, 64, false, false, 64, {}),
                                 detail::mma_gemm<float>(rt, 64, 64, 64, false, false, 64, {})})
        rt.kernel(*kernel.program, kernel.name);
      return true;
    } catch (const opencl_error&) {  // an older GPU or compiler: ptxas refuses mma.sync
      return false;
    }
  });
}

namespace detail {

// The greatest power of two, up to 64, dividing every one of the values.
inline std::size_t common_alignment(std::initializer_list<std::size_t> values) {
  std::size_t a = 64;
  for (const std::size_t v : values)
    while (v % a) a /= 2;
  return a;
}

// kernel over p in [kbase + z kchunk, kbase + (z + 1) kchunk), p < kstop, for z < splits, split z into
// the z-th m x n slice of target; a kernel built with TRACK_MAX reduces into track.
inline void enqueue_gemm(runtime& rt, const gemm_kernel& kernel, std::size_t m, std::size_t n, std::size_t k,
                         const cl::Buffer& A, const cl::Buffer& B, const cl::Buffer& target, bool accumulate,
                         std::size_t splits, std::size_t kchunk, std::size_t kbase, std::size_t kstop,
                         const maximum_target& track = {}) {
  const auto launch_with = [&](const auto&... track_args) {
    launch_range(rt, *kernel.program, kernel.name,
                 cl::NDRange((n + kernel.tile - 1) / kernel.tile * kernel.local_x,
                             (m + kernel.tile - 1) / kernel.tile * kernel.local_y, splits),
                 cl::NDRange(kernel.local_x, kernel.local_y, 1), static_cast<cl_int>(m), static_cast<cl_int>(n),
                 static_cast<cl_int>(k), A, B, target, cl_int{accumulate}, static_cast<cl_int>(kchunk),
                 static_cast<cl_int>(kbase), static_cast<cl_int>(kstop), track_args...);
  };
  if (track.maxima) launch_with(track.maxima->handle(), cl_uint{track.slot});
  else launch_with();
  if (rt.profiling()) rt.label_last(fmt::format("{} {}x{}x{} /{}", kernel.name, m, n, k, splits));
}

// How many slices k is cut into (1: none): until about t.target_groups work-groups run, each slice a
// whole number of tiles and at least t.min_split_k long.
inline std::size_t split_count(std::size_t tiles, std::size_t k, std::size_t tile, const gemm_tuning& t) {
  if (tiles >= t.target_groups || k < 2 * t.min_split_k) return 1;
  const std::size_t wanted = (t.target_groups + tiles - 1) / tiles;
  const std::size_t most = k / std::max(t.min_split_k, tile);
  return std::max<std::size_t>(1, std::min(wanted, most));
}

inline constexpr std::size_t few_rows_limit = 8;

// gemm_few_rows_cl.hpp built for `rows` rows (FR_M).
inline const cl::Program& few_rows_program(runtime& rt, std::size_t rows) {
  return rt.program(kernels::gemm_few_rows_source, cached_options(rows, [&] { return fmt::format("-DFR_M={}", rows); }));
}

// Enqueues C (=|+=) the float product through gemm_few_rows_cl.hpp where its shape is one those
// kernels take (a few rows, word-aligned rows of the wide operands); returns whether it did.
inline bool enqueue_few_rows(runtime& rt, std::size_t m, std::size_t n, std::size_t k, const cl::Buffer& A,
                             bool a_kmajor, const cl::Buffer& B, bool b_kmajor, const cl::Buffer& C, bool accumulate) {
  const auto args = [&](const char* name, const cl::NDRange& global, const cl::NDRange& local, std::size_t rows) {
    launch_range(rt, few_rows_program(rt, rows), name, global, local, static_cast<cl_int>(m), static_cast<cl_int>(n),
                 static_cast<cl_int>(k), A, B, C, cl_int{accumulate});
    if (rt.profiling()) rt.label_last(fmt::format("{} {}x{}x{}", name, m, n, k));
  };
  // The kernels' FR_DOT_ITEMS and FR_ITEMS work-items, FR_COLS and 4 FR_QUADS columns per group.
  constexpr std::size_t items = 256, dot_columns = 4, axpy_columns = 32, short_k_rows = 4;
  if (!a_kmajor && !b_kmajor && m <= few_rows_limit && k % 4 == 0) {  // Y = X W^T
    args("gemm_few_rows_dot", cl::NDRange((n + dot_columns - 1) / dot_columns * items), cl::NDRange(items), m);
    return true;
  }
  if (!a_kmajor && b_kmajor && m <= few_rows_limit && n % 4 == 0) {  // dX = dY W
    args("gemm_few_rows_axpy", cl::NDRange((n + axpy_columns - 1) / axpy_columns * items), cl::NDRange(items), m);
    return true;
  }
  if (a_kmajor && b_kmajor && k <= few_rows_limit && n % 4 == 0) {  // dW = dY^T X
    args("gemm_short_k", cl::NDRange((n / 4 + 63) / 64 * 64, (m + short_k_rows - 1) / short_k_rows),
         cl::NDRange(64, 1), short_k_rows);
    return true;
  }
  return false;
}

// C[m x n] (=|+=) sum_p opA(i, p) opB(j, p); a_kmajor / b_kmajor: the operand is stored [k x rows].
// image: an operand that is the im2col of the image in that buffer, read in place (tensor cores only:
// see reads_image_in_place). track (integer sums): where the largest |C| is reduced as C is written.
// unsummed (float, C = rather than +=): where k is split, the slices are left there for the reader of
// C to add (no gemm_sum_splits launch) and C is not written; else its count is 0.
template <class T>
void gemm(runtime& rt, std::size_t m, std::size_t n, std::size_t k, const device_buffer<T>& A, bool a_kmajor,
          const device_buffer<T>& B, bool b_kmajor, device_buffer<gemm_result_t<T>>& C, bool accumulate,
          const gemm_tuning& t, const image_operand& image = {}, const maximum_target& track = {},
          unsummed_slices* unsummed = nullptr) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, std::int8_t> || std::is_same_v<T, std::int16_t>,
                "pbnn::opencl::gemm: operands must be float, int8 or int16");
  if (t.tile == 0) {  // 64-wide tiles reuse operands twice as much, where C has enough of them to fill a GPU
    gemm_tuning chosen = t;
    chosen.tile = (m / 64) * (n / 64) >= 512 ? 64 : 32;
    return gemm(rt, m, n, k, A, a_kmajor, B, b_kmajor, C, accumulate, chosen, image, track, unsummed);
  }
  if (t.tile < 0 || t.per_item <= 0 || t.tile % t.per_item)
    throw std::invalid_argument(fmt::format("pbnn::opencl::gemm: tile {} must be a positive multiple of per_item {}",
                                            t.tile, t.per_item));
  constexpr auto int_max = static_cast<std::size_t>(std::numeric_limits<int>::max());
  const bool a_image = image.which == image_operand::a || image.which == image_operand::dx;
  const std::size_t a_needs = a_image ? image.geometry.image_size() : m * k;
  const std::size_t b_needs = image.which == image_operand::b ? image.geometry.image_size() : n * k;
  const bool image_too_large = image.which != image_operand::none && image.geometry.image_size() > int_max;
  if (m > int_max || n > int_max || k > int_max || image_too_large || a_needs > A.size() || b_needs > B.size())
    throw std::invalid_argument(fmt::format("pbnn::opencl::gemm: ({} x {} x {}) does not fit operands of {} and {} "
                                            "elements",
                                            m, n, k, A.size(), B.size()));
  if (std::is_same_v<T, float> && track.maxima)  // before any kernel choice: none tracks float sums
    throw std::logic_error("pbnn::opencl::gemm: the largest magnitude is reduced for integer sums only");
  if (unsummed && (!std::is_same_v<T, float> || accumulate))
    throw std::logic_error("pbnn::opencl::gemm: only a float product written (not added) leaves its slices unsummed");
  if (unsummed) unsummed->count = 0;
  C.resize(rt, m * n);
  if (m == 0 || n == 0) return;
  if constexpr (std::is_same_v<T, float>)
    if (t.few_rows && image.which == image_operand::none && k > 0 &&
        enqueue_few_rows(rt, m, n, k, A.handle(), a_kmajor, B.handle(), b_kmajor, C.handle(), accumulate))
      return;
  const bool tensor_cores = !std::is_same_v<T, std::int16_t> && t.tensor_cores && tensor_core_gemms(rt);
  if (image.which != image_operand::none && !tensor_cores)
    throw std::logic_error("pbnn::opencl::gemm: an image operand read in place needs tensor-core GEMMs");
  // Tensor-core slices are multiples of 64 long (whole local tiles of either mma kernel), so they
  // keep the operands' word alignment.
  const auto sliced = [&](std::size_t tile) {
    std::size_t splits = split_count(((m + tile - 1) / tile) * ((n + tile - 1) / tile), k, tile, t);
    std::size_t kchunk = (k + splits - 1) / splits;
    if (tensor_cores && splits > 1) {
      kchunk = (kchunk + 63) / 64 * 64;
      splits = (k + kchunk - 1) / kchunk;
    }
    return std::pair{splits, kchunk};
  };
  // The tile (the same with or without tracking) decides the split; the kernel writing the final sums tracks.
  const auto kernel_for = [&](bool track_max) {
    if constexpr (std::is_same_v<T, std::int16_t>) return portable_gemm<T>(rt, a_kmajor, b_kmajor, t, track_max);
    else
      return tensor_cores ? mma_gemm<T>(rt, m, n, k, a_kmajor, b_kmajor, common_alignment({k}), t, image, track_max)
                          : portable_gemm<T>(rt, a_kmajor, b_kmajor, t, track_max);
  };
  const bool tracks = track.maxima != nullptr;
  const auto tile = tensor_cores ? static_cast<std::size_t>(resolve_mma_tiling(m, n, k, t).block)
                                 : static_cast<std::size_t>(t.tile);
  const auto [splits, kchunk] = sliced(tile);
  if (splits == 1)
    return enqueue_gemm(rt, kernel_for(tracks), m, n, k, A.handle(), B.handle(), C.handle(), accumulate, 1, k, 0, k,
                        track);
  if constexpr (std::is_same_v<T, float>) {
    if (unsummed) {
      unsummed->slices.resize(rt, splits * m * n);
      enqueue_gemm(rt, kernel_for(false), m, n, k, A.handle(), B.handle(), unsummed->slices.handle(), false, splits,
                   kchunk, 0, k);
      unsummed->count = splits;
      return;
    }
  }
  const cl::Buffer& slices = rt.scratch(splits * m * n * sizeof(gemm_result_t<T>));
  enqueue_gemm(rt, kernel_for(false), m, n, k, A.handle(), B.handle(), slices, false, splits, kchunk, 0, k);
  const cl::Program& sums = rt.program(kernels::gemm_source, gemm_options<T>(a_kmajor, b_kmajor, t, tracks));
  if (!tracks)
    return launch(rt, sums, "gemm_sum_splits", m * n, slices, static_cast<cl_int>(splits), checked_count(m * n),
                  C.handle(), cl_int{accumulate});
  launch_range(rt, sums, "gemm_sum_splits", elementwise_range(m * n), cl::NDRange(256), slices,
               static_cast<cl_int>(splits), checked_count(m * n), C.handle(), cl_int{accumulate},
               track.maxima->handle(), cl_uint{track.slot});
}

// The n values the slices of p add up to, into target (of floats, or of integers: never sliced).
template <class T>
void add_slices(runtime& rt, unsummed_slices& p, std::size_t n, const device_buffer<T>& target) {
  if (p.count == 0) return;
  if (!std::is_same_v<T, float> || p.slices.size() != p.count * n || target.size() < n)
    throw std::logic_error(fmt::format("pbnn::opencl: {} slices of {} values for {} values of {} bytes", p.count,
                                       p.slices.size(), n, sizeof(T)));
  gemm_tuning t32;
  t32.tile = 32;
  launch(rt, rt.program(kernels::gemm_source, gemm_options<float>(false, false, t32)), "gemm_sum_splits", n,
         p.slices.handle(), static_cast<cl_int>(p.count), checked_count(n), target.handle(), cl_int{0});
  p.count = 0;
}

}  // namespace detail

// Adds up the slices a product left in t (gemm's `unsummed`) into t's data; nothing where none are.
template <class F>
void sum_pending(runtime& rt, const device_tensor<F>& t) {
  detail::add_slices(rt, t.pending, t.size(), t.data);
}

// Y[b x n] = X[b x k] W^T
// track (integer sums): where their largest magnitude is reduced as they are written, here and in
// the products below that take one.
template <class T>
void matmul_xwt(runtime& rt, const device_buffer<T>& X, const device_buffer<T>& W,
                device_buffer<detail::gemm_result_t<T>>& Y, std::size_t b, std::size_t n, std::size_t k,
                const gemm_tuning& t = {}, const maximum_target& track = {}) {
  detail::gemm(rt, b, n, k, X, false, W, false, Y, false, t, {}, track);
}
// dX[b x k] = dY[b x n] W
template <class T>
void matmul_dyw(runtime& rt, const device_buffer<T>& dY, const device_buffer<T>& W,
                device_buffer<detail::gemm_result_t<T>>& dX, std::size_t b, std::size_t n, std::size_t k,
                const gemm_tuning& t = {}, const maximum_target& track = {}) {
  detail::gemm(rt, b, k, n, dY, false, W, true, dX, false, t, {}, track);
}
// dW[n x k] = dY[b x n]^T X[b x k] in 64 bits, for integer operands whose int32 sums are exact only
// over exact_rows rows (int16, or int8 over long batches): each run of at most exact_rows rows (shorter
// where that fills the device better) is summed in int32 by work-groups of its own, and the runs are
// added in 64 bits. The slices take at most 256 MB of scratch at a time.
template <class T>
void matmul_dytx_wide(runtime& rt, const device_buffer<T>& dY, const device_buffer<T>& X,
                      device_buffer<std::int64_t>& dW, std::size_t b, std::size_t n, std::size_t k,
                      std::size_t exact_rows, gemm_tuning t = {}) {
  static_assert(!std::is_same_v<T, float>, "pbnn::opencl::matmul_dytx_wide: integer operands");
  if (t.tile == 0) t.tile = 32;
  constexpr std::size_t scratch_cap = std::size_t{256} << 20;
  const std::size_t slice_bytes = n * k * sizeof(std::int32_t);
  if (exact_rows == 0 || b * n > dY.size() || b * k > X.size())
    throw std::invalid_argument("pbnn::opencl::matmul_dytx_wide: operands smaller than the shape, or no rows per run");
  dW.resize(rt, n * k);
  const cl::Program& program = rt.program(kernels::gemm_source, detail::gemm_options<T>(true, true, t));
  const bool tensor_cores = std::is_same_v<T, std::int8_t> && t.tensor_cores && tensor_core_gemms(rt);
  detail::gemm_kernel kernel;
  if constexpr (std::is_same_v<T, std::int8_t>)
    kernel = tensor_cores ? detail::mma_gemm<T>(rt, n, k, b, true, true, 1, t) : detail::portable_gemm<T>(rt, true, true, t);
  else kernel = detail::portable_gemm<T>(rt, true, true, t);
  // Any run of at most exact_rows rows sums exactly: runs as short as a full GPU wants.
  const std::size_t tiles = ((n + kernel.tile - 1) / kernel.tile) * ((k + kernel.tile - 1) / kernel.tile);
  const std::size_t wanted = detail::split_count(tiles, b, kernel.tile, t);
  std::size_t run = std::min(exact_rows, (b + wanted - 1) / wanted);
  if (tensor_cores && run > 64) run = run / 64 * 64;  // whole k steps of the mma kernel
  const std::size_t runs_at_once = std::max<std::size_t>(1, scratch_cap / std::max<std::size_t>(slice_bytes, 1));
  for (std::size_t r0 = 0; r0 < b; r0 += runs_at_once * run) {
    const std::size_t r1 = std::min(b, r0 + runs_at_once * run);
    const std::size_t runs = (r1 - r0 + run - 1) / run;
    const cl::Buffer& slices = rt.scratch(runs * slice_bytes);
    detail::enqueue_gemm(rt, kernel, n, k, b, dY.handle(), X.handle(), slices, false, runs, run, r0, r1);
    detail::launch(rt, program, "gemm_sum_splits_wide", n * k, slices, static_cast<cl_int>(runs),
                   detail::checked_count(n * k), dW.handle(), cl_int{r0 > 0});
  }
}

// dW[n x k] = dY[b x n]^T X[b x k]; unsummed (float): as gemm's.
template <class T>
void matmul_dytx(runtime& rt, const device_buffer<T>& dY, const device_buffer<T>& X,
                 device_buffer<detail::gemm_result_t<T>>& dW, std::size_t b, std::size_t n, std::size_t k,
                 const gemm_tuning& t = {}, unsummed_slices* unsummed = nullptr) {
  detail::gemm(rt, n, k, b, dY, true, X, true, dW, false, t, {}, {}, unsummed);
}

// A dense layer's backward products, dW = dY^T X (matmul_dytx) and, if dX, dX = dY W (matmul_dyw): a
// batch of at most 8 rows (k a multiple of 4) in one launch of gemm_few_rows_backward (the few-row
// kernels' sums, so the same results) where t.few_rows, else in theirs.
inline void matmul_dense_backward(runtime& rt, const device_buffer<float>& dY, const device_buffer<float>& X,
                                  const device_buffer<float>& W, device_buffer<float>& dW, device_buffer<float>* dX,
                                  std::size_t b, std::size_t n, std::size_t k, const gemm_tuning& t = {}) {
  if (!dX || !t.few_rows || b == 0 || b > detail::few_rows_limit || n == 0 || k == 0 || k % 4) {
    matmul_dytx(rt, dY, X, dW, b, n, k, t);
    if (dX) matmul_dyw(rt, dY, W, *dX, b, n, k, t);
    return;
  }
  if (dY.size() < b * n || X.size() < b * k || W.size() < n * k || n > std::numeric_limits<int>::max() ||
      k > std::numeric_limits<int>::max())
    throw std::invalid_argument(fmt::format("pbnn::opencl::matmul_dense_backward: ({} x {} x {}) does not fit operands "
                                            "of {}, {} and {} elements",
                                            b, n, k, dY.size(), X.size(), W.size()));
  dW.resize(rt, n * k);
  dX->resize(rt, b * k);
  // The kernel's FR_ITEMS work-items; few_rows_axpy's 32 columns per group, short_k's 4 rows per item.
  constexpr std::size_t items = 256, axpy_columns = 32, short_k_rows = 4;
  const std::size_t axpy_groups = (k + axpy_columns - 1) / axpy_columns;
  const std::size_t short_k_groups = (n + short_k_rows - 1) / short_k_rows * ((k / 4 + items - 1) / items);
  detail::launch_range(rt, detail::few_rows_program(rt, b), "gemm_few_rows_backward",
                       cl::NDRange((axpy_groups + short_k_groups) * items), cl::NDRange(items),
                       static_cast<cl_int>(n), static_cast<cl_int>(k), dY.handle(), X.handle(), W.handle(),
                       dX->handle(), dW.handle(), static_cast<cl_int>(axpy_groups));
  if (rt.profiling()) rt.label_last(fmt::format("gemm_few_rows_backward {}x{}x{}", b, n, k));
}

// Whether a convolution's products can read its input image x in place of im2col(x) on this device
// (matmul_image_xwt, matmul_dytx_image): int8 or float on tensor cores, and channels that fill whole
// 16-byte words (so that no word of im2col straddles two kernel taps).
template <class T>
bool reads_image_in_place(runtime& rt, const conv_geometry& g, const gemm_tuning& t = {}) {
  return (std::is_same_v<T, float> || std::is_same_v<T, std::int8_t>) && t.tensor_cores && tensor_core_gemms(rt) &&
         g.channels % (16 / sizeof(T)) == 0;
}

// Y[b Ho Wo x n] = im2col(x) W^T, W [n x K K C], x read in place (reads_image_in_place).
// unsummed (float): as gemm's.
template <class T>
void matmul_image_xwt(runtime& rt, const device_buffer<T>& x, const conv_geometry& g, const device_buffer<T>& W,
                      device_buffer<detail::gemm_result_t<T>>& Y, std::size_t n, const gemm_tuning& t = {},
                      const maximum_target& track = {}, unsummed_slices* unsummed = nullptr) {
  detail::check_geometry(g);
  detail::gemm(rt, g.batch * g.out_height() * g.out_width(), n, g.kernel * g.kernel * g.channels, x, false, W, false, Y,
               false, t, {detail::image_operand::a, g}, track, unsummed);
}

// Whether a convolution's dX = dY W can run as a convolution of dY read in place (matmul_dyw_image:
// no dcols, no col2im): as reads_image_in_place for dY's channels, stride 1, and input channels in
// fours (the weights are read 4 channels at a time). g: the layer's geometry (its input x).
template <class T>
bool dx_reads_image_in_place(runtime& rt, const conv_geometry& g, std::size_t out_channels, const gemm_tuning& t = {}) {
  conv_geometry dy = g;
  dy.channels = out_channels;  // dY's channels fill the words its im2col is read in
  return g.stride == 1 && g.pad < g.kernel && g.channels % 4 == 0 && reads_image_in_place<T>(rt, dy, t);
}

// dX[b H W x C] = dY W as a convolution of dY with the flipped kernel, for a stride-1 convolution of
// geometry g (its input's) and W [out_channels x K K C]: dY and W read in place
// (dx_reads_image_in_place). The same products as dcols = dY W then col2im, summed in another order.
// unsummed (float): as gemm's.
template <class T>
void matmul_dyw_image(runtime& rt, const device_buffer<T>& dY, const device_buffer<T>& W, const conv_geometry& g,
                      std::size_t out_channels, device_buffer<detail::gemm_result_t<T>>& dX, const gemm_tuning& t = {},
                      const maximum_target& track = {}, unsummed_slices* unsummed = nullptr) {
  detail::check_geometry(g);
  if (g.stride != 1 || g.pad >= g.kernel)
    throw std::invalid_argument("pbnn::opencl::matmul_dyw_image: a stride-1 convolution padded by less than its kernel");
  const conv_geometry dy_image{g.batch, g.out_height(), g.out_width(), out_channels, g.kernel, 1, g.kernel - 1 - g.pad};
  detail::gemm(rt, g.batch * g.height * g.width, g.channels, g.kernel * g.kernel * out_channels, dY, false, W, true, dX,
               false, t, {detail::image_operand::dx, dy_image}, track, unsummed);
}

// dW[n x K K C] = dY[b Ho Wo x n]^T im2col(x), x read in place (reads_image_in_place); unsummed
// (float): as gemm's.
template <class T>
void matmul_dytx_image(runtime& rt, const device_buffer<T>& dY, const device_buffer<T>& x, const conv_geometry& g,
                       device_buffer<detail::gemm_result_t<T>>& dW, std::size_t n, const gemm_tuning& t = {},
                       unsummed_slices* unsummed = nullptr) {
  detail::check_geometry(g);
  detail::gemm(rt, n, g.kernel * g.kernel * g.channels, g.batch * g.out_height() * g.out_width(), dY, true, x, true, dW,
               false, t, {detail::image_operand::b, g}, {}, unsummed);
}

}  // namespace pbnn::opencl
