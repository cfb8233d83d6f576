// train_vgg's networks on the OpenCL backend (--backend opencl), in a translation unit of their own.
#include <pbnn/opencl.hpp>

#include "trainer_cli.hpp"
#include "vgg_networks.hpp"

namespace examples {

int train_on_opencl(const run_options& o, const pbnn::dataset& tr, const pbnn::dataset& te) {
  pbnn::opencl::set_default_device(o.device);
  if (o.network == "seed001") return with_format<seed001_vgg, pbnn::opencl::backend>(o, tr, te);
  return with_format<table1, pbnn::opencl::backend>(o, tr, te);
}

}  // namespace examples
