#pragma once
// Reader and writer for the safetensors format (what `safetensors.torch.load_file` reads):
//   8 bytes little-endian u64 N | N bytes JSON header, space-padded so 8+N is a multiple of 8 | data.
// The header maps tensor name -> {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to
// the data section) plus an optional "__metadata__" object of strings. Only F32, I8, I16, I32 are
// supported. The JSON parser is a small one for exactly this structure (objects, arrays, strings,
// integers). Every format error is a pbnn::file_error naming the file and byte offset; nothing is
// returned half-read.
#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "pbnn/error.hpp"

namespace pbnn::io {

enum class dtype { F32, I8, I16, I32 };

constexpr std::size_t dtype_size(dtype t) {
  switch (t) {
    case dtype::F32: return 4;
    case dtype::I8: return 1;
    case dtype::I16: return 2;
    case dtype::I32: return 4;
  }
  return 0;
}

constexpr std::string_view dtype_name(dtype t) {
  switch (t) {
    case dtype::F32: return "F32";
    case dtype::I8: return "I8";
    case dtype::I16: return "I16";
    case dtype::I32: return "I32";
  }
  return "?";
}

namespace detail {

template <class T>
inline constexpr bool is_element = std::is_same_v<T, float> || std::is_same_v<T, std::int8_t> ||
                                   std::is_same_v<T, std::int16_t> || std::is_same_v<T, std::int32_t>;

static_assert(std::numeric_limits<float>::is_iec559 && sizeof(float) == 4, "F32 needs IEEE-754 binary32 floats");
static_assert(std::endian::native == std::endian::little || std::endian::native == std::endian::big,
              "mixed-endian platforms are not supported");

template <class T>
constexpr dtype dtype_of_impl() {
  static_assert(is_element<T>, "safetensors element type must be float, int8_t, int16_t or int32_t");
  if constexpr (std::is_same_v<T, float>) return dtype::F32;
  else if constexpr (std::is_same_v<T, std::int8_t>) return dtype::I8;
  else if constexpr (std::is_same_v<T, std::int16_t>) return dtype::I16;
  else return dtype::I32;
}

// Unsigned integer of the same width as T, for byte-order conversion.
template <class T>
using uint_of = std::conditional_t<sizeof(T) == 1, std::uint8_t,
                                   std::conditional_t<sizeof(T) == 2, std::uint16_t, std::uint32_t>>;

template <class T>
void store_le(std::span<const T> in, std::byte* out) {
  if constexpr (std::endian::native == std::endian::little) {
    if (!in.empty()) std::memcpy(out, in.data(), in.size_bytes());
  } else {
    for (std::size_t i = 0; i < in.size(); ++i) {
      const auto u = std::bit_cast<uint_of<T>>(in[i]);
      for (std::size_t b = 0; b < sizeof(T); ++b)
        out[i * sizeof(T) + b] = static_cast<std::byte>(static_cast<unsigned char>(u >> (8 * b)));
    }
  }
}

template <class T>
void load_le(const std::byte* in, std::span<T> out) {
  if constexpr (std::endian::native == std::endian::little) {
    if (!out.empty()) std::memcpy(out.data(), in, out.size_bytes());
  } else {
    for (std::size_t i = 0; i < out.size(); ++i) {
      uint_of<T> u = 0;
      for (std::size_t b = 0; b < sizeof(T); ++b)
        u = static_cast<uint_of<T>>(u | std::to_integer<uint_of<T>>(in[i * sizeof(T) + b]) << (8 * b));
      out[i] = std::bit_cast<T>(u);
    }
  }
}

// Element count of a shape; nullopt if a dimension is negative or the byte size of `type` overflows.
inline std::optional<std::uint64_t> checked_numel(const std::vector<std::int64_t>& shape, dtype type) {
  std::uint64_t n = 1;
  const std::uint64_t limit = std::numeric_limits<std::uint64_t>::max() / dtype_size(type);
  for (const std::int64_t d : shape) {
    if (d < 0) return std::nullopt;
    const auto u = static_cast<std::uint64_t>(d);
    if (u != 0 && n > limit / u) return std::nullopt;
    n *= u;
  }
  return n;
}

inline std::string shape_str(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace detail

template <class T>
inline constexpr dtype dtype_of = detail::dtype_of_impl<T>();

struct tensor_blob {
  dtype type = dtype::F32;
  std::vector<std::int64_t> shape;  // empty: a scalar
  std::vector<std::byte> bytes;     // little-endian, row-major

  std::size_t numel() const {
    std::size_t n = 1;
    for (const std::int64_t d : shape) n *= static_cast<std::size_t>(d);
    return n;
  }

  bool operator==(const tensor_blob&) const = default;

  template <class T>
  static tensor_blob from(std::vector<std::int64_t> shape, std::span<const T> values) {
    tensor_blob t{dtype_of<T>, std::move(shape), {}};
    const auto n = detail::checked_numel(t.shape, t.type);
    if (!n || *n != values.size())
      throw std::invalid_argument(fmt::format("tensor_blob::from: shape {} {}, got {} values",
                                              detail::shape_str(t.shape),
                                              n ? fmt::format("has {} elements", *n) : std::string("is invalid"),
                                              values.size()));
    t.bytes.resize(values.size_bytes());
    detail::store_le(values, t.bytes.data());
    return t;
  }
  template <class T>
  static tensor_blob from(std::vector<std::int64_t> shape, const std::vector<T>& values) {
    return from(std::move(shape), std::span<const T>(values));
  }

  template <class T>
  std::vector<T> to_vector() const {
    if (type != dtype_of<T>)
      throw std::invalid_argument(fmt::format("tensor_blob::to_vector: requested {} elements, tensor has dtype {}",
                                              dtype_name(dtype_of<T>), dtype_name(type)));
    const auto n = detail::checked_numel(shape, type);
    if (!n || bytes.size() != *n * sizeof(T))
      throw std::invalid_argument(fmt::format("tensor_blob::to_vector: {} bytes do not fit dtype {} shape {}",
                                              bytes.size(), dtype_name(type), detail::shape_str(shape)));
    std::vector<T> out(static_cast<std::size_t>(*n));
    detail::load_le(bytes.data(), std::span<T>(out));
    return out;
  }
};

struct safetensors {
  std::map<std::string, std::string> metadata;
  std::map<std::string, tensor_blob> tensors;

  bool operator==(const safetensors&) const = default;

  const tensor_blob& at(const std::string& name) const {
    const auto it = tensors.find(name);
    if (it == tensors.end())
      throw std::out_of_range(fmt::format("no tensor named \"{}\" ({} tensors present)", name, tensors.size()));
    return it->second;
  }

  template <class T>
  std::vector<T> get(const std::string& name, const std::vector<std::int64_t>& expected_shape) const {
    const tensor_blob& t = at(name);
    if (t.type != dtype_of<T>)
      throw std::invalid_argument(fmt::format("tensor \"{}\": expected dtype {}, found {}", name,
                                              dtype_name(dtype_of<T>), dtype_name(t.type)));
    if (t.shape != expected_shape)
      throw std::invalid_argument(fmt::format("tensor \"{}\": expected shape {}, found {}", name,
                                              detail::shape_str(expected_shape), detail::shape_str(t.shape)));
    return t.to_vector<T>();
  }
};

namespace detail {

inline void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        else out += c;  // bytes >= 0x80 pass through: names are taken to be UTF-8 already
    }
  }
  out += '"';
}

struct json_value {
  enum class kind { object, array, string, integer } type = kind::object;
  std::size_t pos = 0;  // offset of its first character in the header
  std::string str;
  std::int64_t integer = 0;
  std::vector<std::string> keys;     // object member names, in order
  std::vector<std::size_t> key_pos;  // where each name starts
  std::vector<json_value> items;     // array elements or object member values
};

inline const char* kind_name(json_value::kind k) {
  switch (k) {
    case json_value::kind::object: return "an object";
    case json_value::kind::array: return "an array";
    case json_value::kind::string: return "a string";
    case json_value::kind::integer: return "an integer";
  }
  return "?";
}

// Recursive-descent parser; errors are file_errors at base + position of the offending character.
class json_parser {
 public:
  json_parser(const std::filesystem::path& file, std::string_view text, std::uint64_t base)
      : file_(file), text_(text), base_(base) {}

