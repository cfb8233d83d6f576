#pragma once
// Kernel sources that share OpenCL C are joined at compile time: the shared part is written once,
// and each joined source is still one static string (runtime::static_program finds it by address).
#include <array>
#include <cstddef>

namespace pbnn::opencl::kernels {

template <std::size_t... N>
constexpr std::array<char, (N + ...) - sizeof...(N) + 1> join_sources(const char (&... parts)[N]) {
  std::array<char, (N + ...) - sizeof...(N) + 1> out{};
  std::size_t at = 0;
  const auto append = [&](const char* part, std::size_t n) {
    for (std::size_t i = 0; i + 1 < n; ++i) out[at++] = part[i];
  };
  (append(parts, N), ...);
  out[at] = '\0';
  return out;
}

}  // namespace pbnn::opencl::kernels
