// CIFAR-10 support: the binary-format reader (on small files written here), per-channel
// standardization, the crop-and-flip augmentation and its hook into training.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <pbnn/pbnn.hpp>

#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace pbnn;
using bytes = std::vector<std::uint8_t>;
using data::cifar10_images;

namespace {

struct temp_dir : pbnn_test::temp_dir {
  temp_dir() : pbnn_test::temp_dir("pbnn_test_cifar10_") {}
};

constexpr std::size_t record_size = 3073, plane = 1024;

// Byte of channel c, pixel p (= h * 32 + w) of record i: differs across channels, pixels and
// records, so a reordering or a shifted read shows.
std::uint8_t file_pixel(std::size_t i, std::size_t c, std::size_t p) {
  return static_cast<std::uint8_t>(i * 31 + c * 101 + p * 7 + p / 32);
}

// Records first..first+n as in the file: label, then the red, green and blue planes.
bytes records(std::size_t n, std::size_t first = 0) {
  bytes b;
  for (std::size_t i = first; i < first + n; ++i) {
    b.push_back(static_cast<std::uint8_t>(i % 10));
    for (std::size_t c = 0; c < 3; ++c)
      for (std::size_t p = 0; p < plane; ++p) b.push_back(file_pixel(i, c, p));
  }
  return b;
}

void write_raw(const fs::path& p, const bytes& b) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  REQUIRE(out.good());
}

