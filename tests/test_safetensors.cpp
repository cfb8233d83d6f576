// safetensors reader/writer: round trips, the exact byte layout, headers from other writers, every
// format error (with its byte offset), atomic writes and typed look-ups.
#include "pbnn/io/safetensors.hpp"

#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using pbnn::file_error;
using namespace pbnn::io;

namespace {

struct temp_dir : pbnn_test::temp_dir {
  temp_dir() : pbnn_test::temp_dir("pbnn_test_safetensors_") {}
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_raw(const fs::path& p, const std::string& b) {
  std::ofstream out(p, std::ios::binary);
  out.write(b.data(), static_cast<std::streamsize>(b.size()));
  REQUIRE(out.good());
}

std::string le64(std::uint64_t v) {
  std::string s;
  for (int b = 0; b < 8; ++b) s += static_cast<char>(v >> (8 * b) & 0xFF);
  return s;
}

// A safetensors file with the given header text (unpadded unless the text is) and data bytes.
std::string st_file(const std::string& header, const std::string& data = "") {
  return le64(header.size()) + header + data;
}

std::uint64_t le64_at(const std::string& s, std::size_t at) {
  std::uint64_t v = 0;
  for (int b = 7; b >= 0; --b) v = v << 8 | static_cast<unsigned char>(s[at + static_cast<std::size_t>(b)]);
  return v;
}

void check_file_error(const fs::path& p, std::uint64_t offset, const std::string& needle) {
  try {
    (void)read_safetensors(p);
    FAIL("expected pbnn::file_error");
  } catch (const file_error& e) {
    INFO(e.what());
    CHECK(e.file() == p);
    CHECK(e.offset() == offset);
    CHECK_THAT(e.what(), Contains(needle));
  }
}

// Writes `header` + `data` and expects a file_error at 8 + the position of `at` in the header.
void check_header_error(const temp_dir& dir, const std::string& header, const std::string& at,
                        const std::string& needle, const std::string& data = "") {
  INFO("header: " << header);
  const std::size_t pos = header.find(at);
  REQUIRE(pos != std::string::npos);
  const fs::path p = dir / "bad.safetensors";
  write_raw(p, st_file(header, data));
  check_file_error(p, 8 + pos, needle);
}

template <class T>
std::vector<T> random_values(std::size_t n, std::mt19937& rng) {
  std::vector<T> v(n);
  if constexpr (std::is_floating_point_v<T>) {
    std::normal_distribution<T> d(0, 10);
    for (auto& x : v) x = d(rng);
  } else {
    std::uniform_int_distribution<std::int32_t> d(std::numeric_limits<T>::min(), std::numeric_limits<T>::max());
    for (auto& x : v) x = static_cast<T>(d(rng));
  }
  return v;
}

}  // namespace

TEST_CASE("safetensors round trip of every dtype with metadata", "[safetensors]") {
  temp_dir dir;
  const fs::path p = dir / "model.safetensors";
  std::mt19937 rng(42);
  const float inf = std::numeric_limits<float>::infinity();

  safetensors st;
  st.metadata["format"] = "pt";
  st.metadata["quote\"back\\slash"] = "new\nline\ttab\rcr\x01\x1f \xc2\xb5 \xe2\x82\xac \xf0\x9f\x98\x80";
  st.metadata[""] = "";
  st.tensors["f32/special"] = tensor_blob::from<float>(
      {2, 3}, {-0.0f, inf, -inf, std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::max(),
               std::numeric_limits<float>::quiet_NaN()});
  st.tensors["f32/scalar"] = tensor_blob::from<float>({}, {3.5f});
  st.tensors["f32/empty"] = tensor_blob::from<float>({0, 4}, std::vector<float>{});
  st.tensors["f32/random"] = tensor_blob::from<float>({17, 13}, random_values<float>(17 * 13, rng));
  st.tensors["i8"] = tensor_blob::from<std::int8_t>({4}, {-128, -1, 0, 127});
  st.tensors["i8/random"] = tensor_blob::from<std::int8_t>({3, 5, 7}, random_values<std::int8_t>(105, rng));
  st.tensors["i16"] = tensor_blob::from<std::int16_t>({2, 2}, {-32768, 32767, 258, -2});
  st.tensors["i16/random"] = tensor_blob::from<std::int16_t>({99}, random_values<std::int16_t>(99, rng));
  st.tensors["i32"] = tensor_blob::from<std::int32_t>(
      {3, 1, 2}, {std::numeric_limits<std::int32_t>::min(), std::numeric_limits<std::int32_t>::max(), 0, 1, -1,
                  0x01020304});
  st.tensors["i32/random"] = tensor_blob::from<std::int32_t>({1000}, random_values<std::int32_t>(1000, rng));
  st.tensors["layer \"1\"\\w\n\t\x01 \xc2\xb5"] = tensor_blob::from<std::int8_t>({1}, {7});

  write_safetensors(p, st);
  const safetensors back = read_safetensors(p);
  CHECK(back.metadata == st.metadata);
  CHECK(back == st);  // byte-exact, so NaN and -0 survive too

  CHECK(back.get<std::int32_t>("i32", {3, 1, 2}) ==
        std::vector<std::int32_t>{std::numeric_limits<std::int32_t>::min(), std::numeric_limits<std::int32_t>::max(),
                                  0, 1, -1, 0x01020304});
  CHECK(back.get<std::int16_t>("i16", {2, 2}) == std::vector<std::int16_t>{-32768, 32767, 258, -2});
  CHECK(back.get<std::int8_t>("i8", {4}) == std::vector<std::int8_t>{-128, -1, 0, 127});
  CHECK(back.get<float>("f32/scalar", {}) == std::vector<float>{3.5f});
  CHECK(back.get<float>("f32/empty", {0, 4}).empty());
  const auto special = back.get<float>("f32/special", {2, 3});
  CHECK(std::signbit(special[0]));
  CHECK(special[1] == inf);
  CHECK(std::isnan(special[5]));

  // Overwriting an existing file works and leaves only the file itself.
  st.tensors.erase("i32/random");
  write_safetensors(p, st);
  CHECK(read_safetensors(p) == st);
  CHECK(dir.entries() == std::vector<std::string>{"model.safetensors"});

  // No tensors and no metadata is a valid (padded) file too.
  write_safetensors(p, safetensors{});
  CHECK(slurp(p) == le64(8) + "{}      ");
  CHECK(read_safetensors(p) == safetensors{});
}

TEST_CASE("safetensors byte layout matches a hand-computed file", "[safetensors]") {
  temp_dir dir;
  const fs::path p = dir / "tiny.safetensors";
  safetensors st;
  st.metadata["k"] = "vv";
  st.tensors["c"] = tensor_blob::from<float>({}, {1.0f});
  st.tensors["a"] = tensor_blob::from<std::int8_t>({3}, {1, 2, -1});
  st.tensors["b"] = tensor_blob::from<std::int16_t>({2}, {258, -2});
  write_safetensors(p, st);

  // Tensors in name order, packed without gaps: a [0,3), b [3,7), c [7,11). The JSON is 185 bytes,
  // padded with 7 spaces to N = 192 so that 8 + N = 200 is a multiple of 8.
  const std::string json =
      R"({"__metadata__":{"k":"vv"},"a":{"dtype":"I8","shape":[3],"data_offsets":[0,3]},)"
      R"("b":{"dtype":"I16","shape":[2],"data_offsets":[3,7]},"c":{"dtype":"F32","shape":[],"data_offsets":[7,11]}})";
  REQUIRE(json.size() == 185);
  const std::string expected = std::string("\xC0\0\0\0\0\0\0\0", 8) + json + "       " +
                               std::string("\x01\x02\xFF", 3) +           // I8 1, 2, -1
                               std::string("\x02\x01\xFE\xFF", 4) +       // I16 258, -2 little-endian
                               std::string("\x00\x00\x80\x3F", 4);        // F32 1.0f little-endian
  const std::string got = slurp(p);
  CHECK(got.size() == 211);
  CHECK(got == expected);
  CHECK(read_safetensors(p) == st);

  // Whatever the name lengths, the header is padded with spaces so the data starts 8-aligned.
  for (std::size_t len = 1; len <= 16; ++len) {
    safetensors s;
    s.tensors[std::string(len, 'x')] = tensor_blob::from<std::int32_t>({2}, {1, 2});
    write_safetensors(p, s);
    const std::string b = slurp(p);
    const std::uint64_t n = le64_at(b, 0);
    INFO("name length " << len);
    CHECK((8 + n) % 8 == 0);
    CHECK(b.size() == 8 + n + 8);
    const std::string header = b.substr(8, n);
    const auto close = header.find_last_not_of(' ');
    CHECK(header[close] == '}');
    CHECK(n - close - 1 < 8);
    CHECK_THAT(header, Contains("\"data_offsets\":[0,8]"));
  }
}

TEST_CASE("safetensors reader accepts headers from other writers", "[safetensors]") {
  temp_dir dir;
  const fs::path p = dir / "other.safetensors";
  // Whitespace, other member orders, data order unlike name order, metadata last, unpadded header,
  // \u escapes (including a surrogate pair) and "\/".
  const std::string header =
      "\n{ \"b\" : {\"data_offsets\": [0, 4], \"shape\": [1, 1], \"dtype\": \"I32\"},\r\n"
      "\t\"a\\/\\u0041\": {\"dtype\": \"I8\", \"shape\": [2], \"data_offsets\": [4, 6]},\n"
      "  \"z\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [6, 6]},\n"
      "  \"__metadata__\": {\"unit\": \"\\u00b5m \\ud83d\\ude00 \\\"q\\\" \\\\ \\n\\t\\b\\f\\r\"} }  ";
  write_raw(p, st_file(header, std::string("\xFF\xFF\xFF\x7F\x05\xFB", 6)));
  const safetensors st = read_safetensors(p);
  CHECK(st.metadata.at("unit") == "\xc2\xb5m \xf0\x9f\x98\x80 \"q\" \\ \n\t\b\f\r");
  CHECK(st.get<std::int32_t>("b", {1, 1}) == std::vector<std::int32_t>{0x7FFFFFFF});
  CHECK(st.get<std::int8_t>("a/A", {2}) == std::vector<std::int8_t>{5, -5});
  CHECK(st.get<float>("z", {0}).empty());
  CHECK(st.tensors.size() == 3);
}

TEST_CASE("safetensors reader reports format errors with their byte offset", "[safetensors]") {
  temp_dir dir;
  const fs::path p = dir / "bad.safetensors";

  SECTION("missing file or a directory") {
    check_file_error(dir / "missing.safetensors", 0, "no such file");
    check_file_error(dir.path, 0, "directory");
  }
  SECTION("file shorter than the 8-byte size field") {
    write_raw(p, "");
    check_file_error(p, 0, "found a file of 0 bytes");
    write_raw(p, std::string("\x02\0\0\0\0", 5));
    check_file_error(p, 0, "found a file of 5 bytes");
  }
  SECTION("header size larger than the file") {
    write_raw(p, le64(100) + "{}        ");
    check_file_error(p, 0, "header size 100 exceeds the 10 bytes");
    write_raw(p, le64(std::uint64_t{1} << 63) + "{}");
    check_file_error(p, 0, "exceeds");
  }
  SECTION("malformed JSON: offset of the offending character") {
    check_header_error(dir, "", "", "expected '{'");  // position 0 = end of the empty header
    check_header_error(dir, "[]", "[", "expected '{'");
    check_header_error(dir, R"({"a":{"dtype":"F32",,}})", ",}", "expected '\"' starting a member name, found ','");
    check_header_error(dir, R"({"a" 1})", "1", "expected ':'");
    check_header_error(dir, R"({"a":1 "b":2})", "\"b", "expected ',' or '}'");
    check_header_error(dir, R"({"a":[1 2]})", "2", "expected ',' or ']'");
    check_header_error(dir, R"({} x)", "x", "expected only space padding");
    check_header_error(dir, R"({"a":[1.5]})", ".", "expected an integer");
    check_header_error(dir, R"({"a":[1e3]})", "e", "expected an integer");
    check_header_error(dir, R"({"a":[01]})", "1]", "leading zeros");
    check_header_error(dir, R"({"a":[-x]})", "x", "expected a digit");
    check_header_error(dir, R"({"a":[99999999999999999999]})", "9", "out of the 64-bit range");
    check_header_error(dir, R"({"a":true})", "t", "expected a value");
    check_header_error(dir, R"({"a\q":1})", "q", "expected an escape character");
    check_header_error(dir, R"({"a\u00g0":1})", "g", "expected a hex digit");
    check_header_error(dir, R"({"a\udc00":1})", "\\", "high surrogate");
    check_header_error(dir, R"({"a\ud800x":1})", "x", "low surrogate");
    check_header_error(dir, "{\"a\x01\":1}", "\x01", "unescaped control byte 0x01");
    check_header_error(dir, R"({"a":1,"a":2})", "\"a\":2", "duplicate member name \"a\"");
    check_header_error(dir, R"({"a":1, })", "}", "found '}'");
    check_header_error(dir, std::string(20, '[') + "]", "[", "expected '{'");
    // The root object is level 0, so the 17th '[' (header position 4 + 17) is one level too deep.
    write_raw(p, st_file("{\"a\":" + std::string(20, '[')));
    check_file_error(p, 8 + 4 + 17, "nesting deeper than 16 levels");
    // Unterminated: the offending position is the end of the header.
    const std::string h = R"({"abc)";
    write_raw(p, st_file(h, "data"));
    check_file_error(p, 8 + h.size(), "found end of header");
  }
  SECTION("header structure") {
    check_header_error(dir, R"({"__metadata__":[]})", "[", "expected \"__metadata__\" to be an object");
    check_header_error(dir, R"({"__metadata__":{"k":1}})", "1", "metadata value \"k\" to be a string");
    check_header_error(dir, R"({"a":[]})", "[", "tensor \"a\" to be an object");
    check_header_error(dir, R"({"a":{"dtype":"I8","data_offsets":[0,0]}})", "{\"dtype", "missing member \"shape\"");
    check_header_error(dir, R"({"a":{"dtype":"I8","shape":[],"data_offsets":[0,1],"x":0}})", "\"x\"",
                       "found \"x\"", "\x01");
    check_header_error(dir, R"({"a":{"dtype":"I8","shape":[-1],"data_offsets":[0,0]}})", "-1",
                       "non-negative dimension, found -1");
    check_header_error(dir, R"({"a":{"dtype":"I8","shape":[],"data_offsets":[0,1,2]}})", "[0,1,2]",
                       "expected 2 data_offsets");
    check_header_error(dir, R"({"a":{"dtype":"I8","shape":[0],"data_offsets":[2,1]}})", "[2,1]",
                       "end before begin", "\x01\x01");
    check_header_error(dir, R"({"a":{"dtype":"I8","shape":["1"],"data_offsets":[0,1]}})", "\"1\"",
                       "shape entry to be an integer, found a string", "\x01");
    check_header_error(dir,
                       R"({"a":{"dtype":"I32","shape":[4611686018427387904],"data_offsets":[0,4]}})",
                       "[46", "too large", "\x01\x01\x01\x01");
  }
  SECTION("unknown dtype") {
    check_header_error(dir, R"({"a":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}})", "\"F16\"",
                       "unsupported dtype \"F16\", expected one of F32, I8, I16, I32", "\x01\x02");
  }
  SECTION("shape and data_offsets disagree") {
    check_header_error(dir, R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", "[0,20]",
                       "span 20 bytes, expected 24 for dtype F32 shape [2, 3]", std::string(20, '\0'));
  }
  SECTION("offsets out of range") {
    check_header_error(dir, R"({"a":{"dtype":"I16","shape":[2],"data_offsets":[0,4]}})", "[0,4]",
                       "end beyond the data section of 3 bytes", "\x01\x02\x03");
  }
  SECTION("overlapping tensors") {
    check_header_error(dir,
                       R"({"a":{"dtype":"I8","shape":[2],"data_offsets":[0,2]},)"
                       R"("b":{"dtype":"I8","shape":[2],"data_offsets":[1,3]}})",
                       "[1,3]", "overlaps tensor \"a\", which ends at 2", "\x01\x02\x03");
  }
  SECTION("gap before or between tensors") {
    check_header_error(dir, R"({"a":{"dtype":"I8","shape":[1],"data_offsets":[1,2]}})", "[1,2]",
                       "expected data to start at offset 0, found 1", "\x01\x02");
    check_header_error(dir,
                       R"({"a":{"dtype":"I8","shape":[1],"data_offsets":[0,1]},)"
                       R"("b":{"dtype":"I8","shape":[1],"data_offsets":[2,3]}})",
                       "[2,3]", "offset 1 where \"a\" ends, found 2", "\x01\x02\x03");
  }
  SECTION("data section longer than the tensors: offset of the first uncovered byte") {
    const std::string header = R"({"a":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}})";
    write_raw(p, st_file(header, "\x01\x02\x03"));
    check_file_error(p, 8 + header.size() + 1, "found 2 more bytes");
    write_raw(p, st_file("{}", "x"));
    check_file_error(p, 8 + 2, "found 1 more bytes");
  }
}