  json_value parse_document() {
    skip_ws();
    if (peek() != '{') fail(i_, "expected '{' starting the header object, found " + found());
    json_value v = parse_value(0);
    skip_ws();
    if (i_ != text_.size()) fail(i_, "expected only space padding after the header object, found " + found());
    return v;
  }

 private:
  static constexpr int max_depth = 16;  // the format needs 3; the limit keeps hostile input off the stack

  const std::filesystem::path& file_;
  std::string_view text_;
  std::uint64_t base_;
  std::size_t i_ = 0;

  [[noreturn]] void fail(std::size_t at, const std::string& what) const {
    throw file_error(file_, base_ + at, "malformed JSON header: " + what);
  }
  char peek() const { return i_ < text_.size() ? text_[i_] : '\0'; }
  bool at_end() const { return i_ >= text_.size(); }
  std::string found() const {
    if (at_end()) return "end of header";
    const auto c = static_cast<unsigned char>(text_[i_]);
    return c >= 0x20 && c < 0x7f ? fmt::format("'{}'", static_cast<char>(c)) : fmt::format("byte 0x{:02x}", c);
  }
  void skip_ws() {
    while (!at_end() && (text_[i_] == ' ' || text_[i_] == '\t' || text_[i_] == '\n' || text_[i_] == '\r')) ++i_;
  }
  void expect(char c, const char* context) {
    skip_ws();
    if (peek() != c || at_end()) fail(i_, fmt::format("expected '{}' {}, found {}", c, context, found()));
    ++i_;
  }

