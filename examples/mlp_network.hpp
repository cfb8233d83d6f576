#pragma once
// The network of train_mlp, in user code: the MLP 784-1000-500-10 of seed 001 with batch norm.
#include <pbnn/pbnn.hpp>

namespace examples {

// The hidden layers are binarized per the policy; the output layer stays real (BinaryConnect style)
// and is batch-normalized (better than a bias by 0.2-0.3 points for float and det, bench/RESULTS.md).
template <class Policy, class Activation>
using mlp = pbnn::sequential<Policy, pbnn::input<784>,
                             pbnn::dense<1000>, pbnn::batch_norm<>, Activation,
                             pbnn::dense<500>, pbnn::batch_norm<>, Activation,
                             pbnn::dense<10, pbnn::real>, pbnn::batch_norm<>>;

}  // namespace examples