TEST_CASE("safetensors writes atomically", "[safetensors]") {
  temp_dir dir;
  safetensors st;
  st.tensors["w"] = tensor_blob::from<float>({2}, {1.0f, 2.0f});

  SECTION("success leaves only the file, no .tmp") {
    write_safetensors(dir / "m.safetensors", st);
    CHECK(dir.entries() == std::vector<std::string>{"m.safetensors"});
  }
  SECTION("a failed rename removes the temp file and names the file") {
    const fs::path target = dir / "m.safetensors";
    fs::create_directories(target / "occupied");  // a non-empty directory cannot be renamed over
    CHECK_THROWS_WITH(write_safetensors(target, st), Contains(target.string()) && Contains("cannot rename"));
    CHECK(dir.entries() == std::vector<std::string>{"m.safetensors"});
    CHECK(fs::is_directory(target / "occupied"));
  }
  SECTION("an uncreatable temp file is a runtime_error naming the file") {
    const fs::path target = dir / "no" / "such" / "dir.safetensors";
    CHECK_THROWS_AS(write_safetensors(target, st), std::runtime_error);
    CHECK_THROWS_WITH(write_safetensors(target, st), Contains(target.string()));
    CHECK(dir.entries().empty());
  }
  SECTION("inconsistent tensors are rejected before anything is written") {
    safetensors bad = st;
    bad.tensors["w"].bytes.pop_back();
    CHECK_THROWS_WITH(write_safetensors(dir / "m.safetensors", bad),
                      Contains("tensor \"w\": expected 8 bytes for dtype F32 shape [2], found 7"));
    bad = st;
    bad.tensors["__metadata__"] = st.tensors["w"];
    CHECK_THROWS_AS(write_safetensors(dir / "m.safetensors", bad), std::invalid_argument);
    bad = st;
    bad.tensors["w"].shape = {-2};
    CHECK_THROWS_AS(write_safetensors(dir / "m.safetensors", bad), std::invalid_argument);
    CHECK(dir.entries().empty());
  }
}

