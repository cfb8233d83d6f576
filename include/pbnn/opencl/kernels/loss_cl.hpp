#pragma once
// OpenCL C 1.2 source of the softmax cross-entropy over a batch of logits (pbnn/loss.hpp), one
// work-item per sample, in float (the CPU sums in double; OpenCL C 1.2 does not require double).
// Build option: -DTQ=float|char|short.
namespace pbnn::opencl::kernels {

inline constexpr const char* loss_source = R"CLC(
// d[r, j] = (softmax(z_r)_j - [j == label_r]) / b; row_loss[r] = logsumexp(z_r) - z_r[label_r];
// correct counts rows whose first largest logit is the label. z = logits 2^logit_exp.
__kernel void softmax_cross_entropy(__global const TQ* logits, __global const int* logit_exp, const uint b,
                                    const uint k, __global const uchar* labels, __global float* d,
                                    __global float* row_loss, volatile __global uint* correct) {
  const uint r = get_global_id(0);
  if (r >= b) return;
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

// sums[index] = the batch's summed loss, in the order the host sums it (one work-item: b is small).
__kernel void sum_losses(__global const float* row_loss, const uint b, __global float* sums, const uint index) {
  if (get_global_id(0) != 0) return;
  float s = 0.0f;
  for (uint r = 0; r < b; ++r) s += row_loss[r];
  sums[index] = s;
}
)CLC";

}  // namespace pbnn::opencl::kernels