  static json_value node(json_value::kind k, std::size_t pos) {
    json_value v;
    v.type = k;
    v.pos = pos;
    return v;
  }

  json_value parse_value(int depth) {
    skip_ws();
    if (depth > max_depth) fail(i_, fmt::format("nesting deeper than {} levels", max_depth));
    const char c = peek();
    if (!at_end() && c == '{') return parse_object(depth);
    if (!at_end() && c == '[') return parse_array(depth);
    if (!at_end() && c == '"') {
      json_value v = node(json_value::kind::string, i_);
      v.str = parse_string();
      return v;
    }
    if (!at_end() && (c == '-' || (c >= '0' && c <= '9'))) return parse_integer();
    fail(i_, "expected a value (object, array, string or integer), found " + found());
  }

  json_value parse_object(int depth) {
    json_value v = node(json_value::kind::object, i_++);
    std::set<std::string, std::less<>> seen;
    skip_ws();
    if (peek() == '}' && !at_end()) {
      ++i_;
      return v;
    }
    for (;;) {
      skip_ws();
      if (peek() != '"' || at_end()) fail(i_, "expected '\"' starting a member name, found " + found());
      const std::size_t key_pos = i_;
      std::string key = parse_string();
      if (!seen.insert(key).second) fail(key_pos, fmt::format("duplicate member name \"{}\"", key));
      expect(':', "after a member name");
      v.items.push_back(parse_value(depth + 1));
      v.keys.push_back(std::move(key));
      v.key_pos.push_back(key_pos);
      skip_ws();
      if (at_end() || (peek() != ',' && peek() != '}'))
        fail(i_, "expected ',' or '}' after an object member, found " + found());
      if (text_[i_++] == '}') return v;
    }
  }

  json_value parse_array(int depth) {
    json_value v = node(json_value::kind::array, i_++);
    skip_ws();
    if (peek() == ']' && !at_end()) {
      ++i_;
      return v;
    }
    for (;;) {
      v.items.push_back(parse_value(depth + 1));
      skip_ws();
      if (at_end() || (peek() != ',' && peek() != ']'))
        fail(i_, "expected ',' or ']' after an array element, found " + found());
      if (text_[i_++] == ']') return v;
    }
  }

