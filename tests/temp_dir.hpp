#pragma once
// A fresh directory under the system temp dir for one test, removed with everything in it on scope exit.
#include <filesystem>
#include <random>
#include <string>
#include <system_error>
#include <vector>

namespace pbnn_test {

struct temp_dir {
  std::filesystem::path path;
  explicit temp_dir(const std::string& prefix = "pbnn_test_") {
    std::random_device rd;
    for (;;) {
      path = std::filesystem::temp_directory_path() / (prefix + std::to_string(rd()) + std::to_string(rd()));
      if (std::filesystem::create_directory(path)) return;
    }
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  std::filesystem::path operator/(const std::string& name) const { return path / name; }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(path)) names.push_back(e.path().filename().string());
    return names;
  }
};

}  // namespace pbnn_test
