// backends/cpu/fft/fft.h — Loom's own CPU FFT on raw strided pointers.
//
// The graph ops fft / ifft / rfft / irfft / stft call these. All lengths are supported: mixed-radix
// Stockham passes (radix 2, 3, 4, 5, 7, 8 and a generic odd radix for primes up to 61) and
// Bluestein (chirp-z over a 2^a 3^b 5^c FFT) for lengths with a larger prime factor. Plans are
// built once per (length, kind) and cached. Strides and distances are counted in elements of the
// pointed-to type (complex or real) and may be negative. Input and output must either not overlap
// or be exactly the same array with the same strides (in place).
//
// Conventions follow numpy.fft: the forward transform uses exp(-2*pi*i*j*k/n), the inverse
// exp(+2*pi*i*j*k/n), and `Scaling` multiplies the result of *this call* by 1, 1/n or 1/sqrt(n).
// (numpy's norm="backward" is: forward Scaling::none, inverse Scaling::size.)
#pragma once
#include <complex>
#include <cstdint>
#include <span>

namespace loom {
class ThreadPool;
}

namespace loom::cpu::fft {

enum class Scaling { none, size, unitary };  // multiply by 1, 1/n, 1/sqrt(n)

// `count` complex transforms of length n; transform b reads in[b*in_dist + j*in_stride].
void c2c(const std::complex<float>* in, int64_t in_stride, int64_t in_dist,
         std::complex<float>* out, int64_t out_stride, int64_t out_dist, int64_t n, int64_t count,
         bool inverse, Scaling s, ThreadPool* pool);

// Real to half spectrum: n real inputs, n/2+1 complex outputs per transform (forward sign).
void r2c(const float* in, int64_t in_stride, int64_t in_dist, std::complex<float>* out,
         int64_t out_stride, int64_t out_dist, int64_t n, int64_t count, Scaling s,
         ThreadPool* pool);

// Half spectrum to real: reads n/2+1 complex values, writes n reals (inverse sign). n may be odd
// or even; the imaginary parts of bin 0 (and of bin n/2 for even n) are ignored, as numpy does.
void c2r(const std::complex<float>* in, int64_t in_stride, int64_t in_dist, float* out,
         int64_t out_stride, int64_t out_dist, int64_t n, int64_t count, Scaling s,
         ThreadPool* pool);

// N-D transforms over `axes` (any order, each listed once; negative counts from the end) of a
// strided array of rank shape.size(). `shape` is the logical (complex / real) shape; strides are
// in elements. Scaling applies per axis, so Scaling::size divides by the product of the lengths.
void c2c_nd(const std::complex<float>* in, std::span<const int64_t> in_strides,
            std::complex<float>* out, std::span<const int64_t> out_strides,
            std::span<const int64_t> shape, std::span<const int> axes, bool inverse, Scaling s,
            ThreadPool* pool);

// rfftn: `shape` is the real input's shape; the output has shape[last axis] / 2 + 1 along the last
// listed axis, which is the real one. The other axes are complex passes done in place on `out`.
void r2c_nd(const float* in, std::span<const int64_t> in_strides, std::complex<float>* out,
            std::span<const int64_t> out_strides, std::span<const int64_t> shape,
            std::span<const int> axes, Scaling s, ThreadPool* pool);

// irfftn: `shape` is the real output's shape; the input has shape[last axis] / 2 + 1 along the
// last listed axis. The input is not modified (a complex temporary holds the inner passes).
void c2r_nd(const std::complex<float>* in, std::span<const int64_t> in_strides, float* out,
            std::span<const int64_t> out_strides, std::span<const int64_t> shape,
            std::span<const int> axes, Scaling s, ThreadPool* pool);

// Which instruction set the kernels use ("avx512", "avx2" or "scalar"); tests and benchmarks
// force one with set_isa (returns false if this CPU lacks it). LOOM_FFT_ISA sets the default.
const char* isa_name();
bool set_isa(const char* name);

}  // namespace loom::cpu::fft
