#pragma once
// Checkpoints of a training run: stopped after an epoch and resumed, a run ends with exactly (bit for
// bit) the weights of an uninterrupted one. A checkpoint holds what later epochs depend on: every
// parameter as stored (raw fp32 / int8 / int16 values and their exponent), every layer's non-learned
// state (for_each_state: batch-norm running statistics), the optimizer's step count and per-parameter
// buffers (Adam's m and v, SGD's velocity), the trainer's generator and the completed epochs.
// trainer::save_checkpoint and trainer::load_checkpoint (train.hpp) are the usual entry points.
//
// File layout; integers little-endian, f32 IEEE binary32, str = u32 byte count + UTF-8 bytes:
//   header   "PBNNCKPT" | u32 version (1) | u64 payload bytes | u64 FNV-1a 64 of the payload
//   payload  str network (Net::describe()) | str number format | str scheme | str optimizer
//            | u64 seed | u64 batch | u32 completed epochs | 4 x u64 generator state | i64 optimizer steps
//            | u32 P; P x (str name | u8 role | u8 element: 1 f32, 2 i8, 3 i16 | u32 rank | rank x u64 dims
//                         | i32 exponent | the values, as stored)
//            | u32 optimizer states (0 before the first step, else P); each: u32 B; B x (str name | u64 n | n x f32)
//            | u32 layer states; each: u32 layer index | str name | u64 n | n x f32
// Writing is atomic: a temporary file next to the target, flushed to disk, then renamed over it, so
// the path holds the previous checkpoint or the new one, never a part. Reading checks everything
// (size, checksum, the identity of network, format, scheme and optimizer, every tensor's shape) into
// temporaries before anything changes; a refusal is a pbnn::file_error naming the file, the byte
// offset and what was expected.
#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#if __has_include(<unistd.h>)
#include <unistd.h>  // fsync
#endif

#include <fmt/format.h>

#include "pbnn/error.hpp"
#include "pbnn/format.hpp"
#include "pbnn/optim.hpp"
#include "pbnn/parameter.hpp"
#include "pbnn/random.hpp"
#include "pbnn/tensor.hpp"

namespace pbnn {

inline constexpr std::uint32_t checkpoint_version = 1;

// The run a checkpoint belongs to and how far it got.
struct checkpoint_run {
  std::uint64_t seed = 0;
  std::uint64_t batch = 0;
  int epochs_done = 0;           // the epoch to continue with
  rng::state_type generator{};  // the trainer's generator after those epochs
};

namespace detail::ckpt {

inline constexpr char magic[8] = {'P', 'B', 'N', 'N', 'C', 'K', 'P', 'T'};
inline constexpr std::size_t header_size = 8 + 4 + 8 + 8;
inline constexpr std::size_t checksum_offset = 8 + 4 + 8;

inline std::uint64_t fnv1a64(std::span<const std::byte> data) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const std::byte b : data) {
    h ^= std::to_integer<std::uint64_t>(b);
    h *= 0x100000001b3ULL;
  }
  return h;
}

template <std::size_t Bytes>
using uint_bytes = std::conditional_t<
    Bytes == 1, std::uint8_t,
    std::conditional_t<Bytes == 2, std::uint16_t, std::conditional_t<Bytes == 4, std::uint32_t, std::uint64_t>>>;

template <class T>
constexpr std::uint8_t element_code() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, std::int8_t> || std::is_same_v<T, std::int16_t>,
                "pbnn checkpoints hold parameters stored as float, int8 or int16");
  if constexpr (std::is_same_v<T, float>) return 1;
  else if constexpr (std::is_same_v<T, std::int8_t>) return 2;
  else return 3;
}
inline std::string element_name(std::uint8_t code) {
  switch (code) {
    case 1: return "f32";
    case 2: return "int8";
    case 3: return "int16";
    default: return fmt::format("unknown element code {}", code);
  }
}

template <class Dims>
std::string shape_str(const Dims& dims) {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

class writer {
 public:
  template <class T>
  void put(T x) {
    static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>);
    const auto u = std::bit_cast<uint_bytes<sizeof(T)>>(x);
    for (std::size_t b = 0; b < sizeof(T); ++b) bytes_.push_back(static_cast<std::byte>((u >> (8 * b)) & 0xFFu));
  }
  template <class T>
  void put_array(const T* data, std::size_t n) {
    if constexpr (std::endian::native == std::endian::little) {
      const auto* b = reinterpret_cast<const std::byte*>(data);
      bytes_.insert(bytes_.end(), b, b + n * sizeof(T));
    } else {
      for (std::size_t i = 0; i < n; ++i) put(data[i]);
    }
  }
  void put_string(std::string_view s) {
    put(static_cast<std::uint32_t>(s.size()));
    const auto* b = reinterpret_cast<const std::byte*>(s.data());
    bytes_.insert(bytes_.end(), b, b + s.size());
  }
  std::vector<std::byte>& bytes() noexcept { return bytes_; }

 private:
  std::vector<std::byte> bytes_;
};

