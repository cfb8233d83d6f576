#pragma once
// Reader for the binary version of CIFAR-10 (data_batch_1..5.bin, test_batch.bin): records of 3073
// bytes, one label byte then a 32x32 image as three row-major planes (red, green, blue). Images are
// returned channels-last (HWC), the order the augmentation and the per-channel statistics expect.
// Every format error is a pbnn::file_error naming the file and the byte offset, and nothing is
// returned half-loaded.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include <fmt/format.h>

#include "pbnn/data/idx.hpp"  // detail::read_raw_file, split
#include "pbnn/error.hpp"

namespace pbnn::data {

struct cifar10_images {
  static constexpr std::size_t height = 32, width = 32, channels = 3, classes = 10;
  static constexpr std::size_t image_size = height * width * channels;  // 3072
  static constexpr std::size_t record_size = 1 + image_size;            // 3073 bytes in the file

  std::size_t count = 0;
  // count x image_size, image after image, channels-last: pixel (h, w, c) of image i is at
  // i * image_size + (h * width + w) * channels + c.
  std::vector<std::uint8_t> pixels;
  std::vector<std::uint8_t> labels;  // count, each below classes
};

namespace detail {

// Checks one file's bytes (whole records, labels below 10), then appends its images (converted
// from the file's planar CHW to HWC) and labels to `out`. Throws before appending anything.
inline void append_cifar10_records(const std::filesystem::path& file, const std::vector<std::uint8_t>& bytes,
                                   cifar10_images& out) {
  using c10 = cifar10_images;
  if (bytes.empty())
    throw file_error(file, 0, fmt::format("empty file: expected records of {} bytes", c10::record_size));
  const std::size_t records = bytes.size() / c10::record_size, partial = bytes.size() % c10::record_size;
  if (partial)
    throw file_error(file, records * c10::record_size,
                     fmt::format("partial record: found {} bytes after {} whole records, expected {} bytes "
                                 "(1 label + 3072 pixels) per record",
                                 partial, records, c10::record_size));
  for (std::size_t r = 0; r < records; ++r) {
    const std::size_t at = r * c10::record_size;
    if (bytes[at] >= c10::classes)
      throw file_error(file, at,
                       fmt::format("label of record {}: expected a class below {}, found {}", r, c10::classes,
                                   unsigned{bytes[at]}));
  }

  constexpr std::size_t plane = c10::height * c10::width;
  const std::size_t first = out.count;
  out.pixels.resize((first + records) * c10::image_size);
  out.labels.resize(first + records);
  for (std::size_t r = 0; r < records; ++r) {
    const std::uint8_t* rec = bytes.data() + r * c10::record_size;
    std::uint8_t* img = out.pixels.data() + (first + r) * c10::image_size;
    out.labels[first + r] = rec[0];
    for (std::size_t c = 0; c < c10::channels; ++c)
      for (std::size_t p = 0; p < plane; ++p) img[p * c10::channels + c] = rec[1 + c * plane + p];
  }
  out.count = first + records;
}

}  // namespace detail

// Reads one CIFAR-10 binary file of any number of whole records.
// Throws pbnn::file_error on an unreadable or empty file, a partial record, or a label above 9.
inline cifar10_images read_cifar10(const std::filesystem::path& file) {
  cifar10_images out;
  detail::append_cifar10_records(file, detail::read_raw_file(file), out);
  return out;
}

// Reads the files in order, concatenated; the error names the file at fault.
inline cifar10_images read_cifar10_files(const std::vector<std::filesystem::path>& files) {
  cifar10_images out;
  std::size_t records = 0;  // reserve once rather than regrow per file (the full set is 150 MB)
  for (const auto& file : files) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(file, ec);
    if (!ec) records += static_cast<std::size_t>(size) / cifar10_images::record_size;
  }
  out.pixels.reserve(records * cifar10_images::image_size);
  out.labels.reserve(records);
  for (const auto& file : files) detail::append_cifar10_records(file, detail::read_raw_file(file), out);
  return out;
}

// Loads data_batch_1..5.bin (train) or test_batch.bin (test) from dir, e.g. the cifar-10-batches-bin
// directory that cifar-10-binary.tar.gz unpacks to.
inline cifar10_images load_cifar10_dir(const std::filesystem::path& dir, split which) {
  std::vector<std::filesystem::path> files;
  if (which == split::train)
    for (int i = 1; i <= 5; ++i) files.push_back(dir / fmt::format("data_batch_{}.bin", i));
  else
    files.push_back(dir / "test_batch.bin");
  for (const auto& file : files) {
    std::error_code ec;
    if (!std::filesystem::exists(file, ec))
      throw file_error(file, 0,
                       "not found; the binary version of CIFAR-10 (cifar-10-binary.tar.gz) unpacks to "
                       "cifar-10-batches-bin/ holding data_batch_1..5.bin and test_batch.bin");
  }
  return read_cifar10_files(files);
}

}  // namespace pbnn::data