  json_value parse_integer() {
    json_value v = node(json_value::kind::integer, i_);
    const bool negative = peek() == '-';
    if (negative) ++i_;
    if (at_end() || peek() < '0' || peek() > '9') fail(i_, "expected a digit, found " + found());
    if (peek() == '0' && i_ + 1 < text_.size() && text_[i_ + 1] >= '0' && text_[i_ + 1] <= '9')
      fail(i_ + 1, "expected no leading zeros in a number, found another digit");
    // Magnitude up to 2^63 so that INT64_MIN parses; anything larger is out of range.
    const std::uint64_t limit = std::uint64_t{1} << 63;
    std::uint64_t m = 0;
    while (!at_end() && peek() >= '0' && peek() <= '9') {
      const auto d = static_cast<std::uint64_t>(peek() - '0');
      if (m > (limit - d) / 10) fail(v.pos, "integer out of the 64-bit range");
      m = m * 10 + d;
      ++i_;
    }
    if (!negative && m == limit) fail(v.pos, "integer out of the 64-bit range");
    if (peek() == '.' || peek() == 'e' || peek() == 'E')
      fail(i_, fmt::format("expected an integer, found a fraction or exponent ({})", found()));
    v.integer = negative ? static_cast<std::int64_t>(0 - m) : static_cast<std::int64_t>(m);
    return v;
  }

  unsigned hex4() {  // the 4 hex digits after "\u", at i_
    unsigned u = 0;
    for (int k = 0; k < 4; ++k, ++i_) {
      const char c = peek();
      unsigned d;
      if (at_end()) fail(i_, "expected 4 hex digits after \\u, found end of header");
      if (c >= '0' && c <= '9') d = static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') d = static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') d = static_cast<unsigned>(c - 'A' + 10);
      else fail(i_, "expected a hex digit after \\u, found " + found());
      u = u * 16 + d;
    }
    return u;
  }

  static void append_utf8(std::string& out, std::uint32_t cp) {
    auto put = [&](std::uint32_t b) { out += static_cast<char>(static_cast<unsigned char>(b)); };
    if (cp < 0x80) {
      put(cp);
    } else if (cp < 0x800) {
      put(0xC0 | cp >> 6), put(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      put(0xE0 | cp >> 12), put(0x80 | (cp >> 6 & 0x3F)), put(0x80 | (cp & 0x3F));
    } else {
      put(0xF0 | cp >> 18), put(0x80 | (cp >> 12 & 0x3F)), put(0x80 | (cp >> 6 & 0x3F)), put(0x80 | (cp & 0x3F));
    }
  }

  std::string parse_string() {  // at the opening quote
    const std::size_t start = i_++;
    std::string out;
    for (;;) {
      if (at_end())
        fail(i_, fmt::format("expected '\"' closing the string at offset {}, found end of header", base_ + start));
      const char c = text_[i_];
      if (c == '"') {
        ++i_;
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20)
        fail(i_, fmt::format("expected a string character, found unescaped control byte 0x{:02x}",
                             static_cast<unsigned>(c)));
      if (c != '\\') {
        out += c;
        ++i_;
        continue;
      }
      const std::size_t esc = i_++;
      switch (peek()) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          ++i_;
          std::uint32_t cp = hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) fail(esc, "expected a high surrogate before low surrogate escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {  // UTF-16 pair: the low half must follow
            if (peek() != '\\' || i_ + 1 >= text_.size() || text_[i_ + 1] != 'u')
              fail(i_, "expected a \\u low surrogate after a high surrogate, found " + found());
            const std::size_t low_pos = i_;
            i_ += 2;
            const unsigned low = hex4();
            if (low < 0xDC00 || low > 0xDFFF)
              fail(low_pos, fmt::format("expected a low surrogate \\uDC00-\\uDFFF, found \\u{:04X}", low));
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(out, cp);
          continue;  // hex4 already advanced past the digits
        }
        default:
          fail(i_, "expected an escape character (\" \\ / b f n r t u) after '\\', found " + found());
      }
      ++i_;
    }
  }
};