// Bounds-checked little-endian reads from a whole file in memory; every failure is a file_error at
// the offset of the field.
class reader {
 public:
  reader(std::filesystem::path file, std::span<const std::byte> bytes) : file_(std::move(file)), bytes_(bytes) {}

  std::uint64_t offset() const noexcept { return pos_; }
  std::size_t left() const noexcept { return bytes_.size() - pos_; }
  [[noreturn]] void fail(std::uint64_t at, const std::string& what) const { throw file_error(file_, at, what); }

  template <class T>
  T get(std::string_view what) {
    need(sizeof(T), 1, what);
    uint_bytes<sizeof(T)> u = 0;
    for (std::size_t b = 0; b < sizeof(T); ++b)
      u = static_cast<uint_bytes<sizeof(T)>>(u | std::to_integer<uint_bytes<sizeof(T)>>(bytes_[pos_ + b]) << (8 * b));
    pos_ += sizeof(T);
    return std::bit_cast<T>(u);
  }
  template <class T>
  void get_array(T* out, std::size_t n, std::string_view what) {
    need(sizeof(T), n, what);
    if constexpr (std::endian::native == std::endian::little) {
      if (n) std::memcpy(out, bytes_.data() + pos_, n * sizeof(T));
      pos_ += n * sizeof(T);
    } else {
      for (std::size_t i = 0; i < n; ++i) out[i] = get<T>(what);
    }
  }
  std::string get_string(std::string_view what) {
    const auto n = get<std::uint32_t>(what);
    need(1, n, what);
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  // A string that must equal `expected`; the message says what a mismatch means.
  void expect_string(std::string_view what, std::string_view expected, std::string_view meaning) {
    const auto at = offset();
    const std::string found = get_string(what);
    if (found != expected) fail(at, fmt::format("{} is \"{}\", expected \"{}\" ({})", what, found, expected, meaning));
  }
  template <class T>
  void expect(std::string_view what, T expected) {
    const auto at = offset();
    const T found = get<T>(what);
    if (found != expected) fail(at, fmt::format("{}: expected {}, found {}", what, expected, found));
  }

 private:
  void need(std::size_t size, std::uint64_t count, std::string_view what) const {
    if (count > left() / size)
      fail(pos_, fmt::format("expected {} ({} bytes), but the file ends after {} more bytes", what,
                             static_cast<std::uint64_t>(size) * count, left()));
  }

  std::filesystem::path file_;
  std::span<const std::byte> bytes_;
  std::size_t pos_ = 0;
};

inline std::vector<std::byte> read_whole_file(const std::filesystem::path& file) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto status = fs::status(file, ec);
  if (!fs::exists(status)) throw file_error(file, 0, "cannot open checkpoint: no such file");
  if (fs::is_directory(status)) throw file_error(file, 0, "cannot open checkpoint: is a directory, expected a file");
  errno = 0;
  std::ifstream in(file, std::ios::binary);
  const auto size = fs::file_size(file, ec);
  if (!in || ec) {
    const int err = errno;
    throw file_error(file, 0, fmt::format("cannot open checkpoint: {}",
                                          ec ? ec.message() : std::error_code(err, std::generic_category()).message()));
  }
  std::vector<std::byte> bytes(size);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  if (static_cast<std::uint64_t>(in.gcount()) != size)
    throw file_error(file, static_cast<std::uint64_t>(in.gcount()),
                     fmt::format("read error: expected {} bytes, as its size says", size));
  return bytes;
}

