#pragma once
// Exceptions pbnn throws for bad input. Every one names the file and, where there is one, the byte offset.
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace pbnn {

// Malformed or inconsistent data in a file: what was expected, where (file and byte offset).
class file_error : public std::runtime_error {
 public:
  file_error(std::filesystem::path file, std::uint64_t offset, const std::string& what)
      : std::runtime_error(fmt::format("{}: at byte offset {}: {}", file.string(), offset, what)),
        file_(std::move(file)),
        offset_(offset) {}
  const std::filesystem::path& file() const noexcept { return file_; }
  std::uint64_t offset() const noexcept { return offset_; }

 private:
  std::filesystem::path file_;
  std::uint64_t offset_;
};

}  // namespace pbnn
