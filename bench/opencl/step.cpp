// Whole training steps of the Table 1 network on an OpenCL device (issue 5): per format, scheme and
// batch, milliseconds per step (pbnn::trainer::train_batches: host gather and upload, forward,
// loss, backward, Adam; the device's work only ends at the pass's final read-back; the median over
// calls of 20 steps each, so that a stall of the host now and then does not move it), seconds per
// 50 000-image epoch, and, where nvidia-smi is on the PATH, the GPU's mean power during the timed
// steps and joules per epoch. PBNN_OPENCL_PROFILE=1 adds the device time of each kernel per step.
//
//   pbnn_opencl_step --batches 8,256 --formats fp32,fixed8 --schemes prog,float [--device gpu] [--csv out.csv]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <pbnn/opencl.hpp>

#include "vgg_networks.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

// Samples `nvidia-smi --query-gpu=power.draw` every 100 ms in a thread of its own.
class power_sampler {
 public:
  explicit power_sampler(bool enabled) {
    if (!enabled) return;
    pipe_ = popen("nvidia-smi --query-gpu=power.draw --format=csv,noheader,nounits -lms 100 2>/dev/null", "r");
    if (!pipe_) return;
    reader_ = std::thread([this] {
      char line[128];
      while (!stop_ && std::fgets(line, sizeof line, pipe_)) {
        char* end = nullptr;
        const double w = std::strtod(line, &end);
        if (end == line) continue;
        const std::lock_guard<std::mutex> lock(mutex_);
        samples_.emplace_back(clock_type::now(), w);
      }
    });
  }
  ~power_sampler() {
    stop_ = true;
    if (pipe_) {
      std::system("pkill -f 'nvidia-smi --query-gpu=power.draw' >/dev/null 2>&1");
      pclose(pipe_);
    }
    if (reader_.joinable()) reader_.join();
  }
  // Mean power of the samples taken in [from, to]; negative where there are none.
  double mean_watts(clock_type::time_point from, clock_type::time_point to) {
    const std::lock_guard<std::mutex> lock(mutex_);
    double sum = 0;
    std::size_t n = 0;
    for (const auto& [t, w] : samples_)
      if (t >= from && t <= to) sum += w, ++n;
    return n ? sum / static_cast<double>(n) : -1.0;
  }

 private:
  FILE* pipe_ = nullptr;
  std::thread reader_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<std::pair<clock_type::time_point, double>> samples_;
};

struct row {
  std::string format, scheme;
  std::size_t batch = 0, steps = 0;
  double ms_per_step = 0, watts = -1;  // ms per step: the median call's
};

pbnn::dataset random_images(std::size_t count) {
  pbnn::dataset d;
  d.count = count;
  d.features = 3 * 32 * 32;
  pbnn::rng g(3);
  d.x.resize(count * d.features);
  for (auto& v : d.x) v = g.uniform(-1.0f, 1.0f);
  d.label.resize(count);
  for (auto& l : d.label) l = static_cast<std::uint8_t>(g.uniform(0.0f, 9.99f));
  return d;
}

template <class Policy, class Act>
row measure(const std::string& format, const std::string& scheme, std::size_t batch, double seconds,
            power_sampler& power) {
  using net_t = examples::table1<Policy, Act>;
  auto net = std::make_unique<net_t>();
  pbnn::train_options opt;
  opt.batch = batch;
  opt.epochs = 50;
  pbnn::trainer<net_t> t(*net, opt);
  constexpr std::size_t per_call = 20;
  const pbnn::dataset data = random_images(batch * per_call);
  t.train_batches(data, 3, 0);  // kernel builds, first-touch allocations
  auto& rt = net->runtime();
  if (rt.profiling()) rt.take_profile();
  row r{format, scheme, batch};
  const auto t0 = clock_type::now();
  auto t1 = t0;
  std::vector<double> call_ms;
  while (std::chrono::duration<double>(t1 - t0).count() < seconds || call_ms.size() < 5) {
    const auto start = t1;
    t.train_batches(data, per_call, 0);  // ends by reading the losses back: the steps are done
    r.steps += per_call;
    t1 = clock_type::now();
    call_ms.push_back(std::chrono::duration<double, std::milli>(t1 - start).count());
  }
  std::sort(call_ms.begin(), call_ms.end());
  const std::size_t mid = call_ms.size() / 2;
  const double median_call = call_ms.size() % 2 ? call_ms[mid] : 0.5 * (call_ms[mid - 1] + call_ms[mid]);
  r.ms_per_step = median_call / static_cast<double>(per_call);
  r.watts = power.mean_watts(t0, t1);
  if (rt.profiling()) {
    const auto profile = rt.take_profile();
    double total = 0;
    std::size_t launches = 0;
    for (const auto& k : profile.kernels) total += k.milliseconds, launches += k.launches;
    const auto steps = static_cast<double>(r.steps);
    fmt::print("  device time per step {:.3f} ms in {} launches, {:.3f} ms from first start to last end; by kernel:\n",
               total / steps, launches / r.steps, profile.span_milliseconds / steps);
    fmt::print("    {:<34} {:>8} {:>9} {:>13} {:>17}\n", "kernel", "ms", "launches", "idle before",
               "of it unqueued");
    for (std::size_t i = 0; i < profile.kernels.size() && i < 48; ++i) {
      const auto& k = profile.kernels[i];
      fmt::print("    {:<34} {:>8.3f} {:>9} {:>13.3f} {:>17.3f}\n", k.name, k.milliseconds / steps, k.launches / r.steps,
                 k.idle_before_milliseconds / steps, k.unqueued_milliseconds / steps);
    }
  }
  return r;
}