// Checks magic, version, size and checksum of the file's `bytes`; leaves the reader at the start of
// the payload.
inline void check_header(reader& r, std::span<const std::byte> bytes) {
  const std::uint64_t file_size = bytes.size();
  const std::string not_checkpoint =
      fmt::format("not a pbnn checkpoint: expected the magic \"{}\" at the start", std::string_view(magic, 8));
  for (std::size_t i = 0; i < std::min<std::uint64_t>(sizeof magic, file_size); ++i)
    if (r.get<std::uint8_t>("the magic") != static_cast<std::uint8_t>(magic[i])) r.fail(0, not_checkpoint);
  if (file_size < header_size)  // a prefix of a checkpoint
    r.fail(file_size,
           fmt::format("truncated: expected a {}-byte header, the file has {} bytes", header_size, file_size));
  const auto version_at = r.offset();
  const auto version = r.get<std::uint32_t>("the version");
  if (version != checkpoint_version)
    r.fail(version_at, fmt::format("unsupported checkpoint version {}, expected {}", version, checkpoint_version));
  const auto payload = r.get<std::uint64_t>("the payload size");
  const auto stored_checksum = r.get<std::uint64_t>("the checksum");
  if (r.left() < payload)
    r.fail(file_size, fmt::format("truncated: the header announces {} payload bytes, so {} bytes in all, but the file "
                                  "has {}", payload, header_size + payload, file_size));
  if (r.left() > payload)
    r.fail(header_size + payload, fmt::format("expected the end of the checkpoint ({} payload bytes), found {} more "
                                              "bytes", payload, r.left() - payload));
  const std::uint64_t computed = fnv1a64(bytes.subspan(header_size));
  if (stored_checksum != computed)
    r.fail(checksum_offset, fmt::format("checksum mismatch: expected the payload's FNV-1a 64 to be {:#018x} as stored, "
                                        "computed {:#018x}: the file is corrupted", stored_checksum, computed));
}

// header + payload to a temporary file in file's directory, flushed to disk, then renamed over file:
// a crash at any point leaves file as it was or complete.
inline void write_atomically(const std::filesystem::path& file, std::span<const std::byte> header,
                             std::span<const std::byte> payload) {
  std::filesystem::path tmp = file;
  tmp += ".tmp";
  bool created = false;  // only a temporary file of ours is removed
  auto fail = [&](const std::string& what, int err) {
    std::error_code ignored;
    if (created) std::filesystem::remove(tmp, ignored);
    throw std::runtime_error(fmt::format("{}: cannot write checkpoint: {}: {}", file.string(), what,
                                         err ? std::error_code(err, std::generic_category()).message()
                                             : std::string("unknown error")));
  };
  errno = 0;
  std::FILE* f = std::fopen(tmp.string().c_str(), "wb");
  if (!f) fail(fmt::format("cannot create temporary file {}", tmp.string()), errno);
  created = true;
  bool ok = std::fwrite(header.data(), 1, header.size(), f) == header.size() &&
            std::fwrite(payload.data(), 1, payload.size(), f) == payload.size() && std::fflush(f) == 0;
#if __has_include(<unistd.h>)
  ok = ok && ::fsync(::fileno(f)) == 0;  // the data is on disk before the rename can be
#endif
  int err = errno;
  if (std::fclose(f) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (!ok) fail(fmt::format("error writing temporary file {}", tmp.string()), err);
  std::error_code ec;
  std::filesystem::rename(tmp, file, ec);
  if (ec) fail(fmt::format("cannot rename {} over it", tmp.string()), ec.value());
}

}  // namespace detail::ckpt

// A checkpoint of a Net trained with Optimizer. read() validates a file completely into this object
// without touching the network; commit() then swaps it into the network, optimizer and generator.
template <class Net, class Optimizer>
class checkpoint {
 public:
  using format = typename Net::format;
  using value_type = storage_t<format>;

