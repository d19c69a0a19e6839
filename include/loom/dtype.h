// loom/dtype.h — element types.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace loom {

// Element types. i4/u4 are packed two per byte (element 2k in the low nibble of byte k, element
// 2k+1 in the high nibble — the ONNX/MLX convention); c64 is two f32 (real, imaginary).
enum class DType : uint8_t { f32, f16, bf16, f64, i8, u8, i16, i32, i64, boolean, i4, u4, c64 };
inline constexpr int kNumDTypes = 13;

inline constexpr DType f32 = DType::f32;
inline constexpr DType f16 = DType::f16;
inline constexpr DType bf16 = DType::bf16;
inline constexpr DType f64 = DType::f64;
inline constexpr DType i8 = DType::i8;
inline constexpr DType u8 = DType::u8;
inline constexpr DType i16 = DType::i16;
inline constexpr DType i32 = DType::i32;
inline constexpr DType i64 = DType::i64;
inline constexpr DType boolean = DType::boolean;
inline constexpr DType i4 = DType::i4;
inline constexpr DType u4 = DType::u4;
inline constexpr DType c64 = DType::c64;

int dtype_bits(DType t);                    // bits per element (4 for i4/u4)
std::string_view dtype_name(DType t);       // "f32", "bool", ...
DType dtype_from_name(std::string_view s);  // throws loom::Error on an unknown name
bool is_floating(DType t);                  // f32 f16 bf16 f64
bool is_integer(DType t);                   // i8 u8 i16 i32 i64 i4 u4 (not bool)
bool is_signed_integer(DType t);
bool is_complex(DType t);
bool is_packed(DType t);  // sub-byte types
// Bytes needed to store `numel` elements (rounds packed types up to whole bytes).
size_t storage_bytes(DType t, int64_t numel);

// Half-precision conversions (round to nearest even), usable anywhere.
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  __builtin_memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

}  // namespace loom
