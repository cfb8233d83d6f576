#pragma once
// The convolutional networks of train_vgg, in user code: every layer binarized per the policy but the
// last; Act is the activation after each batch norm (binary_act, or relu for the real-activation
// schemes). Max pooling sits between a convolution and its batch norm.
#include <pbnn/pbnn.hpp>

namespace examples {

using namespace pbnn;

// Table 1 of the PBNN paper: conv128, conv128, pool, conv128, conv256, pool, conv256, conv512, pool,
// fc1024, fc1024, fc10 (3x3 convolutions, stride 1, padding 1).
template <class Policy, class Act>
using table1 = sequential<Policy, input<3, 32, 32>,
    conv2d<128>, batch_norm<>, Act,
    conv2d<128>, max_pool<>, batch_norm<>, Act,
    conv2d<128>, batch_norm<>, Act,
    conv2d<256>, max_pool<>, batch_norm<>, Act,
    conv2d<256>, batch_norm<>, Act,
    conv2d<512>, max_pool<>, batch_norm<>, Act,
    dense<1024>, batch_norm<>, Act,
    dense<1024>, batch_norm<>, Act,
    dense<10, real>, batch_norm<>>;

// Seed 001's VGG: 128, 128, pool, 256, 256, pool, 512, 512, pool, fc1024, fc1024, fc10.
template <class Policy, class Act>
using seed001_vgg = sequential<Policy, input<3, 32, 32>,
    conv2d<128>, batch_norm<>, Act,
    conv2d<128>, max_pool<>, batch_norm<>, Act,
    conv2d<256>, batch_norm<>, Act,
    conv2d<256>, max_pool<>, batch_norm<>, Act,
    conv2d<512>, batch_norm<>, Act,
    conv2d<512>, max_pool<>, batch_norm<>, Act,
    dense<1024>, batch_norm<>, Act,
    dense<1024>, batch_norm<>, Act,
    dense<10, real>, batch_norm<>>;

// Multiply-adds of one image's forward pass through the convolutions and dense layers of Table 1
// (the backward pass costs twice this): for GFLOP/s figures.
inline constexpr double table1_forward_macs =
    32.0 * 32 * 128 * 27 + 32.0 * 32 * 128 * 1152 + 16.0 * 16 * 128 * 1152 + 16.0 * 16 * 256 * 1152 +
    8.0 * 8 * 256 * 2304 + 8.0 * 8 * 512 * 2304 + 8192.0 * 1024 + 1024.0 * 1024 + 1024.0 * 10;

}  // namespace examples
