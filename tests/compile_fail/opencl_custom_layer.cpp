// Must not compile: a layer of the user's own has no device version (tests/CMakeLists.txt checks the
// compiler's message).
#include <pbnn/opencl.hpp>

// A CPU layer spec: the identity.
template <class Policy, class In>
struct identity_layer : pbnn::relu_layer<Policy, In> {};
struct identity {
  template <class Policy, class In>
  using layer = identity_layer<Policy, In>;
};

using P = pbnn::policy<pbnn::fp32, pbnn::sign, pbnn::opencl::backend>;
using net = pbnn::sequential<P, pbnn::input<4>, pbnn::dense<3>, identity>;

int main() {
  net n;
  (void)n;
}