  static void write(const std::filesystem::path& file, Net& net, const optimizer_states<Optimizer>& optimizer,
                    const checkpoint_run& run) {
    if (run.epochs_done < 0) throw std::invalid_argument("pbnn::checkpoint::write: negative epochs_done");
    detail::ckpt::writer w;
    w.put_string(Net::describe());
    w.put_string(format_traits<format>::name);
    w.put_string(Net::scheme::name);
    w.put_string(Optimizer::name);
    w.put(run.seed);
    w.put(run.batch);
    w.put(static_cast<std::uint32_t>(run.epochs_done));
    for (const std::uint64_t s : run.generator) w.put(s);
    w.put(static_cast<std::int64_t>(optimizer.steps()));

    w.put(static_cast<std::uint32_t>(parameter_count(net)));
    net.for_each_parameter([&](auto& p) {
      w.put_string(p.name);
      w.put(static_cast<std::uint8_t>(p.role));
      w.put(detail::ckpt::element_code<value_type>());
      w.put(static_cast<std::uint32_t>(p.dims.size()));
      for (const std::size_t d : p.dims) w.put(static_cast<std::uint64_t>(d));
      w.put(static_cast<std::int32_t>(p.exp));
      w.put_array(p.value.data(), p.size());
    });

    w.put(static_cast<std::uint32_t>(optimizer.states().size()));
    for (const auto& s : optimizer.states()) {
      w.put(buffer_count(s));
      s.for_each_buffer([&](std::string_view name, const auto& buffer) {
        w.put_string(name);
        w.put(static_cast<std::uint64_t>(buffer.size()));
        w.put_array(buffer.data(), buffer.size());
      });
    }

    w.put(static_cast<std::uint32_t>(layer_state_count(net)));
    net.for_each_layer([&](auto& layer, std::size_t index) {
      layer.for_each_state([&](std::string_view name, const std::vector<float>& values) {
        w.put(static_cast<std::uint32_t>(index));
        w.put_string(name);
        w.put(static_cast<std::uint64_t>(values.size()));
        w.put_array(values.data(), values.size());
      });
    });

    const std::vector<std::byte>& payload = w.bytes();
    detail::ckpt::writer header;
    for (const char c : detail::ckpt::magic) header.put(static_cast<std::uint8_t>(c));
    header.put(checkpoint_version);
    header.put(static_cast<std::uint64_t>(payload.size()));
    header.put(detail::ckpt::fnv1a64(payload));
    detail::ckpt::write_atomically(file, header.bytes(), payload);
  }

  // Reads and validates `file` against `net`, which is only compared with, never changed.
  static checkpoint read(const std::filesystem::path& file, Net& net) {
    const std::vector<std::byte> bytes = detail::ckpt::read_whole_file(file);
    detail::ckpt::reader r(file, bytes);
    detail::ckpt::check_header(r, bytes);

    r.expect_string("network", Net::describe(), "a checkpoint of another network");
    r.expect_string("number format", format_traits<format>::name, "a checkpoint of another number format");
    r.expect_string("scheme", Net::scheme::name, "a checkpoint of another binarization scheme");
    r.expect_string("optimizer", Optimizer::name, "a checkpoint of a run with another optimizer");

    checkpoint c;
    c.run_.seed = r.get<std::uint64_t>("the seed");
    c.run_.batch = r.get<std::uint64_t>("the batch size");
    const auto epochs_at = r.offset();
    const auto epochs = r.get<std::uint32_t>("the completed epochs");
    if (epochs > static_cast<std::uint32_t>(INT_MAX))
      r.fail(epochs_at, fmt::format("expected a number of completed epochs up to {}, found {}", INT_MAX, epochs));
    c.run_.epochs_done = static_cast<int>(epochs);
    const auto generator_at = r.offset();
    for (auto& s : c.run_.generator) s = r.get<std::uint64_t>("the generator state");
    if (c.run_.generator == rng::state_type{})
      r.fail(generator_at, "expected a generator state, found all zeros (invalid for xoshiro256**)");
    const auto steps_at = r.offset();
    const auto steps = r.get<std::int64_t>("the optimizer's step count");
    if (steps < 0) r.fail(steps_at, fmt::format("expected a non-negative optimizer step count, found {}", steps));
    c.steps_ = static_cast<long>(steps);

    const std::size_t params = parameter_count(net);
    r.expect<std::uint32_t>("number of parameter tensors", static_cast<std::uint32_t>(params));
    std::vector<std::size_t> sizes;
    net.for_each_parameter([&](auto& p) {
      const std::size_t i = sizes.size();
      const std::string label = fmt::format("parameter tensor {} (\"{}\")", i, p.name);
      r.expect_string(fmt::format("the name of parameter tensor {}", i), p.name, "a checkpoint of another network");
      r.expect<std::uint8_t>(label + ": role", static_cast<std::uint8_t>(p.role));
      const auto element_at = r.offset();
      const auto element = r.get<std::uint8_t>(label + ": element type");
      if (element != detail::ckpt::element_code<value_type>())
        r.fail(element_at, fmt::format("{}: expected {} values, found {}", label,
                                       detail::ckpt::element_name(detail::ckpt::element_code<value_type>()),
                                       detail::ckpt::element_name(element)));
      const auto shape_at = r.offset();
      const auto rank = r.get<std::uint32_t>(label + ": rank");
      if (rank != p.dims.size())
        r.fail(shape_at, fmt::format("{}: expected shape {} (rank {}), found rank {}", label,
                                     detail::ckpt::shape_str(p.dims), p.dims.size(), rank));
      std::vector<std::uint64_t> dims(rank);
      for (auto& d : dims) d = r.get<std::uint64_t>(label + ": dimension");
      if (!std::equal(dims.begin(), dims.end(), p.dims.begin(), p.dims.end()))
        r.fail(shape_at, fmt::format("{}: expected shape {}, found {}", label, detail::ckpt::shape_str(p.dims),
                                     detail::ckpt::shape_str(dims)));
      c.exponents_.push_back(r.get<std::int32_t>(label + ": exponent"));
      c.values_.emplace_back(p.size());
      r.get_array(c.values_.back().data(), p.size(), label + ": values");
      sizes.push_back(p.size());
    });

    const std::size_t states = c.steps_ > 0 ? params : 0;  // created by the first step
    const auto states_at = r.offset();
    const auto stored_states = r.get<std::uint32_t>("number of optimizer states");
    if (stored_states != states)
      r.fail(states_at, fmt::format("expected {} optimizer states after {} steps, found {}", states, c.steps_,
                                    stored_states));
    for (std::size_t i = 0; i < states; ++i) {
      typename Optimizer::state s;
      r.expect<std::uint32_t>(fmt::format("optimizer state {}: number of buffers", i), buffer_count(s));
      s.for_each_buffer([&](std::string_view name, auto& buffer) {
        const std::string label = fmt::format("optimizer state {}, buffer \"{}\"", i, name);
        r.expect_string(fmt::format("optimizer state {}: buffer name", i), name, "a checkpoint of another optimizer");
        r.expect<std::uint64_t>(label + ": number of values", sizes[i]);
        buffer.resize(sizes[i]);
        r.get_array(buffer.data(), sizes[i], label + ": values");
      });
      c.optimizer_.push_back(std::move(s));
    }

    r.expect<std::uint32_t>("number of layer states", static_cast<std::uint32_t>(layer_state_count(net)));
    net.for_each_layer([&](auto& layer, std::size_t index) {
      layer.for_each_state([&](std::string_view name, const std::vector<float>& current) {
        const std::string label = fmt::format("layer {} state \"{}\"", index, name);
        r.expect<std::uint32_t>(label + ": layer index", static_cast<std::uint32_t>(index));
        r.expect_string(fmt::format("the name of a state of layer {}", index), name, "a checkpoint of another network");
        r.expect<std::uint64_t>(label + ": number of values", current.size());
        c.layer_states_.emplace_back(current.size());
        r.get_array(c.layer_states_.back().data(), current.size(), label + ": values");
      });
    });
    if (r.left())
      r.fail(r.offset(), fmt::format("expected the end of the checkpoint, found {} more bytes", r.left()));
    return c;
  }

