// Must not compile: a dense layer with a bias has no device version (tests/CMakeLists.txt checks the
// compiler's message).
#include <pbnn/opencl.hpp>

using P = pbnn::policy<pbnn::fp32, pbnn::sign, pbnn::opencl::backend>;
using net = pbnn::sequential<P, pbnn::input<4>, pbnn::dense<3, pbnn::real, true>>;

int main() {
  net n;
  (void)n;
}
