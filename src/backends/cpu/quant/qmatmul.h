// backends/cpu/quant/qmatmul.h — quantized-weight matmul kernels for the CPU.
//
//   y[m, n] = x[m, k] · W[n, k]^T
//
// x and y are dense row-major f32. W is row-major by n: row j is k / block_size(fmt) consecutive
// blocks of `fmt`, row_bytes(fmt, k) bytes, rows packed back to back (no padding). The graph op
// `quantized_matmul` and the GGUF loader hand raw pointers to these functions.
//
// Block layouts (all multi-byte fields little-endian; "f16" is IEEE half). The ggml formats are
// byte-for-byte those of ggml/llama.cpp (GGUF tensor types), so GGUF data is used without
// repacking.
//
//   q4_0   32 elems, 18 B: f16 d; u8 qs[16].
//          elem j (j < 16) = (qs[j] & 15) - 8,  elem j + 16 = (qs[j] >> 4) - 8;  x = q·d
//   q4_1   32 elems, 20 B: f16 d; f16 m; u8 qs[16].  nibbles as q4_0, unsigned 0..15;  x = q·d + m
//   q8_0   32 elems, 34 B: f16 d; i8 qs[32].  x = qs[j]·d
//   q5_0   32 elems, 22 B: f16 d; u8 qh[4]; u8 qs[16].  h = qh as u32; 5th bit of elem j is bit j
//          of h (elems 0..15 take bits 0..15 with the low nibbles, elems 16..31 bits 16..31 with
//          the high nibbles);  x = (q − 16)·d
//   q5_1   32 elems, 24 B: f16 d; f16 m; u8 qh[4]; u8 qs[16].  bits as q5_0;  x = q·d + m
//   iq4_nl 32 elems, 18 B: f16 d; u8 qs[16]; nibbles ordered as q4_0;  x = d·T[q] with the fixed
//          table T = {-127,-104,-83,-65,-49,-35,-22,-10,1,13,25,38,53,69,89,113}
//   q4_k   256 elems (8 sub-blocks of 32), 144 B: f16 d; f16 dmin; u8 scales[12]; u8 qs[128].
//          Sub-block s has a 6-bit scale sc_s and 6-bit min m_s packed in `scales`:
//            s < 4:  sc = scales[s] & 63,  m = scales[s + 4] & 63
//            s >= 4: sc = (scales[s + 4] & 15) | (scales[s - 4] >> 6) << 4,
//                    m  = (scales[s + 4] >> 4) | (scales[s] >> 6) << 4
//          Chunk c (0..3) of 64 elems uses qs[32c .. 32c+32): elem 64c + l is the low nibble of
//          qs[32c + l] (sub-block 2c), elem 64c + 32 + l the high nibble (sub-block 2c + 1).
//          x = (d·sc_s)·q − (dmin·m_s)
//   q5_k   256 elems, 176 B: f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128].  As q4_k, and
//          the 5th bit of the elem in sub-block s at position l (0..31) is bit s of qh[l].
//          x = (d·sc_s)·q − (dmin·m_s)
//   q6_k   256 elems (16 sub-blocks of 16), 210 B: u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d.
//          Half h (0,1) of 128 elems uses ql[64h..], qh[32h..]; for l < 32, in that half:
//            elem l      = ql[l] & 15      | ((qh[l] >> 0) & 3) << 4
//            elem l + 32 = ql[l + 32] & 15 | ((qh[l] >> 2) & 3) << 4
//            elem l + 64 = ql[l] >> 4      | ((qh[l] >> 4) & 3) << 4
//            elem l + 96 = ql[l + 32] >> 4 | ((qh[l] >> 6) & 3) << 4
//          x = d·scales[e / 16]·(q − 32)  (e = element index within the 256-block)
//   affine_u4 (Loom) 32 elems, 20 B: f16 scale; f16 zero_point; u8 qs[16].
//          elem 2i = qs[i] & 15 (low nibble = even index, the dtype u4 convention), elem 2i + 1 =
//          qs[i] >> 4;  x = (q − zero_point)·scale.  zero_point is real-valued (f16), 0..15.
//   affine_i8 (Loom) 32 elems, 36 B: f16 scale; f16 zero_point; i8 qs[32].
//          x = (qs[j] − zero_point)·scale.
//
// Kernels. q4_0, q4_1, q8_0, affine_u4 and affine_i8 run on integer dot products: each call
// quantizes x once to int8 blocks of 32 (scale = max|x|/127, round to nearest, like ggml's
// q8_0/q8_1 activations), then uses AVX-512 VNNI (vpdpbusd), AVX2 (vpmaddubsw) or portable scalar
// code, chosen at run time. The relative error this adds is that of int8 activations (≤ 1/254 of
// each block's max |x| per element). The other formats dequantize each weight row to f32 once per
// call and use f32 dot products (exact up to f32 rounding). Work is split over n on `pool` (null:
// the calling thread); for m > 1 each tile of weight rows is reused across all rows of x.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace loom {
class ThreadPool;
}

namespace loom::cpu::quant {

enum class Format : uint8_t {
  q4_0,
  q4_1,
  q8_0,
  q5_0,
  q5_1,
  q4_k,
  q5_k,
  q6_k,
  iq4_nl,
  affine_u4,  // Loom's own: per-32 f16 scale + f16 zero point, u4 packed
  affine_i8,  // Loom's own: per-32 f16 scale + f16 zero point, i8
};
inline constexpr int kNumFormats = 11;

std::string_view format_name(Format fmt);  // "q4_0", ..., "affine_i8"
// The format named `name`; throws loom::Error naming it when there is none.
Format format_from_name(std::string_view name);
int64_t block_size(Format fmt);  // elements per block: 32 or 256
size_t block_bytes(Format fmt);  // bytes per block
// Bytes of one row of k elements; throws loom::Error if k is not a multiple of block_size.
size_t row_bytes(Format fmt, int64_t k);
// True when qmatmul uses int8 activations and integer dot products for this format.
bool uses_integer_dot(Format fmt);

// Scalar reference decode of one row of k elements (k a multiple of the block size).
void dequantize_row(Format fmt, const void* row, int64_t k, float* out);
// Encodes one row. ggml formats: a simple round-to-nearest encoder producing valid blocks (q4_0,
// q4_1, q8_0, q5_0, q5_1 follow ggml's reference encoder; k-quants and iq4_nl use a plain
// min/max scale search, not ggml's iterative one). Loom formats: min/max affine, see the .cpp.
void quantize_row(Format fmt, const float* in, int64_t k, void* row);

// y[m, n] = x[m, k] · W[n, k]^T. Throws loom::Error on bad arguments (k not a multiple of the
// block size, negative sizes, null pointers with non-empty sizes). y is fully overwritten.
void qmatmul(Format fmt, const float* x, int64_t m, int64_t k, const void* w, int64_t n, float* y,
             ThreadPool* pool);

// Instruction-set selection. The default is the best the CPU supports, or the value of the
// environment variable LOOM_QUANT_ISA (scalar | avx2 | avx512) read once. set_isa overrides both
// (used by tests to force each path); asking for a path the CPU lacks throws loom::Error.
enum class Isa : uint8_t { scalar, avx2, avx512_vnni };
std::string_view isa_name(Isa isa);
Isa detected_isa();  // best supported by this CPU
Isa active_isa();    // what qmatmul uses now
void set_isa(Isa isa);

}  // namespace loom::cpu::quant
