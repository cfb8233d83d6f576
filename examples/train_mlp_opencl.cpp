// train_mlp's networks on the OpenCL backend (--backend opencl), in a translation unit of their own.
#include <pbnn/opencl.hpp>

#include "mlp_network.hpp"
#include "trainer_cli.hpp"

namespace examples {

int train_on_opencl(const run_options& o, const pbnn::dataset& tr, const pbnn::dataset& te) {
  pbnn::opencl::set_default_device(o.device);
  return with_format<mlp, pbnn::opencl::backend>(o, tr, te);
}

}  // namespace examples
