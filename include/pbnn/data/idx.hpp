#pragma once
// IDX reader for MNIST-style data sets (MNIST, Fashion-MNIST): an idx3-ubyte image file plus an
// idx1-ubyte label file, raw or gzip-compressed. Each file is read whole into memory, then parsed;
// every format error is a pbnn::file_error naming the file and the byte offset in the decompressed
// stream, and nothing is returned half-loaded.
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <zlib.h>

#include "pbnn/error.hpp"

namespace pbnn::data {

struct labelled_images {
  std::size_t count = 0, rows = 0, cols = 0;
  std::vector<std::uint8_t> pixels;  // count*rows*cols, row-major, image after image
  std::vector<std::uint8_t> labels;  // count
  std::size_t image_size() const { return rows * cols; }
};

enum class split { train, test };

namespace detail {

inline constexpr std::uint32_t idx_images_magic = 0x00000803;  // unsigned byte, 3 dimensions
inline constexpr std::uint32_t idx_labels_magic = 0x00000801;  // unsigned byte, 1 dimension

// The file's bytes as stored, unreadable files reported with offset 0 and the reason.
inline std::vector<std::uint8_t> read_raw_file(const std::filesystem::path& file) {
  std::error_code ec;
  const auto st = std::filesystem::status(file, ec);
  if (ec) throw file_error(file, 0, fmt::format("cannot open: {}", ec.message()));
  if (!std::filesystem::exists(st)) throw file_error(file, 0, "cannot open: no such file");
  if (std::filesystem::is_directory(st)) throw file_error(file, 0, "cannot open: is a directory, expected a file");

  errno = 0;
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    const int err = errno;
    throw file_error(file, 0,
                     fmt::format("cannot open: {}",
                                 err ? std::error_code(err, std::generic_category()).message() : "unknown error"));
  }
  std::vector<std::uint8_t> bytes;
  constexpr std::size_t chunk = std::size_t{1} << 20;
  for (;;) {
    const std::size_t old = bytes.size();
    bytes.resize(old + chunk);
    in.read(reinterpret_cast<char*>(bytes.data() + old), static_cast<std::streamsize>(chunk));
    bytes.resize(old + static_cast<std::size_t>(in.gcount()));
    if (in.bad()) throw file_error(file, bytes.size(), "read error");
    if (in.eof()) break;
  }
  return bytes;
}

// Decompresses a gzip file held in memory. Concatenated gzip members are allowed (RFC 1952, and what
// `cat a.gz b.gz` produces); anything else after the last member is an error. Offsets in errors are
// decompressed bytes produced so far, where the IDX parse would have got to.
inline std::vector<std::uint8_t> gunzip(const std::filesystem::path& file, const std::vector<std::uint8_t>& gz) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) throw file_error(file, 0, "zlib: inflateInit2 failed");  // 16: gzip only
  std::vector<std::uint8_t> out;
  std::vector<std::uint8_t> buf(std::size_t{1} << 18);
  std::size_t in_pos = 0;  // bytes of gz handed to zlib so far
  auto fail = [&](const std::string& what) {
    inflateEnd(&zs);
    throw file_error(file, out.size(), what);
  };
  for (;;) {
    // avail_in is a 32-bit uInt: feed inputs beyond 4 GiB in slices.
    if (zs.avail_in == 0 && in_pos < gz.size()) {
      const std::size_t n = std::min<std::size_t>(gz.size() - in_pos, std::numeric_limits<uInt>::max());
      zs.next_in = const_cast<Bytef*>(gz.data() + in_pos);  // zlib's API is not const-correct
      zs.avail_in = static_cast<uInt>(n);
      in_pos += n;
    }
    zs.next_out = buf.data();
    zs.avail_out = static_cast<uInt>(buf.size());
    const int rc = inflate(&zs, Z_NO_FLUSH);
    out.insert(out.end(), buf.data(), buf.data() + (buf.size() - zs.avail_out));
    if (rc == Z_STREAM_END) {
      const std::size_t left = zs.avail_in + (gz.size() - in_pos);
      if (left == 0) break;
      const std::size_t at = gz.size() - left;
      if (left < 2 || gz[at] != 0x1f || gz[at + 1] != 0x8b)
        fail(fmt::format("expected end of file or another gzip member after the gzip stream, found {} more bytes", left));
      inflateReset(&zs);
      continue;
    }
    if (rc == Z_BUF_ERROR && zs.avail_in == 0 && in_pos == gz.size())
      fail("truncated gzip stream: compressed data ends before the end of the stream");
    if (rc != Z_OK && rc != Z_BUF_ERROR)
      fail(fmt::format("corrupt gzip stream: {}", zs.msg ? zs.msg : "zlib error " + std::to_string(rc)));
  }
  inflateEnd(&zs);
  return out;
}

// The file's content, decompressed when it starts with the gzip magic bytes 1f 8b (names are not trusted).
inline std::vector<std::uint8_t> read_maybe_gzipped(const std::filesystem::path& file) {
  std::vector<std::uint8_t> raw = read_raw_file(file);
  if (raw.size() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b) return gunzip(file, raw);
  return raw;
}

