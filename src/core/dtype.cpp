#include "loom/dtype.h"

#include <cstring>

#include "loom/error.h"

namespace loom {
namespace {
struct DTypeRow {
  DType type;
  const char* name;
  int bits;
};
// One row per dtype: the single table everything else reads.
constexpr DTypeRow kRows[kNumDTypes] = {
    {DType::f32, "f32", 32},     {DType::f16, "f16", 16}, {DType::bf16, "bf16", 16},
    {DType::f64, "f64", 64},     {DType::i8, "i8", 8},    {DType::u8, "u8", 8},
    {DType::i16, "i16", 16},     {DType::i32, "i32", 32}, {DType::i64, "i64", 64},
    {DType::boolean, "bool", 8}, {DType::i4, "i4", 4},    {DType::u4, "u4", 4},
    {DType::c64, "c64", 64}};
const DTypeRow& row(DType t) { return kRows[static_cast<int>(t)]; }
}  // namespace

int dtype_bits(DType t) { return row(t).bits; }
std::string_view dtype_name(DType t) { return row(t).name; }
DType dtype_from_name(std::string_view s) {
  for (const auto& r : kRows)
    if (s == r.name) return r.type;
  if (s == "float32") return DType::f32;
  if (s == "float16") return DType::f16;
  if (s == "bfloat16") return DType::bf16;
  if (s == "int32") return DType::i32;
  if (s == "int64") return DType::i64;
  fail("[dtype] unknown dtype '", s, "'");
}
bool is_floating(DType t) {
  return t == DType::f32 || t == DType::f16 || t == DType::bf16 || t == DType::f64;
}
bool is_integer(DType t) {
  switch (t) {
    case DType::i8:
    case DType::u8:
    case DType::i16:
    case DType::i32:
    case DType::i64:
    case DType::i4:
    case DType::u4:
      return true;
    default:
      return false;
  }
}
bool is_signed_integer(DType t) {
  return t == DType::i8 || t == DType::i16 || t == DType::i32 || t == DType::i64 || t == DType::i4;
}
bool is_complex(DType t) { return t == DType::c64; }
bool is_packed(DType t) { return dtype_bits(t) < 8; }
size_t storage_bytes(DType t, int64_t numel) {
  return (static_cast<size_t>(numel) * static_cast<size_t>(dtype_bits(t)) + 7) / 8;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while (!(man & 0x400u)) {
        man <<= 1;
        --exp;
      }
      u = sign | (exp << 23) | ((man & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (man << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t au = u & 0x7fffffffu;
  if (au > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN
  if (au >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (au < 0x38800000u) {                                               // subnormal or zero in f16
    if (au < 0x33000000u) return static_cast<uint16_t>(sign);
    uint32_t exp = au >> 23, man = (au & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - exp;  // 14 + (113 - exp) ... aligns to 2^-24 units
    uint32_t rounded = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (rounded & 1))) ++rounded;
    return static_cast<uint16_t>(sign | rounded);
  }
  uint32_t r = au + 0xfffu + ((au >> 13) & 1u);  // round mantissa to nearest even
  return static_cast<uint16_t>(sign | ((r - 0x38000000u) >> 13));
}

}  // namespace loom
