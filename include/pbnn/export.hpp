#pragma once
// The trained binary network to and from safetensors: per binarized layer the signs as int8 (+-1),
// batch-norm parameters, running statistics and thresholds as F32, layers kept real as F32, and in
// __metadata__ the network description, format and scheme. Tensors are named "<index>.<layer>.<name>",
// e.g. "0.dense.weight_sign", "1.batch_norm.threshold".
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include "pbnn/io/safetensors.hpp"

namespace pbnn {

namespace detail {
inline std::string layer_kind(const std::string& description) { return description.substr(0, description.find('(')); }

// Networks whose parameters live on a device (pbnn/opencl/network.hpp) keep a host twin with the
// same layers; saving and loading go through it.
template <class Net>
concept has_host_twin = requires(Net& n) {
  n.host();
  n.download();
  n.upload();
};
template <class Net>
auto& host_layers(Net& net) {
  if constexpr (has_host_twin<Net>) return net.host();
  else return net;
}
}  // namespace detail

template <class Net>
io::safetensors to_safetensors(Net& net, const std::map<std::string, std::string>& extra_metadata = {}) {
  io::safetensors st;
  st.metadata = extra_metadata;
  st.metadata["format"] = "pbnn binary network v1";
  st.metadata["network"] = Net::describe();
  st.metadata["number_format"] = format_traits<typename Net::format>::name;
  st.metadata["scheme"] = Net::scheme::name;
  if constexpr (detail::has_host_twin<Net>) net.download();
  detail::host_layers(net).for_each_layer([&](const auto& layer, std::size_t i) {
    using L = std::decay_t<decltype(layer)>;
    layer.save(st, fmt::format("{}.{}.", i, detail::layer_kind(L::describe())));
  });
  return st;
}

template <class Net>
void save_binary_network(Net& net, const std::filesystem::path& file,
                         const std::map<std::string, std::string>& extra_metadata = {}) {
  io::write_safetensors(file, to_safetensors(net, extra_metadata));
}

// Loads a file written by save_binary_network into a network of the same description; evaluation
// then classifies exactly as the network that was saved. A file for another network is refused.
template <class Net>
void load_binary_network(Net& net, const std::filesystem::path& file) {
  const io::safetensors st = io::read_safetensors(file);
  auto meta = [&](const std::string& key) -> std::string {
    const auto it = st.metadata.find(key);
    if (it == st.metadata.end())
      throw std::runtime_error(fmt::format("{}: not a pbnn binary network: no \"{}\" in __metadata__", file.string(), key));
    return it->second;
  };
  if (meta("format") != "pbnn binary network v1")
    throw std::runtime_error(fmt::format("{}: unsupported format \"{}\", expected \"pbnn binary network v1\"",
                                         file.string(), meta("format")));
  const std::pair<std::string, std::string> expected[] = {
      {"network", Net::describe()},
      {"number_format", format_traits<typename Net::format>::name},
      {"scheme", Net::scheme::name}};
  for (const auto& [key, want] : expected)
    if (meta(key) != want)
      throw std::runtime_error(
          fmt::format("{}: {} is \"{}\", expected \"{}\"", file.string(), key, meta(key), want));
  try {
    detail::host_layers(net).for_each_layer([&](auto& layer, std::size_t i) {
      using L = std::decay_t<decltype(layer)>;
      layer.load(st, fmt::format("{}.{}.", i, detail::layer_kind(L::describe())));
    });
    if constexpr (detail::has_host_twin<Net>) net.upload();
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("{}: {}", file.string(), e.what()));
  }
}

}  // namespace pbnn
