#pragma once
// A one-line progress bar for the example trainers (redrawn in place on a terminal, silent otherwise).
#include <chrono>
#include <cstdio>
#include <string>

#include <fmt/format.h>
#include <unistd.h>

namespace examples {

class progress_bar {
 public:
  progress_bar(std::string label, bool quiet)
      : label_(std::move(label)), live_(!quiet && isatty(fileno(stdout))), start_(std::chrono::steady_clock::now()) {}

  void update(std::size_t done, std::size_t total, const std::string& info) {
    if (!live_ || (done != total && done % 10 != 0)) return;
    constexpr int width = 30;
    const int filled = total ? static_cast<int>(width * done / total) : width;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    fmt::print("\r{} [{:=<{}}{:<{}}] {}/{} {:.1f}s {}", label_, "", filled, "", width - filled, done, total, s, info);
    std::fflush(stdout);
  }
  void finish(const std::string& summary) {
    fmt::print("{}{}  {}\n", live_ ? "\r\033[K" : "", label_, summary);
    std::fflush(stdout);
  }

 private:
  std::string label_;
  bool live_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace examples
