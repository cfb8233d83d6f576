#pragma once
// Schedules of the progressive scale v over a run: small value types called with (epoch, epochs).
#include <algorithm>
#include <cmath>
#include <concepts>

namespace pbnn {

template <class S>
concept v_schedule = requires(const S& s, int epoch, int epochs) {
  { s(epoch, epochs) } -> std::convertible_to<float>;
};

// v[e] = begin * (end/begin)^(e/(E-1)): 1 -> 1000 over the run by default, as in the paper.
struct log_schedule {
  float begin = 1.0f, end = 1000.0f;
  float operator()(int epoch, int epochs) const {
    if (epochs <= 1) return end;
    const double t = std::clamp(static_cast<double>(epoch) / (epochs - 1), 0.0, 1.0);
    return static_cast<float>(begin * std::pow(static_cast<double>(end) / begin, t));
  }
};

struct linear_schedule {
  float begin = 1.0f, end = 1000.0f;
  float operator()(int epoch, int epochs) const {
    if (epochs <= 1) return end;
    const double t = std::clamp(static_cast<double>(epoch) / (epochs - 1), 0.0, 1.0);
    return static_cast<float>(begin + (end - begin) * t);
  }
};

// Any callable (epoch, epochs) -> v, e.g. a lambda: progressive<user_schedule<decltype(f)>>.
template <class F>
struct user_schedule {
  F f;
  float operator()(int epoch, int epochs) const { return static_cast<float>(f(epoch, epochs)); }
};

}  // namespace pbnn