// Big-endian u32 header field at `offset`; a file too short for it has a truncated header.
inline std::uint32_t header_u32(const std::filesystem::path& file, const std::vector<std::uint8_t>& bytes,
                                std::size_t offset, const char* field) {
  if (bytes.size() < offset + 4)
    throw file_error(file, offset,
                     fmt::format("truncated header: expected 4-byte {}, found {} bytes (file has {} bytes)", field,
                                 bytes.size() - std::min(bytes.size(), offset), bytes.size()));
  return std::uint32_t{bytes[offset]} << 24 | std::uint32_t{bytes[offset + 1]} << 16 |
         std::uint32_t{bytes[offset + 2]} << 8 | std::uint32_t{bytes[offset + 3]};
}

inline void check_magic(const std::filesystem::path& file, std::uint32_t found, std::uint32_t expected,
                        const char* kind) {
  if (found != expected)
    throw file_error(file, 0, fmt::format("expected magic 0x{:08x} ({}), found 0x{:08x}{}", expected, kind, found,
                                          found == idx_images_magic   ? " (an idx3-ubyte image file)"
                                          : found == idx_labels_magic ? " (an idx1-ubyte label file)"
                                                                      : ""));
}

// Data after a header of `header` bytes must be exactly `payload` bytes long.
inline void check_payload(const std::filesystem::path& file, const std::vector<std::uint8_t>& bytes,
                          std::size_t header, std::uint64_t payload, const std::string& promise) {
  const std::uint64_t have = bytes.size() - header;
  if (have < payload)
    throw file_error(file, bytes.size(),
                     fmt::format("truncated data: header promises {} ({} bytes), found only {} bytes", promise,
                                 payload, have));
  if (have > payload)
    throw file_error(file, header + payload,
                     fmt::format("expected end of file after {} ({} bytes), found {} trailing bytes", promise,
                                 payload, have - payload));
}

}  // namespace detail

// Reads an image file (idx3-ubyte) and its label file (idx1-ubyte), raw or gzip-compressed.
// Throws pbnn::file_error on an unreadable file, a malformed or truncated file, trailing bytes, a count
// mismatch between the two, or a label >= num_classes.
inline labelled_images read_idx(const std::filesystem::path& images, const std::filesystem::path& labels,
                                unsigned num_classes = 10) {
  using namespace detail;
  labelled_images out;

  std::vector<std::uint8_t> img = read_maybe_gzipped(images);
  check_magic(images, header_u32(images, img, 0, "magic number"), idx_images_magic, "images");
  const std::uint32_t n_img = header_u32(images, img, 4, "image count");
  const std::uint32_t rows = header_u32(images, img, 8, "row count");
  const std::uint32_t cols = header_u32(images, img, 12, "column count");
  // u32 * u32 fits u64; the third factor could overflow it, so check before multiplying.
  const std::uint64_t image_size = std::uint64_t{rows} * cols;
  if (image_size != 0 && n_img > std::numeric_limits<std::uint64_t>::max() / image_size)
    throw file_error(images, 4, fmt::format("header promises {} images of {}x{}: too large", n_img, rows, cols));
  check_payload(images, img, 16, n_img * image_size, fmt::format("{} images of {}x{}", n_img, rows, cols));

  std::vector<std::uint8_t> lab = read_maybe_gzipped(labels);
  check_magic(labels, header_u32(labels, lab, 0, "magic number"), idx_labels_magic, "labels");
  const std::uint32_t n_lab = header_u32(labels, lab, 4, "label count");
  check_payload(labels, lab, 8, n_lab, fmt::format("{} labels", n_lab));

  if (n_lab != n_img)
    throw file_error(labels, 4,
                     fmt::format("expected {} labels (the image count in {}), found {}", n_img, images.string(),
                                 n_lab));
  for (std::size_t i = 8; i < lab.size(); ++i)
    if (lab[i] >= num_classes)
      throw file_error(labels, i,
                       fmt::format("label of item {}: expected a class below {}, found {}", i - 8, num_classes,
                                   unsigned{lab[i]}));

  // Drop the headers in place rather than copying the (possibly large) payloads.
  img.erase(img.begin(), img.begin() + 16);
  lab.erase(lab.begin(), lab.begin() + 8);
  out.count = n_img;
  out.rows = rows;
  out.cols = cols;
  out.pixels = std::move(img);
  out.labels = std::move(lab);
  return out;
}

// Loads train-* or t10k-* {images-idx3,labels-idx1}-ubyte from dir, preferring the .gz of each.
inline labelled_images load_mnist_dir(const std::filesystem::path& dir, split which, unsigned num_classes = 10) {
  const std::string prefix = which == split::train ? "train" : "t10k";
  auto find = [&](const std::string& stem) {
    std::error_code ec;
    const std::filesystem::path gz = dir / (stem + ".gz");
    if (std::filesystem::exists(gz, ec)) return gz;
    const std::filesystem::path raw = dir / stem;
    if (std::filesystem::exists(raw, ec)) return raw;
    throw file_error(raw, 0,
                     fmt::format("not found (nor {}.gz); on Debian, the dataset-fashion-mnist package installs "
                                 "these files under /usr/share/datasets/fashion-mnist",
                                 stem));
  };
  const std::filesystem::path images = find(prefix + "-images-idx3-ubyte");
  const std::filesystem::path labels = find(prefix + "-labels-idx1-ubyte");
  return read_idx(images, labels, num_classes);
}

}  // namespace pbnn::data
