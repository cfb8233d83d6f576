// Built by .ci/run against an installed pbnn: proves the package config, the include paths and the
// dependencies it declares are enough for a downstream project.
#include <pbnn/io/safetensors.hpp>

#include <cstdio>

int main() {
  pbnn::io::safetensors st;
  st.metadata["network"] = "consumer check";
  std::puts(st.metadata.at("network").c_str());
  return 0;
}