  const checkpoint_run& run() const noexcept { return run_; }

  // Moves the checkpoint's state into the network, the optimizer and the generator (all of them: the
  // caller's objects were validated against it by read(), so this cannot fail halfway).
  void commit(Net& net, optimizer_states<Optimizer>& optimizer, rng& gen) && noexcept {
    std::size_t i = 0;
    net.for_each_parameter([&](auto& p) {
      p.value.swap(values_[i]);
      p.exp = exponents_[i++];
    });
    std::size_t k = 0;
    net.for_each_layer([&](auto& layer, std::size_t) {
      layer.for_each_state([&](std::string_view, std::vector<float>& values) { values.swap(layer_states_[k++]); });
    });
    optimizer.restore(steps_, std::move(optimizer_));
    gen.set_state(run_.generator);  // never all zeros: read() refuses that
  }

 private:
  checkpoint() = default;

  static std::size_t parameter_count(Net& net) {
    std::size_t n = 0;
    net.for_each_parameter([&](auto&) { ++n; });
    return n;
  }
  static std::size_t layer_state_count(Net& net) {
    std::size_t n = 0;
    net.for_each_layer([&](auto& layer, std::size_t) { layer.for_each_state([&](std::string_view, auto&) { ++n; }); });
    return n;
  }
  static std::uint32_t buffer_count(const typename Optimizer::state& s) {
    std::uint32_t n = 0;
    s.for_each_buffer([&](std::string_view, const auto&) { ++n; });
    return n;
  }

  checkpoint_run run_;
  long steps_ = 0;
  std::vector<aligned_vector<value_type>> values_;  // per parameter tensor, in the network's order
  std::vector<int> exponents_;
  std::vector<typename Optimizer::state> optimizer_;  // per parameter tensor; empty before the first step
  std::vector<std::vector<float>> layer_states_;      // in for_each_layer / for_each_state order
};

}  // namespace pbnn
