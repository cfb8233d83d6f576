// Built by .ci/run against an installed pbnn: proves that the package config, the include paths
// and the dependencies it declares are enough for a downstream project to train and export a network.
#include <pbnn/pbnn.hpp>

#include <cstdio>
#include <filesystem>
#include <memory>

int main() {
  using P = pbnn::policy<pbnn::fixed<8>, pbnn::progressive<>>;
  using net_t = pbnn::sequential<P, pbnn::input<16>, pbnn::dense<32>, pbnn::batch_norm<>, pbnn::binary_act,
                                 pbnn::dense<2, pbnn::real, true>>;
  pbnn::dataset d;  // two classes: is the first feature above one half?
  d.count = 256;
  d.features = 16;
  d.classes = 2;
  pbnn::rng g(1);
  for (std::size_t i = 0; i < d.count * d.features; ++i) d.x.push_back(g.uniform());
  for (std::size_t i = 0; i < d.count; ++i) d.label.push_back(d.x[i * d.features] > 0.5f ? 1 : 0);

  auto net = std::make_unique<net_t>();
  pbnn::train_options opt;
  opt.epochs = 3;
  opt.batch = 32;
  pbnn::trainer<net_t> t(*net, opt);
  pbnn::epoch_stats st;
  for (int e = 0; e < opt.epochs; ++e) st = t.run_epoch(d, nullptr, e);
  const auto file = std::filesystem::temp_directory_path() / "pbnn_consumer.safetensors";
  pbnn::save_binary_network(*net, file);
  std::printf("consumer: %s, train accuracy %.2f, exported %s\n", net_t::describe().c_str(), st.train_accuracy,
              file.c_str());
  std::filesystem::remove(file);
  return 0;
}
