// loom/ops.h — the op set as free functions (and operators on Tensor).
//
// Every op infers its output type when it is added; mistakes throw loom::Error naming the op and
// its input types. Elementwise ops broadcast by numpy rules and require equal dtypes (cast
// explicitly: Loom never promotes silently). Dims may be dynamic (-1) everywhere.
#pragma once
#include <string>
#include <vector>

#include "loom/attrs.h"
#include "loom/graph.h"

namespace loom {

// --- elementwise binary -----------------------------------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);  // integers: truncates toward zero
Tensor pow(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor mod(const Tensor& a, const Tensor& b);  // sign of the divisor, like numpy

// --- elementwise unary ------------------------------------------------------------------------
Tensor neg(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sign(const Tensor& x);
Tensor square(const Tensor& x);
Tensor reciprocal(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor silu(const Tensor& x);
Tensor gelu(const Tensor& x, bool tanh_approximation = false);
Tensor erf(const Tensor& x);
Tensor floor(const Tensor& x);
Tensor ceil(const Tensor& x);
Tensor round(const Tensor& x);  // half to even
Tensor clamp(const Tensor& x, double min, double max);

// --- comparison and logic (bool results) --------------------------------------------------------
Tensor equal(const Tensor& a, const Tensor& b);
Tensor not_equal(const Tensor& a, const Tensor& b);
Tensor less(const Tensor& a, const Tensor& b);
Tensor less_equal(const Tensor& a, const Tensor& b);
Tensor greater(const Tensor& a, const Tensor& b);
Tensor greater_equal(const Tensor& a, const Tensor& b);
Tensor logical_and(const Tensor& a, const Tensor& b);
Tensor logical_or(const Tensor& a, const Tensor& b);
Tensor logical_xor(const Tensor& a, const Tensor& b);
Tensor logical_not(const Tensor& x);
// cond ? a : b, broadcasting all three (MPSGraph: select).
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// Floats to integers truncate toward zero and saturate; anything to bool is != 0.
Tensor cast(const Tensor& x, DType dtype);

// --- reductions -------------------------------------------------------------------------------
// Empty `axes` reduces over every axis.
Tensor sum(const Tensor& x, std::vector<int64_t> axes = {}, bool keepdims = false);
Tensor mean(const Tensor& x, std::vector<int64_t> axes = {}, bool keepdims = false);
Tensor max(const Tensor& x, std::vector<int64_t> axes = {}, bool keepdims = false);
Tensor min(const Tensor& x, std::vector<int64_t> axes = {}, bool keepdims = false);
Tensor prod(const Tensor& x, std::vector<int64_t> axes = {}, bool keepdims = false);
// Index (i64) of the first maximum / minimum along `axis`.
Tensor argmax(const Tensor& x, int64_t axis, bool keepdims = false);
Tensor argmin(const Tensor& x, int64_t axis, bool keepdims = false);

// --- sampling -----------------------------------------------------------------------------------
// One token id (i32) per row of `logits` [..., V] (f32 / f16 / bf16), the last axis removed, drawn
// as LLM generation does: keep the top_k largest logits (0: all; ties: lower index first), divide
// by `temperature`, softmax over them, keep the smallest prefix in descending probability order
// (ties: lower index first) whose mass reaches top_p (at least one; top_p = 1 keeps all),
// renormalise and pick with one uniform u in [0, 1) per row:
//   u = (splitmix64(seed ^ (row * 0x9E3779B97F4A7C15)) >> 11) * 2^-53
// (row: the flat index of the row; splitmix64 as in Vigna's reference), the pick being the first
// candidate whose cumulative mass exceeds u times the kept mass. `seed` is a scalar i64 tensor, so
// a prepared run feeds a new value per step without recompiling. Every backend computes the same
// u, and the probabilities in double, so all pick the same token unless u falls within rounding
// of a bucket boundary. The CUDA kernel is fast for top_k <= 1024 (sampling.cu). NaN logits count
// as -inf; when the largest kept logit is not finite the pick is the first candidate.
// Errors: temperature <= 0, top_k < 0, top_p outside (0, 1], other dtypes, V == 0.
Tensor sample(const Tensor& logits, const Tensor& seed, SampleAttrs options = {});

// --- normalization ----------------------------------------------------------------------------
Tensor softmax(const Tensor& x, int64_t axis = -1);
Tensor log_softmax(const Tensor& x, int64_t axis = -1);
// Normalises over axes [axis, rank); gamma/beta (optional) have the normalised dims' shape.
Tensor layer_norm(const Tensor& x, const Tensor& gamma = {}, const Tensor& beta = {},
                  NormAttrs options = {});
Tensor rms_norm(const Tensor& x, const Tensor& gamma = {},
                NormAttrs options = {.axis = -1, .eps = 1e-6});
// {a + b, rms_norm(a + b, gamma)} in one kernel: a residual add and the norm that follows it (the
// sum is returned too, for the next residual). a and b broadcast as in `add`; the norm reads the
// sum as stored (rounded to the dtype), so both outputs equal the unfused ops' up to f32 rounding.
// The fuse_add_rms_norm pass makes it from add → rms_norm.
std::vector<Tensor> add_rms_norm(const Tensor& a, const Tensor& b, const Tensor& gamma = {},
                                 NormAttrs options = {.axis = -1, .eps = 1e-6});

// --- linear algebra ---------------------------------------------------------------------------
// numpy matmul: batch dims broadcast; 1-D operands get a dim added and removed.
Tensor matmul(const Tensor& a, const Tensor& b, MatmulAttrs options = {});

// --- shape and data movement ------------------------------------------------------------------
// -1 in `shape` infers one dim, 0 keeps the input's dim at that position. Zero-copy.
Tensor reshape(const Tensor& x, std::vector<int64_t> shape);
Tensor squeeze(const Tensor& x, std::vector<int64_t> axes = {});  // empty: every size-1 dim
Tensor unsqueeze(const Tensor& x, std::vector<int64_t> axes);
Tensor expand(const Tensor& x, std::vector<int64_t> shape);  // numpy broadcast_to; -1 keeps dim
Tensor transpose(const Tensor& x, std::vector<int64_t> perm = {});  // empty: reverse the axes
Tensor permute(const Tensor& x, std::vector<int64_t> perm);
Tensor concat(const std::vector<Tensor>& xs, int64_t axis);
std::vector<Tensor> split(const Tensor& x, std::vector<int64_t> sizes, int64_t axis);
// numpy basic slicing on `axes` (default: the first starts.size() axes). Negative starts/ends
// count from the end; out-of-range ends clamp; kSliceEnd means "to the end"; steps may be < 0.
Tensor slice(const Tensor& x, std::vector<int64_t> starts, std::vector<int64_t> ends,
             std::vector<int64_t> axes = {}, std::vector<int64_t> steps = {});
// numpy take along `axis`; negative indices count from the end; out of range is a run-time error.
Tensor gather(const Tensor& x, const Tensor& indices, int64_t axis = 0);
Tensor pad(const Tensor& x, std::vector<int64_t> before, std::vector<int64_t> after,
           PadMode mode = PadMode::constant, double value = 0);
Tensor tile(const Tensor& x, std::vector<int64_t> reps);
Tensor flip(const Tensor& x, std::vector<int64_t> axes);
Tensor arange(Graph& g, double start, double stop, double step = 1, DType dtype = DType::i64);

// --- KV cache: tensor-valued offsets, static sizes -----------------------------------------------
// x[starts : starts + sizes] where `starts` is an i32/i64 vector computed in the graph (e.g. the
// decode position): one executable serves every step. Out-of-range starts are a run-time error.
Tensor slice(const Tensor& x, const Tensor& starts, std::vector<int64_t> sizes);
// x with `update` written at `starts` (MPSGraph: sliceUpdateDataTensor). When the result is
// assigned back to the variable that x was read from, the compiler writes only the slice into the
// variable in place (pass `inplace_variable_update`). The result has x's type: an update of another
// float dtype is converted to x's (rounded to nearest, as cast; numpy's x[idx] = update), any other
// dtype must be x's.
Tensor slice_update(const Tensor& x, const Tensor& update, const Tensor& starts);
Tensor slice_update(const Tensor& x, const Tensor& update, std::vector<int64_t> starts);

// --- transformers -------------------------------------------------------------------------------
struct SdpaOptions {
  Tensor mask;          // bool (true = attend) or additive float, broadcastable to [B,Hq,Lq,Lk]
  bool causal = false;  // query i sits at position kv_len - Lq + i
  double scale = 0;     // 0: 1/sqrt(D)
  Tensor kv_len;        // i32/i64 scalar: attend keys [0, kv_len) of a fixed-size cache
};
// softmax(scale · q kᵀ + mask) v, fused (flash-style; never materialises Lq×Lk). q [B,Hq,Lq,D],
// k [B,Hkv,Lk,D], v [B,Hkv,Lk,Dv], Hq a multiple of Hkv (grouped-query attention without copies).
// f32 accumulation and softmax for every input dtype; a fully masked row gives zeros.
Tensor sdpa(const Tensor& q, const Tensor& k, const Tensor& v, const SdpaOptions& options = {});
// Rotary position embedding on x [B,H,L,D] at positions [L] or [B,L] (i32/i64, from a tensor).
Tensor rope(const Tensor& x, const Tensor& positions, RopeAttrs options = {});

// --- quantization -------------------------------------------------------------------------------
// x ≈ (q − zero_point) · scale (MPSGraph: dequantize). Granularity follows the scale's shape: one
// value (per tensor), q.shape[axis] values (per axis), or q's shape with dim `axis` divided into
// blocks of block_size (per block; MPSGraph passes block scales as tensors exactly so). The
// zero point is optional (0) and has the scale's shape. Computed in f32, result in options.dtype.
Tensor dequantize(const Tensor& q, const Tensor& scale, const Tensor& zero_point = {},
                  QuantAttrs options = {});
// q = clamp(round_half_even(x / scale) + zero_point) to options.dtype's range (i8 u8 i4 u4 ...).
Tensor quantize(const Tensor& x, const Tensor& scale, const Tensor& zero_point = {},
                QuantAttrs options = {.axis = -1, .block_size = 0, .dtype = DType::i8});
// table[q] with 16 (u4) or 256 (u8) entries; table [entries] or one per row: [q.shape[0], entries].
Tensor dequantize_lut(const Tensor& indices, const Tensor& table, DType dtype = DType::f32);
// Rows of a block format (GGUF q4_0 ... or Loom affine_u4 / affine_i8): u8 [..., row_bytes] → f32
// [..., k].
Tensor dequantize_blocks(const Tensor& packed, const std::string& format, int64_t k);
// y = x · Wᵀ where W [n, k] is stored in a block format (the fused form; see also the
// `quantized_matmul` pass that produces it from dequantize → matmul).
Tensor quantized_matmul(const Tensor& x, const Tensor& packed, const std::string& format, int64_t n,
                        int64_t k);
// {a + b, quantized_matmul(rms_norm(a + b, gamma) over the last axis, packed)}: add_rms_norm and
// the block-format GEMM that consumes its norm, in one op (the normed x is never stored on GPUs).
// Made by the fuse_add_rms_norm_into_quantized_matmul pass from add_rms_norm → quantized_matmul.
std::vector<Tensor> add_rms_norm_quantized_matmul(const Tensor& a, const Tensor& b,
                                                  const Tensor& gamma, const Tensor& packed,
                                                  const std::string& format, int64_t n, int64_t k,
                                                  double eps = 1e-6);
// quantized_matmul(silu(g) · u, packed, format, n, k) where [g, u] are the halves of p [..., 2k]
// along the last axis: a gated FFN's SwiGLU and its down projection (p: the gate / up product,
// gate first). On GPUs the decode GEMV forms x where it quantizes it (x is never stored). Made by
// the fuse_swiglu_into_quantized_matmul pass from slice, slice → silu · mul → quantized_matmul.
Tensor swiglu_quantized_matmul(const Tensor& p, const Tensor& packed, const std::string& format,
                               int64_t n, int64_t k);

// --- complex numbers, FFT and spectral ops (issue 6) ---------------------------------------------
// c64 tensors: add/sub/mul/div/neg take c64 operands; abs of c64 is its f32 magnitude.
Tensor complex(const Tensor& re, const Tensor& im);  // f32, f32 (broadcast) -> c64
Tensor real(const Tensor& x);                        // c64 -> f32
Tensor imag(const Tensor& x);                        // c64 -> f32
Tensor conj(const Tensor& x);                        // c64 -> c64
Tensor angle(const Tensor& x);                       // c64 -> f32, atan2(im, re)
// MPSGraph fastFourierTransform: c64 -> c64 over any set of axes, any lengths. `inverse` flips the
// sign of the exponent and does not scale (numpy's ifft is inverse + FftScaling::size).
Tensor fft(const Tensor& x, FftAttrs options = {});
Tensor ifft(const Tensor& x, std::vector<int64_t> axes = {-1},
            FftScaling scaling = FftScaling::size);  // numpy.fft.ifftn
// MPSGraph realToHermiteanFFT: f32 -> c64; the last listed axis becomes n/2 + 1 long.
Tensor rfft(const Tensor& x, FftAttrs options = {});
// MPSGraph HermiteanToRealFFT: c64 -> f32 (inverse sign, scaled by `scaling` only); the last listed
// axis (m bins) becomes options.length, or 2(m-1) (+1 with round_to_odd). numpy's irfftn is
// scaling = size with length = n.
Tensor irfft(const Tensor& x, FftAttrs options = {});
// Window functions as creation ops (constant-folded). Periodic windows (the default, as in
// torch.hann_window and scipy's fftbins=True) are the symmetric window of length n + 1 without its
// last sample.
Tensor hann_window(Graph& g, int64_t n, bool periodic = true);
Tensor hamming_window(Graph& g, int64_t n, bool periodic = true);
Tensor blackman_window(Graph& g, int64_t n, bool periodic = true);
Tensor gaussian_window(Graph& g, int64_t n, double std, bool periodic = true);
// The window values on the host (double precision, then `dtype`): kind hann|hamming|blackman|
// gaussian (param = gaussian std).
NDArray window_array(const std::string& kind, int64_t n, bool periodic = true, double param = 0,
                     DType dtype = DType::f32);
// Overlapping frames of the last axis: [..., T] -> [..., 1 + (T - frame_length) / hop,
// frame_length]. The NDArray form is a zero-copy strided view (MPSNDArray arrayView); the graph op
// writes the frames into its output (the only copy), its CPU kernel reading the signal in place.
// `reflect_pad` (graph op only) frames the signal as if reflect-padded by that many samples on
// each side (numpy pad mode "reflect", torch.stft center=True) without building the padded copy.
NDArray frames(const NDArray& signal, int64_t frame_length, int64_t hop);
Tensor frames(const Tensor& signal, int64_t frame_length, int64_t hop, int64_t reflect_pad = 0);
// The inverse arrangement: sums [..., F, L] frames placed `hop` apart into [..., (F-1)*hop + L].
Tensor overlap_add(const Tensor& frames, int64_t hop);

struct StftOptions {
  int64_t n_fft = 400;
  int64_t hop = 0;          // 0: n_fft / 4
  Tensor window;            // [n_fft] f32; undefined: rectangular (ones), as torch.stft
  bool center = true;       // reflect-pad n_fft/2 samples on each side (torch pad_mode="reflect")
  bool onesided = true;     // n_fft/2 + 1 bins (rfft) or all n_fft (fft of the real frames)
  bool normalized = false;  // multiply by 1/sqrt(n_fft)
};
// torch.stft(return_complex=True): f32 [..., T] -> c64 [..., bins, frames].
Tensor stft(const Tensor& signal, const StftOptions& options = {});
// torch.istft: c64 [..., bins, frames] -> f32 [..., length] (length 0: (frames-1)*hop, less
// the center padding). Overlap-add divided by the summed squared window.
Tensor istft(const Tensor& spectrum, const StftOptions& options = {}, int64_t length = 0);

enum class MelScale { slaney, htk };
struct LogMelOptions {
  int64_t n_fft = 400;
  int64_t hop = 160;
  int64_t n_mels = 80;
  double sample_rate = 16000;
  MelScale scale = MelScale::slaney;
};
// librosa.filters.mel (norm="slaney"): f32 [n_mels, n_fft/2 + 1], computed on the host.
NDArray mel_filterbank(double sample_rate, int64_t n_fft, int64_t n_mels,
                       MelScale scale = MelScale::slaney, double fmin = 0, double fmax = -1);
// Whisper's front end (whisper/audio.py log_mel_spectrogram): f32 [..., T] -> f32 [..., n_mels,
// T / hop]: hann stft (center, reflect), last frame dropped, |X|^2, mel filters, log10 of
// max(mel, 1e-10), floored at (global max - 8), then (x + 4) / 4.
Tensor log_mel_spectrogram(const Tensor& audio, const LogMelOptions& options = {});

// Stores the constant weights of every matmul (2-D float constants with at least min_elements) in
// `bits` bits: affine per block of `block` along the contraction axis, or a per-row lookup table
// (k-means). Returns the new graph and rewrites `outputs` to its tensors; compiling it fuses each
// dequantize → matmul into quantized_matmul. `log` (optional) lists what was quantized.
struct QuantizeWeightsOptions {
  int bits = 4;
  int64_t block = 32;
  enum class Mode { affine, lut } mode = Mode::affine;
  int64_t min_elements = 4096;
};
Graph quantize_weights(const Graph& graph, std::vector<Tensor>& outputs,
                       const QuantizeWeightsOptions& options = {},
                       std::vector<std::string>* log = nullptr);

// --- convolution and pooling (NC... layout, 1 or 2 spatial dims; ONNX semantics) -------------
// x [B, C, spatial...], w [O, C / groups, k...], bias [O] (optional) -> [B, O, out...].
Tensor conv(const Tensor& x, const Tensor& w, const Tensor& bias = {}, ConvAttrs options = {});
// Padding never wins a max; avg_pool divides as PoolAttrs::count_include_pad says.
Tensor max_pool(const Tensor& x, PoolAttrs options);
Tensor avg_pool(const Tensor& x, PoolAttrs options);
// Reduce every spatial dim, keeping each as size 1: [B, C, spatial...] -> [B, C, 1...].
Tensor global_max_pool(const Tensor& x);
Tensor global_avg_pool(const Tensor& x);

// --- operators --------------------------------------------------------------------------------
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& x);
// With a scalar: the scalar becomes a constant of the tensor's dtype.
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);

// --- calls (MPSGraph callables) ---------------------------------------------------------------
struct CallOptions {
  // While no executable is bound to the symbol, return zeros of the declared types (dynamic dims
  // taken from the same axes of input 0) instead of failing the run. For adapters added to a
  // base model's values (LoRA): unbound, the base model computes exactly what it did without.
  bool optional = false;
};
// Runs the executable bound to `symbol` (CompileOptions::callables when the caller is compiled,
// or Executable::bind later) on `inputs` (at least one), in the callee's input order, and
// returns its outputs, which must fit `output_types` (dims may be -1: resolved per run by the
// callee). Compiling checks the callee's signature against the call site.
std::vector<Tensor> call(const std::string& symbol, const std::vector<Tensor>& inputs,
                         const std::vector<TensorType>& output_types,
                         const CallOptions& options = {});

}  // namespace loom
