// Must not compile: an optimizer without a device update (tests/CMakeLists.txt checks the message).
#include <pbnn/opencl.hpp>

struct my_optimizer : pbnn::sgd {
  static constexpr const char* name = "mine";
};
using P = pbnn::policy<pbnn::fp32, pbnn::sign, pbnn::opencl::backend>;
using net = pbnn::sequential<P, pbnn::input<4>, pbnn::dense<3>>;

int main() {
  net n;
  pbnn::trainer<net, my_optimizer> t(n, {});
}