TEST_CASE("safetensors typed look-ups check name, dtype and shape", "[safetensors]") {
  safetensors st;
  st.tensors["w"] = tensor_blob::from<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(st.at("w").numel() == 6);
  CHECK(st.get<float>("w", {2, 3}) == std::vector<float>{1, 2, 3, 4, 5, 6});
  CHECK_THROWS_AS(st.at("v"), std::out_of_range);
  CHECK_THROWS_WITH(st.get<float>("v", {2, 3}), Contains("\"v\""));
  CHECK_THROWS_WITH(st.get<std::int8_t>("w", {2, 3}), Contains("\"w\"") && Contains("expected dtype I8, found F32"));
  CHECK_THROWS_WITH(st.get<float>("w", {3, 2}), Contains("\"w\"") && Contains("expected shape [3, 2], found [2, 3]"));
  CHECK_THROWS_AS(st.at("w").to_vector<std::int32_t>(), std::invalid_argument);
  CHECK_THROWS_AS(tensor_blob::from<float>({2, 2}, {1, 2, 3}), std::invalid_argument);
  CHECK_THROWS_AS(tensor_blob::from<float>({-1}, std::vector<float>{}), std::invalid_argument);
  CHECK(dtype_size(dtype::I16) == 2);
  CHECK(dtype_name(dtype::I32) == "I32");
  CHECK(dtype_of<std::int8_t> == dtype::I8);
}
