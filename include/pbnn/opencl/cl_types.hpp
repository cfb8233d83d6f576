#pragma once
// The kernels' -D build options: the OpenCL C names of pbnn's element types, and options strings
// formatted once instead of on every launch.
#include <cstdint>
#include <map>
#include <string>
#include <type_traits>

#include "pbnn/format.hpp"

namespace pbnn::opencl::detail {

template <class T>
constexpr const char* cl_type_name() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, std::int8_t> || std::is_same_v<T, std::int16_t> ||
                    std::is_same_v<T, std::int32_t>,
                "pbnn::opencl: device tensors hold float, int8, int16 or int32 values");
  if constexpr (std::is_same_v<T, float>) return "float";
  else if constexpr (std::is_same_v<T, std::int8_t>) return "char";
  else if constexpr (std::is_same_v<T, std::int16_t>) return "short";
  else return "int";
}

// The type that holds a number format's values on the device: float for fp32, char or short for the
// fixed formats.
template <class F>
constexpr const char* cl_storage_name() {
  return cl_type_name<storage_t<F>>();
}

// Build options (or a generated source) formatted once per distinct key and call site (per thread):
// a launch looks its program's options up without formatting or allocating.
template <class Key, class Format>
const std::string& cached_options(const Key& key, Format&& format) {
  thread_local std::map<Key, std::string> cache;
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, format()).first;
  return it->second;
}

}  // namespace pbnn::opencl::detail
