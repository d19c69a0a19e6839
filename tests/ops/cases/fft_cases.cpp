// Op cases: complex numbers, FFT ops (any axes, lengths with large prime factors, every scaling
// mode), windows, frames / overlap_add, and the stft / istft / log-mel compositions. The reference
// is a naive double-precision DFT, so transform sizes stay small here; numpy goldens at full
// sizes are in tests/runtime/fft_ops_test.cpp.
#include <cmath>

#include "ops/op_case.h"

namespace loom::testing {
namespace {

using Outs = std::vector<Tensor>;

// c64 results are compared as their real and imaginary parts.
Outs ri(const Tensor& z) { return {real(z), imag(z)}; }

// A complex input of `shape` built from two f32 placeholders.
std::vector<InputSpec> cin(Shape shape) { return {{"re", f32, shape}, {"im", f32, shape}}; }

// Tolerance for transforms of total length v: f32 FFT error grows like eps * sqrt(v) * log(v).
OpCase tol(OpCase c, int64_t v) {
  c.rtol = 1e-4;
  c.atol = 2e-5 * std::sqrt(static_cast<double>(v)) * (1 + std::log2(static_cast<double>(v)));
  return c;
}

OpCase fft_case(const std::string& name, Shape shape, FftAttrs a, int64_t v) {
  return tol({"fft/" + name, cin(shape),
              [a](Graph&, const Outs& in) { return ri(fft(complex(in[0], in[1]), a)); }},
             v);
}
OpCase rfft_case(const std::string& name, Shape shape, FftAttrs a, int64_t v) {
  return tol({"rfft/" + name,
              {{"x", f32, shape}},
              [a](Graph&, const Outs& in) { return ri(rfft(in[0], a)); }},
             v);
}
// irfft of an arbitrary (non-Hermitian) half spectrum: bin 0's imaginary part must be ignored.
OpCase irfft_case(const std::string& name, Shape shape, FftAttrs a, int64_t v) {
  return tol({"irfft/" + name, cin(shape),
              [a](Graph&, const Outs& in) { return Outs{irfft(complex(in[0], in[1]), a)}; }},
             v);
}

std::vector<OpCase> make() {
  using S = FftScaling;
  std::vector<OpCase> c;
  // --- complex elementwise
  c.push_back({"complex/broadcast",
               {{"re", f32, {3, 5}}, {"im", f32, {5}}},
               [](Graph&, const Outs& in) { return ri(complex(in[0], in[1])); }});
  c.push_back({"complex/parts_angle_abs", cin({4, 7}), [](Graph&, const Outs& in) {
                 Tensor z = complex(in[0], in[1]);
                 return Outs{real(conj(z)), imag(conj(z)), angle(z), abs(z), imag(z)};
               }});
  c.push_back({"complex/arithmetic",
               {{"a", f32, {3, 8}}, {"b", f32, {3, 8}}, {"c", f32, {8}}, {"d", f32, {8}}},
               [](Graph&, const Outs& in) {
                 Tensor x = complex(in[0], in[1]), y = complex(in[2], in[3]);
                 Outs o;
                 for (Tensor r : {x + y, x - y, x * y, -x}) {
                   o.push_back(real(r));
                   o.push_back(imag(r));
                 }
                 return o;
               }});
  c.push_back(
      {"complex/div",
       {{"a", f32, {2, 6}},
        {"b", f32, {2, 6}},
        {"c", f32, {2, 6}, {}, 0.5, 2},
        {"d", f32, {2, 6}, {}, 0.5, 2}},
       [](Graph&, const Outs& in) { return ri(complex(in[0], in[1]) / complex(in[2], in[3])); }});
  // --- fft: lengths with radix 2/3/4/5/7/8, generic odd radices and Bluestein primes
  for (int64_t n : {1, 2, 3, 7, 12, 16, 60, 97, 127, 211, 256, 1000})
    c.push_back(fft_case("len" + std::to_string(n), {3, n}, {}, n));
  c.push_back(fft_case("axis0_rank3", {9, 4, 5}, {.axes = {0}}, 9));
  c.push_back(fft_case("axes_0_2", {6, 3, 10}, {.axes = {0, 2}}, 60));
  c.push_back(fft_case("all_axes_reversed", {4, 5, 6}, {.axes = {2, 1, 0}}, 120));
  c.push_back(
      fft_case("inverse_size", {2, 48}, {.axes = {-1}, .inverse = true, .scaling = S::size}, 48));
  c.push_back(fft_case("unitary_2d", {24, 18}, {.axes = {0, 1}, .scaling = S::unitary}, 432));
  c.push_back(fft_case("inverse_none_rank4", {2, 3, 4, 5}, {.axes = {1, 3}, .inverse = true}, 15));
  c.push_back({"fft/ifft_builder", cin({5, 33}),
               [](Graph&, const Outs& in) { return ri(ifft(complex(in[0], in[1]))); }});
  // --- rfft
  for (int64_t n : {1, 2, 5, 16, 31, 100, 384})
    c.push_back(rfft_case("len" + std::to_string(n), {4, n}, {}, n));
  c.push_back(rfft_case("axis0", {14, 3}, {.axes = {0}}, 14));
  c.push_back(rfft_case("axes_1_2_size", {2, 6, 9}, {.axes = {1, 2}, .scaling = S::size}, 54));
  c.push_back(
      rfft_case("axes_2_0_unitary", {8, 3, 10}, {.axes = {2, 0}, .scaling = S::unitary}, 80));
  // --- irfft: even / odd output, explicit length, multi-axis
  c.push_back(irfft_case("even", {3, 9}, {.scaling = S::size}, 16));
  c.push_back(irfft_case("odd_round", {3, 9}, {.scaling = S::size, .round_to_odd = true}, 17));
  c.push_back(irfft_case("length_odd", {2, 11}, {.scaling = S::unitary, .length = 21}, 21));
  c.push_back(irfft_case("one_bin_odd", {4, 1}, {.round_to_odd = true}, 1));
  c.push_back(irfft_case("axes_0_1", {6, 5}, {.axes = {0, 1}, .scaling = S::size}, 48));
  c.push_back(irfft_case("axes_1_0_rank3", {7, 4, 3}, {.axes = {1, 0}, .scaling = S::none}, 24));
  c.push_back(tol({"irfft/roundtrip",
                   {{"x", f32, {3, 45}}},
                   [](Graph&, const Outs& in) {
                     return Outs{irfft(rfft(in[0]), {.scaling = S::size, .length = 45})};
                   }},
                  45));
  // --- windows (times a signal, so the case has an input)
  for (const char* kind : {"hann", "hamming", "blackman", "gaussian"})
    for (bool periodic : {true, false})
      c.push_back({std::string("window/") + kind + (periodic ? "_periodic" : "_symmetric"),
                   {{"x", f32, {2, 17}}},
                   [kind, periodic](Graph& g, const Outs& in) {
                     std::string k = kind;
                     Tensor w = k == "hann"       ? hann_window(g, 17, periodic)
                                : k == "hamming"  ? hamming_window(g, 17, periodic)
                                : k == "blackman" ? blackman_window(g, 17, periodic)
                                                  : gaussian_window(g, 17, 3.5, periodic);
                     return Outs{w, in[0] * w};
                   }});
  // --- frames / overlap_add
  c.push_back({"frames/f32", {{"x", f32, {2, 50}}}, [](Graph&, const Outs& in) {
                 return Outs{frames(in[0], 16, 5)};
               }});
  c.push_back({"frames/i32_rank1_hop_gt_len",
               {{"x", i32, {40}, {}, -50, 50}},
               [](Graph&, const Outs& in) { return Outs{frames(in[0], 4, 7)}; }});
  c.push_back({"frames/reflect_pad_edges", {{"x", f32, {2, 23}}}, [](Graph&, const Outs& in) {
                 return Outs{frames(in[0], 16, 3, 8)};
               }});
  c.push_back({"overlap_add/f32", {{"x", f32, {2, 7, 16}}}, [](Graph&, const Outs& in) {
                 return Outs{overlap_add(in[0], 5)};
               }});
  // --- compositions
  c.push_back(tol({"stft/hann_center",
                   {{"x", f32, {2, 300}}},
                   [](Graph& g, const Outs& in) {
                     return ri(stft(in[0], {.n_fft = 64, .hop = 16, .window = hann_window(g, 64)}));
                   }},
                  64));
  c.push_back(
      tol({"stft/twosided_normalized_nocenter",
           {{"x", f32, {123}}},
           [](Graph&, const Outs& in) {
             return ri(stft(
                 in[0],
                 {.n_fft = 30, .hop = 7, .center = false, .onesided = false, .normalized = true}));
           }},
          30));
  c.push_back(tol({"istft/roundtrip",
                   {{"x", f32, {2, 200}}},
                   [](Graph& g, const Outs& in) {
                     StftOptions o{.n_fft = 40, .hop = 10, .window = hann_window(g, 40)};
                     return Outs{istft(stft(in[0], o), o, 200)};
                   }},
                  40));
  OpCase lm = tol({"log_mel/whisper_small",
                   {{"audio", f32, {1, 3200}, {}, -0.5, 0.5}},
                   [](Graph&, const Outs& in) { return Outs{log_mel_spectrogram(in[0])}; }},
                  400);
  lm.rtol = 1e-3;
  lm.atol = 1e-3;
  c.push_back(lm);
  c.push_back({"log_mel/htk_batch",
               {{"audio", f32, {2, 1000}, {}, -1, 1}},
               [](Graph&, const Outs& in) {
                 return Outs{log_mel_spectrogram(
                     in[0], {.n_fft = 64, .hop = 32, .n_mels = 12, .scale = MelScale::htk})};
               },
               1e-3,
               1e-3});
  return c;
}

LOOM_OP_CASES(make());

}  // namespace
}  // namespace loom::testing
