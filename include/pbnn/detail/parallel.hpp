#pragma once
// Splitting element-wise work over the OpenMP threads.
#include <algorithm>
#include <cstddef>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace pbnn::detail {

// fn(begin, end) over contiguous chunks of [0, n), one per thread when n is large enough to pay.
template <class Fn>
void parallel_chunks(std::size_t n, Fn&& fn) {
#pragma omp parallel if (n > 65536)
  {
    std::size_t t = 0, nt = 1;
#ifdef _OPENMP
    t = static_cast<std::size_t>(omp_get_thread_num());
    nt = static_cast<std::size_t>(omp_get_num_threads());
#endif
    const std::size_t chunk = (n + nt - 1) / nt, begin = std::min(n, t * chunk), end = std::min(n, begin + chunk);
    fn(begin, end);
  }
}

// Note for loops that store int8: inside an OpenMP-outlined loop the shared variables are read
// through a pointer that a char store may alias, which keeps GCC from vectorizing. Loops run through
// parallel_chunks copy what they need into locals first and vectorize as plain loops.

}  // namespace pbnn::detail