[[noreturn]] inline void throw_at(const std::filesystem::path& file, std::uint64_t offset, const std::string& what) {
  throw file_error(file, offset, what);
}

}  // namespace detail

// Writes atomically: the whole file goes to "<file>.tmp", which is then renamed over `file`, so readers
// never see a partial file. A blob inconsistent with its shape is a caller bug (std::invalid_argument,
// nothing written); an I/O failure removes the temp file and throws std::runtime_error naming `file`.
inline void write_safetensors(const std::filesystem::path& file, const safetensors& st) {
  std::string header = "{";
  if (!st.metadata.empty()) {  // omitted when empty, as the reference implementation does
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : st.metadata) {
      if (!std::exchange(first, false)) header += ',';
      detail::append_json_string(header, k);
      header += ':';
      detail::append_json_string(header, v);
    }
    header += '}';
  }
  std::uint64_t offset = 0;
  for (const auto& [name, t] : st.tensors) {  // std::map: name order, which is also data order
    if (name == "__metadata__")
      throw std::invalid_argument(
          fmt::format("{}: cannot write tensor named \"__metadata__\": the name is reserved", file.string()));
    const auto n = detail::checked_numel(t.shape, t.type);
    if (!n || t.bytes.size() != *n * dtype_size(t.type))
      throw std::invalid_argument(fmt::format("{}: tensor \"{}\": expected {} bytes for dtype {} shape {}, found {}",
                                              file.string(), name,
                                              n ? std::to_string(*n * dtype_size(t.type)) : std::string("(invalid)"),
                                              dtype_name(t.type), detail::shape_str(t.shape), t.bytes.size()));
    if (header.size() > 1) header += ',';
    detail::append_json_string(header, name);
    header += fmt::format(":{{\"dtype\":\"{}\",\"shape\":[", dtype_name(t.type));
    for (std::size_t i = 0; i < t.shape.size(); ++i) {
      if (i) header += ',';
      header += std::to_string(t.shape[i]);
    }
    header += fmt::format("],\"data_offsets\":[{},{}]}}", offset, offset + t.bytes.size());
    offset += t.bytes.size();
  }
  header += '}';
  header.append((8 - header.size() % 8) % 8, ' ');  // 8 + size is a multiple of 8 iff size is

  std::filesystem::path tmp = file;
  tmp += ".tmp";
  bool created = false;
  auto fail = [&](const std::string& what) {
    throw std::runtime_error(fmt::format("{}: cannot write safetensors file: {}", file.string(), what));
  };
  auto errno_msg = [](int err) {
    return err ? std::error_code(err, std::generic_category()).message() : std::string("unknown error");
  };
  try {
    errno = 0;
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(fmt::format("cannot create temporary file {}: {}", tmp.string(), errno_msg(errno)));
    created = true;
    char len[8];
    for (int b = 0; b < 8; ++b) len[b] = static_cast<char>(static_cast<std::uint64_t>(header.size()) >> (8 * b) & 0xFF);
    out.write(len, 8);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    for (const auto& [name, t] : st.tensors)
      out.write(reinterpret_cast<const char*>(t.bytes.data()), static_cast<std::streamsize>(t.bytes.size()));
    errno = 0;
    out.close();  // flushes; a full disk shows up here
    if (!out) fail(fmt::format("error writing temporary file {}: {}", tmp.string(), errno_msg(errno)));
    std::error_code ec;
    std::filesystem::rename(tmp, file, ec);
    if (ec) fail(fmt::format("cannot rename {} over it: {}", tmp.string(), ec.message()));
  } catch (...) {
    if (created) {
      std::error_code ignored;
      std::filesystem::remove(tmp, ignored);
    }
    throw;
  }
}