template <class Format>
void run_format(const std::string& name, const std::vector<std::string>& schemes, std::size_t batch, double seconds,
                power_sampler& power, std::vector<row>& out) {
  using namespace pbnn;
  using B = opencl::backend;
  for (const auto& s : schemes) {
    fmt::print("{} {} batch {}\n", name, s, batch);
    std::fflush(stdout);
    if (s == "float") out.push_back(measure<policy<Format, real, B>, relu>(name, s, batch, seconds, power));
    else if (s == "det") out.push_back(measure<policy<Format, sign, B>, relu>(name, s, batch, seconds, power));
    else if (s == "stoch") out.push_back(measure<policy<Format, stochastic, B>, relu>(name, s, batch, seconds, power));
    else if (s == "bnn") out.push_back(measure<policy<Format, sign, B>, binary_act>(name, s, batch, seconds, power));
    else if (s == "prog") out.push_back(measure<policy<Format, progressive<>, B>, binary_act>(name, s, batch, seconds, power));
    else throw std::invalid_argument("unknown scheme " + s);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::size_t> batches{8, 256};
  std::vector<std::string> formats{"fp32", "fixed16", "fixed8"}, schemes{"float", "det", "stoch", "bnn", "prog"};
  std::string device, csv;
  double seconds = 2.0;
  bool sample_power = true;
  CLI::App app{"Training steps of the Table 1 network on an OpenCL device"};
  app.add_option("--batches", batches, "batch sizes")->delimiter(',')->capture_default_str();
  app.add_option("--formats", formats, "fp32, fixed16, fixed8")->delimiter(',')->capture_default_str();
  app.add_option("--schemes", schemes, "float, det, stoch, bnn, prog")->delimiter(',')->capture_default_str();
  app.add_option("--seconds", seconds, "timed seconds per configuration")->capture_default_str();
  app.add_option("--device", device, "OpenCL device spec (default: $PBNN_OPENCL_DEVICE, else the first GPU)");
  app.add_option("--csv", csv, "write the rows to this CSV file too");
  app.add_flag("--power,!--no-power", sample_power, "sample the GPU's power with nvidia-smi (default: on)");
  CLI11_PARSE(app, argc, argv);
  try {
    pbnn::opencl::set_default_device(device);
    fmt::print("device: {}\nint8 and fp32 (3xTF32) GEMMs on tensor cores: {}\n", pbnn::opencl::default_runtime().device().label(),
               pbnn::opencl::tensor_core_gemms(pbnn::opencl::default_runtime()) ? "yes" : "no");
    power_sampler power(sample_power);
    std::vector<row> rows;
    for (const std::size_t b : batches)
      for (const auto& f : formats) {
        if (f == "fp32") run_format<pbnn::fp32>(f, schemes, b, seconds, power, rows);
        else if (f == "fixed16") run_format<pbnn::fixed<16>>(f, schemes, b, seconds, power, rows);
        else if (f == "fixed8") run_format<pbnn::fixed<8>>(f, schemes, b, seconds, power, rows);
        else throw std::invalid_argument("unknown format " + f);
      }
    fmt::print("\n| format | scheme | batch | ms per step | s per 50k epoch | mean power W | J per epoch | steps timed |\n"
               "|---|---|---|---|---|---|---|---|\n");
    std::ofstream out;
    if (!csv.empty()) {
      out.open(csv);
      out << "format,scheme,batch,ms_per_step,s_per_epoch,watts,joules_per_epoch,steps\n";
    }
    for (const auto& r : rows) {
      const double epoch = r.ms_per_step * 1e-3 * 50000.0 / static_cast<double>(r.batch);
      const std::string w = r.watts >= 0 ? fmt::format("{:.0f}", r.watts) : "-";
      const std::string j = r.watts >= 0 ? fmt::format("{:.0f}", r.watts * epoch) : "-";
      fmt::print("| {} | {} | {} | {:.3f} | {:.2f} | {} | {} | {} |\n", r.format, r.scheme, r.batch, r.ms_per_step, epoch,
                 w, j, r.steps);
      if (out)
        out << fmt::format("{},{},{},{:.4f},{:.3f},{:.1f},{:.1f},{}\n", r.format, r.scheme, r.batch, r.ms_per_step, epoch,
                           r.watts, r.watts >= 0 ? r.watts * epoch : -1.0, r.steps);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "pbnn_opencl_step: {}\n", e.what());
    return 1;
  }
}