// Every image and label of `d` is record first + i of records().
void check_records(const cifar10_images& d, std::size_t n, std::size_t first = 0) {
  REQUIRE(d.count == n);
  REQUIRE(d.labels.size() == n);
  REQUIRE(d.pixels.size() == n * 3072);
  for (std::size_t i = 0; i < n; ++i) {
    REQUIRE(d.labels[i] == (first + i) % 10);
    for (std::size_t p = 0; p < plane; ++p)
      for (std::size_t c = 0; c < 3; ++c) REQUIRE(d.pixels[i * 3072 + p * 3 + c] == file_pixel(first + i, c, p));
  }
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
    CHECK(std::string(e.what()).find(file.string()) != std::string::npos);
    CHECK(std::string(e.what()).find(needle) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("read_cifar10 returns the labels and the pixels channels-last", "[cifar10]") {
  temp_dir dir;
  // Planes of constant 10, 20, 30, except red at (h 2, w 5) = 200 in the second record.
  bytes b = records(2);
  for (std::size_t c = 0; c < 3; ++c)
    std::fill_n(b.begin() + static_cast<std::ptrdiff_t>(record_size + 1 + c * plane), plane,
                static_cast<std::uint8_t>(10 * (c + 1)));
  b[record_size + 1 + 0 * plane + 2 * 32 + 5] = 200;
  write_raw(dir / "two.bin", b);
  const cifar10_images d = data::read_cifar10(dir / "two.bin");
  REQUIRE(d.count == 2);
  CHECK(d.labels == bytes{0, 1});
  const std::size_t px = 3072 + (2 * 32 + 5) * 3;  // image 1, pixel (2, 5)
  CHECK(d.pixels[px + 0] == 200);
  CHECK(d.pixels[px + 1] == 20);
  CHECK(d.pixels[px + 2] == 30);
  CHECK(d.pixels[px + 3] == 10);  // (2, 6): an unmarked red
  // Image 0, pixel (31, 31), blue: the last byte of the first record.
  CHECK(d.pixels[3071] == file_pixel(0, 2, 1023));
  CHECK(d.pixels[3071] == b[record_size - 1]);

  write_raw(dir / "three.bin", records(3));
  check_records(data::read_cifar10(dir / "three.bin"), 3);
}

TEST_CASE("read_cifar10 accepts any number of whole records, and concatenates files", "[cifar10]") {
  temp_dir dir;
  write_raw(dir / "a.bin", records(7));
  write_raw(dir / "b.bin", records(4, 7));
  check_records(data::read_cifar10(dir / "a.bin"), 7);
  check_records(data::read_cifar10_files({dir / "a.bin", dir / "b.bin"}), 11);
}

TEST_CASE("load_cifar10_dir reads the five training batches or the test batch", "[cifar10]") {
  temp_dir dir;
  for (std::size_t i = 1; i <= 5; ++i)
    write_raw(dir / ("data_batch_" + std::to_string(i) + ".bin"), records(2, 2 * (i - 1)));
  write_raw(dir / "test_batch.bin", records(3));
  check_records(data::load_cifar10_dir(dir.path, data::split::train), 10);
  check_records(data::load_cifar10_dir(dir.path, data::split::test), 3);
  fs::remove(dir / "data_batch_4.bin");
  require_file_error([&] { data::load_cifar10_dir(dir.path, data::split::train); }, dir / "data_batch_4.bin", 0,
                     "not found");
}

TEST_CASE("read_cifar10 rejects malformed files, naming the file and the offset", "[cifar10]") {
  temp_dir dir;
  SECTION("a partial record: offset of its start") {
    bytes b = records(2);
    b.resize(b.size() + 100);
    write_raw(dir / "partial.bin", b);
    require_file_error([&] { data::read_cifar10(dir / "partial.bin"); }, dir / "partial.bin", 2 * record_size,
                       "partial record: found 100 bytes after 2 whole records, expected 3073 bytes");
  }
  SECTION("a file shorter than one record") {
    write_raw(dir / "short.bin", bytes(3072, 1));
    require_file_error([&] { data::read_cifar10(dir / "short.bin"); }, dir / "short.bin", 0, "found 3072 bytes");
  }
  SECTION("a label of 10: offset of the label byte") {
    bytes b = records(4);
    b[2 * record_size] = 10;
    write_raw(dir / "label.bin", b);
    require_file_error([&] { data::read_cifar10(dir / "label.bin"); }, dir / "label.bin", 2 * record_size,
                       "label of record 2: expected a class below 10, found 10");
  }
  SECTION("an empty file") {
    write_raw(dir / "empty.bin", {});
    require_file_error([&] { data::read_cifar10(dir / "empty.bin"); }, dir / "empty.bin", 0, "empty file");
  }
  SECTION("a missing file") {
    require_file_error([&] { data::read_cifar10(dir / "missing.bin"); }, dir / "missing.bin", 0, "cannot open");
  }
  SECTION("in a list, the file at fault") {
    write_raw(dir / "good.bin", records(2));
    bytes b = records(1);
    b.pop_back();
    write_raw(dir / "bad.bin", b);
    require_file_error([&] { data::read_cifar10_files({dir / "good.bin", dir / "bad.bin"}); }, dir / "bad.bin", 0,
                       "partial record: found 3072 bytes");
  }
}

TEST_CASE("to_dataset scales CIFAR-10 pixels to [0, 1] keeping the HWC order", "[cifar10]") {
  cifar10_images img;
  img.count = 1;
  img.labels = {7};
  img.pixels.resize(3072);
  for (std::size_t j = 0; j < 3072; ++j) img.pixels[j] = static_cast<std::uint8_t>(j);
  const dataset d = to_dataset(img);
  CHECK(d.count == 1);
  CHECK(d.features == 3072);
  CHECK(d.classes == 10);
  CHECK(d.label == bytes{7});
  CHECK(d.x[0] == 0.0f);
  CHECK(d.x[255] == 1.0f);
  CHECK(d.x[300] == Approx((300 % 256) / 255.0f));
}

TEST_CASE("per-channel moments are taken on the training set and standardize any set", "[cifar10]") {
  // Two samples of two pixels of three channels: channel 0 = {1, 3, 5, 7} (mean 4, sd sqrt 5),
  // channel 1 constant 2 (sd 0: kept at 1 so nothing divides by zero), channel 2 = {0, 0, 0, 4}.
  dataset tr;
  tr.count = 2;
  tr.features = 6;
  tr.x = {1, 2, 0, 3, 2, 0, 5, 2, 0, 7, 2, 4};
  tr.label = {0, 1};
  const channel_moments m = per_channel_moments(tr, 3);
  REQUIRE(m.channels() == 3);
  CHECK(m.mean[0] == Approx(4));
  CHECK(m.stddev[0] == Approx(std::sqrt(5.0)));
  CHECK(m.mean[1] == Approx(2));
  CHECK(m.stddev[1] == 1.0f);
  CHECK(m.mean[2] == Approx(1));
  CHECK(m.stddev[2] == Approx(std::sqrt(3.0)));

  dataset te = tr;
  te.x = {4, 3, 1, 4, 3, 1, 4, 3, 1, 4, 3, 1};  // other data: the training set's transform
  standardize(tr, m);
  standardize(te, m);
  CHECK(tr.x[0] == Approx(-3 / std::sqrt(5.0)));
  CHECK(tr.x[10] == Approx(0).margin(1e-6));
  CHECK(tr.x[11] == Approx(3 / std::sqrt(3.0)));
  const channel_moments after = per_channel_moments(tr, 3);
  CHECK(after.mean[0] == Approx(0).margin(1e-6));
  CHECK(after.stddev[0] == Approx(1));
  CHECK(after.stddev[2] == Approx(1));
  CHECK(te.x[0] == Approx(0).margin(1e-6));
  CHECK(te.x[1] == Approx(1));
  CHECK(te.x[2] == Approx(0).margin(1e-6));

  CHECK_THROWS_AS(per_channel_moments(tr, 4), std::invalid_argument);  // 6 values are not pixels of 4
  CHECK_THROWS_AS(standardize(tr, channel_moments{{0, 0, 0, 0}, {1, 1, 1, 1}}), std::invalid_argument);
}

namespace {

// An H x W x C image whose values are all distinct and nonzero, so zero fill and moves show.
std::vector<float> numbered_image(std::size_t h, std::size_t w, std::size_t c) {
  std::vector<float> img(h * w * c);
  for (std::size_t j = 0; j < img.size(); ++j) img[j] = static_cast<float>(j + 1);
  return img;
}

}  // namespace

TEST_CASE("crop_flip: a flip mirrors each row exactly, channels kept together", "[augment]") {
  const crop_flip aug{5, 4, 3};
  const auto in = numbered_image(5, 4, 3);
  std::vector<float> out(in.size());
  aug.apply(in.data(), out.data(), 0, 0, true);
  for (std::size_t h = 0; h < 5; ++h)
    for (std::size_t w = 0; w < 4; ++w)
      for (std::size_t c = 0; c < 3; ++c) REQUIRE(out[(h * 4 + w) * 3 + c] == in[(h * 4 + (3 - w)) * 3 + c]);
  aug.apply(in.data(), out.data(), 0, 0, false);
  CHECK(out == in);
}

TEST_CASE("crop_flip: a shift moves pixels and fills with zeros", "[augment]") {
  const crop_flip aug{5, 6, 3};
  const auto in = numbered_image(5, 6, 3);
  std::vector<float> out(in.size());
  aug.apply(in.data(), out.data(), 2, -1, false);  // 2 right, 1 up
  for (std::size_t h = 0; h < 5; ++h)
    for (std::size_t w = 0; w < 6; ++w)
      for (std::size_t c = 0; c < 3; ++c) {
        const float expected = h == 4 || w < 2 ? 0.0f : in[((h + 1) * 6 + (w - 2)) * 3 + c];
        REQUIRE(out[(h * 6 + w) * 3 + c] == expected);
      }
  aug.apply(in.data(), out.data(), 6, 0, false);  // shifted wholly out
  CHECK(out == std::vector<float>(in.size(), 0.0f));
}

TEST_CASE("crop_flip: the same seed gives the same images", "[augment]") {
  const crop_flip aug{8, 8, 3};
  std::vector<float> batch;
  for (int i = 0; i < 16; ++i) {
    const auto img = numbered_image(8, 8, 3);
    batch.insert(batch.end(), img.begin(), img.end());
  }
  auto a = batch, b = batch, c = batch;
  rng ga(7), gb(7), gc(8);
  aug(a.data(), 16, ga);
  aug(b.data(), 16, gb);
  aug(c.data(), 16, gc);
  CHECK(a == b);
  CHECK(a != c);
  CHECK(a != batch);
}

// Each draw is read back from the image: the centre pixel's source gives the shift, its right
// neighbour's the direction.
TEST_CASE("crop_flip: every shift in [-4, 4] and both flips occur, nothing else", "[augment]") {
  constexpr std::size_t side = 12, centre = 6;
  const crop_flip aug{side, side, 1};
  const auto in = numbered_image(side, side, 1);
  std::set<std::tuple<int, int, bool>> seen;
  std::set<int> dxs, dys;
  int flips = 0;
  constexpr int draws = 4000;
  rng g(11);
  for (int i = 0; i < draws; ++i) {
    auto img = in;
    aug(img.data(), 1, g);
    const auto src = static_cast<int>(img[centre * side + centre]) - 1;
    const auto right = static_cast<int>(img[centre * side + centre + 1]) - 1;
    const bool mirrored = right == src - 1;
    REQUIRE((mirrored || right == src + 1));
    const int dy = static_cast<int>(centre) - src / static_cast<int>(side);
    const int column = static_cast<int>(mirrored ? side - 1 - centre : centre);
    const int dx = column - src % static_cast<int>(side);
    REQUIRE(std::abs(dx) <= 4);
    REQUIRE(std::abs(dy) <= 4);
    // The whole image agrees with that draw.
    std::vector<float> expected(in.size());
    aug.apply(in.data(), expected.data(), dx, dy, mirrored);
    REQUIRE(img == expected);
    seen.emplace(dx, dy, mirrored);
    flips += mirrored;
  }
  CHECK(seen.size() == 9 * 9 * 2);
  CHECK(flips == Approx(draws / 2).margin(draws / 20));

  const crop_flip identity{side, side, 1, 0, false};  // pad 0, no flip
  auto same = in;
  identity(same.data(), 1, g);
  CHECK(same == in);
}

TEST_CASE("gather_batch edits the real values before quantizing them", "[augment]") {
  dataset d;
  d.count = 3;
  d.features = 4;
  d.x = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f, 1.0f, 0.25f, 0.5f};
  d.label = {0, 1, 2};
  const std::size_t idx[] = {2, 0};
  std::vector<std::uint8_t> labels;
  std::vector<float> scratch;
  std::vector<float> seen;
  const batch_transform negate_first = [&](float* rows, std::size_t n) {
    seen.assign(rows, rows + n * 4);
    for (std::size_t r = 0; r < n; ++r) rows[r * 4] = -rows[r * 4];
  };
  batch_tensor<fixed<8>> q;
  gather_batch(d, idx, 2, q, labels, scratch, negate_first);
  CHECK(seen == std::vector<float>{0.9f, 1.0f, 0.25f, 0.5f, 0.1f, 0.2f, 0.3f, 0.4f});
  CHECK(q.value(0) == Approx(-0.9f).margin(1.0f / 64));  // quantized after the edit
  CHECK(q.value(4) == Approx(-0.1f).margin(1.0f / 64));
  batch_tensor<fp32> f;
  gather_batch(d, idx, 2, f, labels, scratch, negate_first);
  CHECK(f.value(0) == -0.9f);
  CHECK(f.value(5) == 0.2f);
}

namespace {

using aug_net = sequential<policy<fixed<8>, progressive<>>, input<48>, dense<16>, batch_norm<>, binary_act,
                           dense<10, real, true>>;

// 4 x 4 x 3 images with uniform values; the first value of sample i encodes i.
dataset small_images(std::size_t n) {
  rng g(5);
  dataset d;
  d.count = n;
  d.features = 48;
  d.x.resize(n * 48);
  d.label.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    d.label[i] = static_cast<std::uint8_t>(i % 10);
    for (std::size_t j = 0; j < 48; ++j) d.x[i * 48 + j] = g.uniform();
    d.x[i * 48] = static_cast<float>(i) / 1024.0f;
  }
  return d;
}

std::vector<double> parameter_values(aug_net& net) {
  std::vector<double> out;
  net.for_each_parameter([&](auto& p) {
    for (std::size_t i = 0; i < p.size(); ++i) out.push_back(p.real(i));
  });
  return out;
}

}  // namespace

