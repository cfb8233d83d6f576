// The installed pbnn::opencl target: trains a small network on the default OpenCL device (the
// umbrella header <pbnn/opencl.hpp>, as a downstream project would use it).
#include <pbnn/opencl.hpp>

#include <cstdio>
#include <memory>

int main() {
  try {
    using P = pbnn::policy<pbnn::fixed<8>, pbnn::progressive<>, pbnn::opencl::backend>;
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
    std::printf("consumer_opencl: %s on %s, train accuracy %.2f\n", net_t::describe().c_str(),
                net->runtime().device().label().c_str(), st.train_accuracy);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "consumer_opencl: %s\n", e.what());
    return 1;
  }
}