inline safetensors read_safetensors(const std::filesystem::path& file) {
  namespace fs = std::filesystem;
  using kind = detail::json_value::kind;

  std::error_code ec;
  const auto status = fs::status(file, ec);
  if (ec && !fs::status_known(status)) throw file_error(file, 0, fmt::format("cannot open: {}", ec.message()));
  if (!fs::exists(status)) throw file_error(file, 0, "cannot open: no such file");
  if (fs::is_directory(status)) throw file_error(file, 0, "cannot open: is a directory, expected a file");
  errno = 0;
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    const int err = errno;
    throw file_error(file, 0,
                     fmt::format("cannot open: {}", err ? std::error_code(err, std::generic_category()).message()
                                                        : std::string("unknown error")));
  }
  const std::uint64_t size = fs::file_size(file, ec);
  if (ec) throw file_error(file, 0, fmt::format("cannot determine size: {}", ec.message()));
  if (size < 8)
    throw file_error(file, 0,
                     fmt::format("expected an 8-byte little-endian header size, found a file of {} bytes", size));

  unsigned char len[8];
  in.read(reinterpret_cast<char*>(len), 8);
  if (in.gcount() != 8) throw file_error(file, static_cast<std::uint64_t>(in.gcount()), "read error");
  std::uint64_t n = 0;
  for (int b = 7; b >= 0; --b) n = n << 8 | len[b];
  if (n > size - 8)
    throw file_error(file, 0,
                     fmt::format("header size {} exceeds the {} bytes that follow the 8-byte size field", n, size - 8));

  std::string header(static_cast<std::size_t>(n), '\0');
  in.read(header.data(), static_cast<std::streamsize>(n));
  if (static_cast<std::uint64_t>(in.gcount()) != n)
    throw file_error(file, 8 + static_cast<std::uint64_t>(in.gcount()), "read error in header");
  const detail::json_value root = detail::json_parser(file, header, 8).parse_document();

  const std::uint64_t data_start = 8 + n, data_size = size - data_start;
  auto fail = [&](std::size_t header_pos, const std::string& what) { detail::throw_at(file, 8 + header_pos, what); };
  auto expect_kind = [&](const detail::json_value& v, kind k, const std::string& what) {
    if (v.type != k)
      fail(v.pos, fmt::format("expected {} to be {}, found {}", what, detail::kind_name(k), detail::kind_name(v.type)));
  };

  struct placement {
    const std::string* name;
    std::uint64_t begin, end;
    std::size_t pos;  // of data_offsets in the header
    tensor_blob* blob;
  };
  safetensors out;
  std::vector<placement> placed;
  for (std::size_t m = 0; m < root.keys.size(); ++m) {
    const std::string& name = root.keys[m];
    const detail::json_value& v = root.items[m];
    if (name == "__metadata__") {
      expect_kind(v, kind::object, "\"__metadata__\"");
      for (std::size_t k = 0; k < v.keys.size(); ++k) {
        expect_kind(v.items[k], kind::string, fmt::format("metadata value \"{}\"", v.keys[k]));
        out.metadata.emplace(v.keys[k], v.items[k].str);
      }
      continue;
    }
    const std::string what = fmt::format("tensor \"{}\"", name);
    expect_kind(v, kind::object, what);
    const detail::json_value *dt = nullptr, *shape = nullptr, *offsets = nullptr;
    for (std::size_t k = 0; k < v.keys.size(); ++k) {
      if (v.keys[k] == "dtype") dt = &v.items[k];
      else if (v.keys[k] == "shape") shape = &v.items[k];
      else if (v.keys[k] == "data_offsets") offsets = &v.items[k];
      else
        fail(v.key_pos[k], fmt::format("{}: expected member \"dtype\", \"shape\" or \"data_offsets\", found \"{}\"",
                                       what, v.keys[k]));
    }
    for (const auto& [field, p] : {std::pair{"dtype", dt}, {"shape", shape}, {"data_offsets", offsets}})
      if (!p) fail(v.pos, fmt::format("{}: missing member \"{}\"", what, field));

    tensor_blob t;
    expect_kind(*dt, kind::string, what + " dtype");
    const dtype all[] = {dtype::F32, dtype::I8, dtype::I16, dtype::I32};
    const auto known = std::find_if(std::begin(all), std::end(all), [&](dtype d) { return dtype_name(d) == dt->str; });
    if (known == std::end(all))
      fail(dt->pos, fmt::format("{}: unsupported dtype \"{}\", expected one of F32, I8, I16, I32", what, dt->str));
    t.type = *known;

    expect_kind(*shape, kind::array, what + " shape");
    for (const auto& d : shape->items) {
      expect_kind(d, kind::integer, what + " shape entry");
      if (d.integer < 0) fail(d.pos, fmt::format("{}: expected a non-negative dimension, found {}", what, d.integer));
      t.shape.push_back(d.integer);
    }
    const auto numel = detail::checked_numel(t.shape, t.type);
    if (!numel) fail(shape->pos, fmt::format("{}: shape {} is too large", what, detail::shape_str(t.shape)));

    expect_kind(*offsets, kind::array, what + " data_offsets");
    if (offsets->items.size() != 2)
      fail(offsets->pos,
           fmt::format("{}: expected 2 data_offsets [begin, end], found {}", what, offsets->items.size()));
    for (const auto& o : offsets->items) {
      expect_kind(o, kind::integer, what + " data offset");
      if (o.integer < 0) fail(o.pos, fmt::format("{}: expected a non-negative data offset, found {}", what, o.integer));
    }
    const auto begin = static_cast<std::uint64_t>(offsets->items[0].integer);
    const auto end = static_cast<std::uint64_t>(offsets->items[1].integer);
    if (end < begin) fail(offsets->pos, fmt::format("{}: data_offsets [{}, {}] end before begin", what, begin, end));
    const std::uint64_t nbytes = *numel * dtype_size(t.type);
    if (end - begin != nbytes)
      fail(offsets->pos, fmt::format("{}: data_offsets [{}, {}] span {} bytes, expected {} for dtype {} shape {}",
                                     what, begin, end, end - begin, nbytes, dtype_name(t.type),
                                     detail::shape_str(t.shape)));
    if (end > data_size)
      fail(offsets->pos, fmt::format("{}: data_offsets [{}, {}] end beyond the data section of {} bytes", what,
                                     begin, end, data_size));
    auto [it, inserted] = out.tensors.emplace(name, std::move(t));
    placed.push_back({&it->first, begin, end, offsets->pos, &it->second});
  }

  // Tensors must tile the data section exactly: no gaps, no overlaps, nothing left over.
  std::sort(placed.begin(), placed.end(), [](const placement& a, const placement& b) {
    return std::pair(a.begin, a.end) < std::pair(b.begin, b.end);
  });
  std::uint64_t covered = 0;
  const std::string* prev = nullptr;
  for (const placement& p : placed) {
    if (p.begin > covered)
      fail(p.pos, fmt::format("tensor \"{}\": expected data to start at offset {}{}, found {} (a gap)", *p.name,
                              covered, prev ? fmt::format(" where \"{}\" ends", *prev) : std::string(), p.begin));
    if (p.begin < covered)
      fail(p.pos, fmt::format("tensor \"{}\": data [{}, {}] overlaps tensor \"{}\", which ends at {}", *p.name,
                              p.begin, p.end, *prev, covered));
    covered = p.end;
    prev = p.name;
  }
  if (covered != data_size)
    throw file_error(file, data_start + covered,
                     fmt::format("expected end of file after the tensors' {} data bytes, found {} more bytes", covered,
                                 data_size - covered));

  for (const placement& p : placed) {  // in offset order, which is file order: no seeks needed
    p.blob->bytes.resize(static_cast<std::size_t>(p.end - p.begin));
    in.read(reinterpret_cast<char*>(p.blob->bytes.data()), static_cast<std::streamsize>(p.end - p.begin));
    if (static_cast<std::uint64_t>(in.gcount()) != p.end - p.begin)
      throw file_error(file, data_start + p.begin + static_cast<std::uint64_t>(in.gcount()),
                       fmt::format("read error in data of tensor \"{}\" (file changed while being read?)", *p.name));
  }
  return out;
}

}  // namespace pbnn::io