// Evaluation and calibration are not augmented: only the 10 training batches reach the callback,
// each with the training samples' real values.
TEST_CASE("the trainer augments training minibatches only", "[augment][training]") {
  const dataset tr = small_images(200);
  auto net = std::make_unique<aug_net>();
  train_options o;
  o.epochs = 1;
  o.batch = 20;
  int calls = 0;
  o.augment = [&](float* samples, std::size_t n, rng&) {
    ++calls;
    REQUIRE(n == 20);
    for (std::size_t r = 0; r < n; ++r) {
      const auto i = static_cast<std::size_t>(samples[r * 48] * 1024.0f);
      REQUIRE(i < tr.count);
      REQUIRE(std::equal(samples + r * 48, samples + (r + 1) * 48, tr.x.data() + i * 48));
    }
  };
  trainer<aug_net> t(*net, o);
  t.run_epoch(tr, &tr, 0);
  CHECK(calls == 10);
}

// The augmentation draws from the trainer's generator: a run is reproducible from its seed, and
// the augmentation does change what is learnt.
TEST_CASE("training with crop_flip is reproducible from its seed", "[augment][training]") {
  const dataset tr = small_images(200);
  auto run = [&](bool augment) {
    auto net = std::make_unique<aug_net>();
    train_options o;
    o.epochs = 2;
    o.batch = 20;
    o.seed = 3;
    if (augment) o.augment = crop_flip{4, 4, 3, 1};
    trainer<aug_net> t(*net, o);
    for (int e = 0; e < o.epochs; ++e) t.run_epoch(tr, nullptr, e);
    return parameter_values(*net);
  };
  const auto a = run(true), b = run(true), plain = run(false);
  CHECK(a == b);
  CHECK(a != plain);
}
