#pragma once
// OpenCL C 1.2 source of the softmax cross-entropy over a batch of logits (pbnn/loss.hpp), one
// work-item per sample, in float (the CPU sums in double; OpenCL C 1.2 does not require double).
// Build options: -DTQ=float|char|short, -DNVIDIA_PTX (last_group_cl.hpp).
#include "pbnn/opencl/kernels/join.hpp"
#include "pbnn/opencl/kernels/last_group_cl.hpp"

namespace pbnn::opencl::kernels {

inline constexpr char loss_body_source[] = R"CLC(
// d[r, j] = (softmax(z_r)_j - [j == label_r]) / b; row_loss[r] = logsumexp(z_r) - z_r[label_r];
// correct counts rows whose first largest logit is the label. z = logits 2^logit_exp.
void softmax_cross_entropy_row(const uint r, __global const TQ* logits, __global const int* logit_exp, const uint b,
                               const uint k, __global const uchar* labels, __global float* d,
                               __global float* row_loss, volatile __global uint* correct) {
  __global const TQ* z = logits + (size_t)r * k;
  const float scale = ldexp(1.0f, logit_exp[0]);
  const uint label = labels[r];
  float zmax = -INFINITY;
  uint best = 0;
  for (uint j = 0; j < k; ++j) {
    zmax = fmax(zmax, (float)z[j] * scale);
    if (z[j] > z[best]) best = j;
  }
  float sum = 0.0f;
  for (uint j = 0; j < k; ++j) sum += exp((float)z[j] * scale - zmax);
  const float log_sum = log(sum) + zmax;
  row_loss[r] = log_sum - (float)z[label] * scale;
  if (best == label) atomic_inc(correct);
  for (uint j = 0; j < k; ++j)
    d[(size_t)r * k + j] = (exp((float)z[j] * scale - log_sum) - (j == label ? 1.0f : 0.0f)) / (float)b;
}

// softmax_cross_entropy_row for the b rows, one work-item each; with_sum: the last work-group to
// finish also writes sums[sum_index] = the batch's summed loss, in the order the host sums it
// (counting in counters[0]).
__kernel void softmax_cross_entropy(__global const TQ* logits, __global const int* logit_exp, const uint b,
                                    const uint k, __global const uchar* labels, __global float* d,
                                    __global float* row_loss, volatile __global uint* correct, const int with_sum,
                                    __global float* sums, const uint sum_index, volatile __global int* counters) {
  __local int last;
  const uint r = get_global_id(0);
  if (r < b) softmax_cross_entropy_row(r, logits, logit_exp, b, k, labels, d, row_loss, correct);
  if (!with_sum || !last_to_arrive(counters, 0, get_num_groups(0), &last) || get_local_id(0) != 0) return;
  volatile __global const float* losses = row_loss;
  float s = 0.0f;
  for (uint i = 0; i < b; ++i) s += losses[i];
  sums[sum_index] = s;
}

// Evaluation: correct counts rows whose first largest logit is the label.
__kernel void count_correct(__global const TQ* logits, const uint b, const uint k, __global const uchar* labels,
                            volatile __global uint* correct) {
  const uint r = get_global_id(0);
  if (r >= b) return;
  __global const TQ* z = logits + (size_t)r * k;
  uint best = 0;
  for (uint j = 1; j < k; ++j)
    if (z[j] > z[best]) best = j;
  if (best == labels[r]) atomic_inc(correct);
}
)CLC";

inline constexpr auto loss_joined = join_sources(last_group_source, loss_body_source);
inline constexpr const char* loss_source = loss_joined.data();

}  // namespace pbnn::opencl::kernels
