// IDX reader: round trips (raw and gzip) and every format error, on small files written here.
#include "pbnn/data/idx.hpp"

#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <zlib.h>

namespace fs = std::filesystem;
using bytes = std::vector<std::uint8_t>;
using pbnn::file_error;
using pbnn::data::labelled_images;
using pbnn::data::read_idx;

namespace {

struct temp_dir : pbnn_test::temp_dir {
  temp_dir() : pbnn_test::temp_dir("pbnn_test_idx_") {}
};

void put_be32(bytes& b, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<std::uint8_t>(v >> shift));
}

// Pixel value of byte i: distinct enough that a shifted or reordered read shows.
std::uint8_t pixel(std::size_t i) { return static_cast<std::uint8_t>(i * 7 + 3); }

bytes images_file(std::uint32_t count, std::uint32_t rows, std::uint32_t cols, std::uint32_t magic = 0x803) {
  bytes b;
  put_be32(b, magic);
  put_be32(b, count);
  put_be32(b, rows);
  put_be32(b, cols);
  for (std::size_t i = 0; i < std::size_t{count} * rows * cols; ++i) b.push_back(pixel(i));
  return b;
}

bytes labels_file(const bytes& labels, std::uint32_t magic = 0x801) {
  bytes b;
  put_be32(b, magic);
  put_be32(b, static_cast<std::uint32_t>(labels.size()));
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

void write_raw(const fs::path& p, const bytes& b) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  REQUIRE(out.good());
}

void write_gz(const fs::path& p, const bytes& b) {
  gzFile f = gzopen(p.string().c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, b.data(), static_cast<unsigned>(b.size())) == static_cast<int>(b.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

bytes read_back(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

const bytes some_labels = {3, 1, 4, 1, 5};

void check_good(const labelled_images& d) {
  CHECK(d.count == 5);
  CHECK(d.rows == 3);
  CHECK(d.cols == 2);
  CHECK(d.image_size() == 6);
  REQUIRE(d.pixels.size() == 30);
  for (std::size_t i = 0; i < d.pixels.size(); ++i) CHECK(d.pixels[i] == pixel(i));
  CHECK(d.labels == some_labels);
}

// Runs f, which must throw a file_error about `file` at `offset` whose message contains `needle`.
template <class F>
void require_file_error(F&& f, const fs::path& file, std::uint64_t offset, const std::string& needle) {
  try {
    f();
    FAIL("expected pbnn::file_error");
  } catch (const file_error& e) {
    INFO(e.what());
    CHECK(e.file() == file);
    CHECK(e.offset() == offset);
    CHECK(std::string(e.what()).find(needle) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("read_idx reads raw and gzip files back exactly", "[idx]") {
  temp_dir dir;
  const bytes img = images_file(5, 3, 2), lab = labels_file(some_labels);

  SECTION("raw") {
    write_raw(dir / "img", img);
    write_raw(dir / "lab", lab);
    check_good(read_idx(dir / "img", dir / "lab"));
  }
  SECTION("gzip") {
    write_gz(dir / "img.gz", img);
    write_gz(dir / "lab.gz", lab);
    check_good(read_idx(dir / "img.gz", dir / "lab.gz"));
  }
  SECTION("gzip is detected by content, not by name") {
    write_gz(dir / "img", img);
    write_raw(dir / "lab.gz", lab);
    check_good(read_idx(dir / "img", dir / "lab.gz"));
  }
  SECTION("concatenated gzip members") {
    const bytes head(img.begin(), img.begin() + 20), tail(img.begin() + 20, img.end());
    write_gz(dir / "a.gz", head);
    write_gz(dir / "b.gz", tail);
    bytes both = read_back(dir / "a.gz");
    const bytes b = read_back(dir / "b.gz");
    both.insert(both.end(), b.begin(), b.end());
    write_raw(dir / "img.gz", both);
    write_raw(dir / "lab", lab);
    check_good(read_idx(dir / "img.gz", dir / "lab"));
  }
  SECTION("empty data set") {
    write_raw(dir / "img", images_file(0, 28, 28));
    write_raw(dir / "lab", labels_file({}));
    const auto d = read_idx(dir / "img", dir / "lab");
    CHECK(d.count == 0);
    CHECK(d.rows == 28);
    CHECK(d.pixels.empty());
    CHECK(d.labels.empty());
  }
}

TEST_CASE("read_idx rejects bad magic numbers", "[idx]") {
  temp_dir dir;
  const fs::path img = dir / "img", lab = dir / "lab";
  SECTION("label file given as images") {
    write_raw(img, labels_file(some_labels));
    write_raw(lab, labels_file(some_labels));
    require_file_error([&] { read_idx(img, lab); }, img, 0, "expected magic 0x00000803 (images), found 0x00000801");
  }
  SECTION("image file given as labels") {
    write_raw(img, images_file(5, 3, 2));
    write_raw(lab, images_file(5, 3, 2));
    require_file_error([&] { read_idx(img, lab); }, lab, 0, "expected magic 0x00000801 (labels), found 0x00000803");
  }
  SECTION("arbitrary magic, gzipped") {
    write_gz(img, images_file(5, 3, 2, 0xdeadbeef));
    write_raw(lab, labels_file(some_labels));
    require_file_error([&] { read_idx(img, lab); }, img, 0, "found 0xdeadbeef");
  }
}

TEST_CASE("read_idx rejects truncated headers", "[idx]") {
  temp_dir dir;
  const fs::path img = dir / "img", lab = dir / "lab";
  bytes good_img = images_file(5, 3, 2), good_lab = labels_file(some_labels);
  SECTION("empty image file") {
    write_raw(img, {});
    write_raw(lab, good_lab);
    require_file_error([&] { read_idx(img, lab); }, img, 0, "truncated header");
  }
  SECTION("image header cut inside the row count") {
    write_raw(img, bytes(good_img.begin(), good_img.begin() + 10));
    write_raw(lab, good_lab);
    require_file_error([&] { read_idx(img, lab); }, img, 8, "truncated header: expected 4-byte row count");
  }
  SECTION("label header cut inside the count, gzipped") {
    write_raw(img, good_img);
    write_gz(lab, bytes(good_lab.begin(), good_lab.begin() + 6));
    require_file_error([&] { read_idx(img, lab); }, lab, 4, "truncated header: expected 4-byte label count");
  }
}

TEST_CASE("read_idx rejects truncated data", "[idx]") {
  temp_dir dir;
  const fs::path img = dir / "img", lab = dir / "lab";
  bytes good_img = images_file(5, 3, 2), good_lab = labels_file(some_labels);
  SECTION("images one byte short") {
    good_img.pop_back();
    write_raw(img, good_img);
    write_raw(lab, good_lab);
    require_file_error([&] { read_idx(img, lab); }, img, 16 + 29, "truncated data");
  }
  SECTION("labels two bytes short, gzipped: offset is in the decompressed stream") {
    good_lab.resize(good_lab.size() - 2);
    write_raw(img, good_img);
    write_gz(lab, good_lab);
    require_file_error([&] { read_idx(img, lab); }, lab, 8 + 3, "found only 3 bytes");
  }
  SECTION("gzip stream cut short") {
    write_gz(img, good_img);
    bytes gz = read_back(img);
    gz.resize(gz.size() - 12);  // lose the 8-byte trailer and some compressed data
    write_raw(img, gz);
    write_raw(lab, good_lab);
    CHECK_THROWS_AS(read_idx(img, lab), file_error);
  }
}

TEST_CASE("read_idx rejects trailing bytes", "[idx]") {
  temp_dir dir;
  const fs::path img = dir / "img", lab = dir / "lab";
  bytes good_img = images_file(5, 3, 2), good_lab = labels_file(some_labels);
  SECTION("after the images") {
    good_img.insert(good_img.end(), {0, 0, 0});
    write_raw(img, good_img);
    write_raw(lab, good_lab);
    require_file_error([&] { read_idx(img, lab); }, img, 16 + 30, "found 3 trailing bytes");
  }
  SECTION("after the labels, gzipped") {
    good_lab.push_back(1);
    write_raw(img, good_img);
    write_gz(lab, good_lab);
    require_file_error([&] { read_idx(img, lab); }, lab, 8 + 5, "found 1 trailing bytes");
  }
  SECTION("after the gzip stream") {
    write_gz(img, good_img);
    bytes gz = read_back(img);
    gz.insert(gz.end(), {'x', 'y', 'z'});
    write_raw(img, gz);
    write_raw(lab, good_lab);
    require_file_error([&] { read_idx(img, lab); }, img, good_img.size(), "found 3 more bytes");
  }
}

TEST_CASE("read_idx rejects a count mismatch between images and labels", "[idx]") {
  temp_dir dir;
  const fs::path img = dir / "img", lab = dir / "lab";
  write_raw(img, images_file(5, 3, 2));
  write_raw(lab, labels_file({1, 2, 3, 4}));
  require_file_error([&] { read_idx(img, lab); }, lab, 4, "expected 5 labels");
  require_file_error([&] { read_idx(img, lab); }, lab, 4, "found 4");
}

TEST_CASE("read_idx rejects labels out of range", "[idx]") {
  temp_dir dir;
  const fs::path img = dir / "img", lab = dir / "lab";
  write_raw(img, images_file(5, 3, 2));
  SECTION("default 10 classes") {
    write_raw(lab, labels_file({0, 9, 2, 10, 200}));
    require_file_error([&] { read_idx(img, lab); }, lab, 8 + 3, "expected a class below 10, found 10");
  }
  SECTION("fewer classes, gzipped") {
    write_gz(lab, labels_file({0, 1, 2, 1, 3}));
    CHECK_NOTHROW(read_idx(img, lab, 4));
    require_file_error([&] { read_idx(img, lab, 3); }, lab, 8 + 4, "found 3");
  }
}

TEST_CASE("read_idx reports missing and unreadable files", "[idx]") {
  temp_dir dir;
  const fs::path img = dir / "img", lab = dir / "lab";
  write_raw(img, images_file(5, 3, 2));
  write_raw(lab, labels_file(some_labels));
  require_file_error([&] { read_idx(dir / "nope", lab); }, dir / "nope", 0, "cannot open");
  require_file_error([&] { read_idx(img, dir / "nope.gz"); }, dir / "nope.gz", 0, "cannot open");
  require_file_error([&] { read_idx(dir.path, lab); }, dir.path, 0, "is a directory");
}

TEST_CASE("load_mnist_dir finds the files of a split", "[idx]") {
  using pbnn::data::load_mnist_dir;
  using pbnn::data::split;
  temp_dir dir;
  const bytes img = images_file(5, 3, 2), lab = labels_file(some_labels);

  SECTION("raw train files") {
    write_raw(dir / "train-images-idx3-ubyte", img);
    write_raw(dir / "train-labels-idx1-ubyte", lab);
    check_good(load_mnist_dir(dir.path, split::train));
    require_file_error([&] { load_mnist_dir(dir.path, split::test); }, dir / "t10k-images-idx3-ubyte", 0,
                       "/usr/share/datasets/fashion-mnist");
  }
  SECTION("gzipped test files, preferred over raw ones") {
    write_gz(dir / "t10k-images-idx3-ubyte.gz", img);
    write_gz(dir / "t10k-labels-idx1-ubyte.gz", lab);
    write_raw(dir / "t10k-images-idx3-ubyte", {});  // would fail if picked
    write_raw(dir / "t10k-labels-idx1-ubyte", {});
    check_good(load_mnist_dir(dir.path, split::test));
  }
  SECTION("labels missing") {
    write_gz(dir / "train-images-idx3-ubyte.gz", img);
    require_file_error([&] { load_mnist_dir(dir.path, split::train); }, dir / "train-labels-idx1-ubyte", 0,
                       "not found (nor train-labels-idx1-ubyte.gz)");
  }
  SECTION("num_classes is passed on") {
    write_raw(dir / "train-images-idx3-ubyte", img);
    write_raw(dir / "train-labels-idx1-ubyte", lab);
    require_file_error([&] { load_mnist_dir(dir.path, split::train, 5); }, dir / "train-labels-idx1-ubyte",
                       8 + 4, "found 5");
  }
}
