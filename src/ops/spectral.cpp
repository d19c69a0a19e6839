// Spectral compositions (stft, istft, Whisper's log-mel front end) built from the FFT ops, and the
// host helpers: windows as arrays, frames as a zero-copy strided view, the mel filterbank.
#include <cmath>

#include "loom/ops.h"
#include "ops/spectral_util.h"

namespace loom {
namespace {

int64_t hop_of(const StftOptions& o) { return o.hop > 0 ? o.hop : o.n_fft / 4; }

void check_stft_options(const StftOptions& o, const char* op) {
  LOOM_CHECK(o.n_fft >= 1, "[", op, "] n_fft ", o.n_fft, " must be >= 1");
  LOOM_CHECK(hop_of(o) >= 1, "[", op, "] hop must be >= 1");
  if (o.window.defined()) {
    LOOM_CHECK(o.window.rank() == 1 && o.window.type().shape[0] == o.n_fft, "[", op,
               "] window must be f32 [", o.n_fft, "], got ", o.window.type().to_string());
  }
}

// stft with frames as rows: f32 [..., T] -> c64 [..., frames, bins]. log-mel stays in this layout
// (its filterbank matmul reads rows) and transposes only the small mel result.
Tensor stft_rows(const Tensor& signal, const StftOptions& o) {
  check_stft_options(o, "stft");
  LOOM_CHECK(signal.dtype() == DType::f32, "[stft] signal must be f32, got ",
             dtype_name(signal.dtype()));
  // center: reflect padding folded into the framing (no padded copy of the signal).
  Tensor f = frames(signal, o.n_fft, hop_of(o), o.center ? o.n_fft / 2 : 0);  // [..., F, n_fft]
  if (o.window.defined()) f = f * o.window;
  FftAttrs fa{.axes = {-1}, .scaling = o.normalized ? FftScaling::unitary : FftScaling::none};
  if (o.onesided) return rfft(f, fa);
  return fft(complex(f, f.graph().scalar(0, DType::f32)), fa);
}

Tensor swap_last_two(const Tensor& x) {
  std::vector<int64_t> perm;
  for (int i = 0; i < x.rank(); ++i) perm.push_back(i);
  std::swap(perm[perm.size() - 1], perm[perm.size() - 2]);
  return transpose(x, perm);
}

double hz_to_mel(double f, MelScale s) {
  if (s == MelScale::htk) return 2595.0 * std::log10(1.0 + f / 700.0);
  // Slaney: linear below 1 kHz, logarithmic above (librosa.hz_to_mel, htk=False).
  const double f_sp = 200.0 / 3, min_log_hz = 1000, min_log_mel = min_log_hz / f_sp;
  const double logstep = std::log(6.4) / 27.0;
  return f >= min_log_hz ? min_log_mel + std::log(f / min_log_hz) / logstep : f / f_sp;
}

double mel_to_hz(double m, MelScale s) {
  if (s == MelScale::htk) return 700.0 * (std::pow(10.0, m / 2595.0) - 1.0);
  const double f_sp = 200.0 / 3, min_log_hz = 1000, min_log_mel = min_log_hz / f_sp;
  const double logstep = std::log(6.4) / 27.0;
  return m >= min_log_mel ? min_log_hz * std::exp(logstep * (m - min_log_mel)) : f_sp * m;
}

}  // namespace

NDArray window_array(const std::string& kind, int64_t n, bool periodic, double param, DType dtype) {
  LOOM_CHECK(spectral::valid_window_kind(kind), "[fft] unknown window '", kind, "'");
  LOOM_CHECK(n >= 1, "[fft] window length ", n, " must be >= 1");
  return NDArray::from_doubles(spectral::window_values(kind, n, periodic, param), Shape({n}),
                               dtype);
}

NDArray frames(const NDArray& signal, int64_t frame_length, int64_t hop) {
  LOOM_CHECK(signal.defined() && signal.rank() >= 1, "[fft] frames needs a signal of rank >= 1");
  LOOM_CHECK(!is_packed(signal.dtype()), "[fft] frames does not take packed dtypes");
  LOOM_CHECK(frame_length >= 1 && hop >= 1, "[fft] frame_length and hop must be >= 1");
  int64_t t = signal.shape()[signal.rank() - 1];
  LOOM_CHECK(t >= frame_length, "[fft] signal of ", t, " samples is shorter than one frame of ",
             frame_length);
  std::vector<int64_t> dims = signal.shape().dims(), strides = signal.strides();
  int64_t s = strides.back();
  dims.back() = 1 + (t - frame_length) / hop;
  dims.push_back(frame_length);
  strides.back() = hop * s;  // consecutive frames start `hop` samples apart: rows overlap
  strides.push_back(s);
  return signal.view(Shape(dims), strides, signal.offset());
}

NDArray mel_filterbank(double sample_rate, int64_t n_fft, int64_t n_mels, MelScale scale,
                       double fmin, double fmax) {
  LOOM_CHECK(sample_rate > 0 && n_fft >= 1 && n_mels >= 1, "[fft] mel_filterbank: bad arguments");
  if (fmax < 0) fmax = sample_rate / 2;
  const int64_t bins = n_fft / 2 + 1;
  // librosa.filters.mel: triangles between n_mels + 2 points equally spaced on the mel scale,
  // each scaled to unit area in Hz (norm="slaney").
  std::vector<double> mel_f(static_cast<size_t>(n_mels + 2));
  double lo = hz_to_mel(fmin, scale), hi = hz_to_mel(fmax, scale);
  for (int64_t i = 0; i < n_mels + 2; ++i)
    mel_f[static_cast<size_t>(i)] =
        mel_to_hz(lo + (hi - lo) * static_cast<double>(i) / static_cast<double>(n_mels + 1), scale);
  std::vector<double> w(static_cast<size_t>(n_mels * bins));
  for (int64_t m = 0; m < n_mels; ++m) {
    auto mi = static_cast<size_t>(m);
    double f0 = mel_f[mi], f1 = mel_f[mi + 1], f2 = mel_f[mi + 2];
    double enorm = 2.0 / (f2 - f0);
    for (int64_t k = 0; k < bins; ++k) {
      double f = sample_rate / 2 * static_cast<double>(k) / static_cast<double>(bins - 1);
      if (bins == 1) f = 0;
      double lower = (f - f0) / (f1 - f0), upper = (f2 - f) / (f2 - f1);
      w[static_cast<size_t>(m * bins + k)] = std::max(0.0, std::min(lower, upper)) * enorm;
    }
  }
  return NDArray::from_doubles(w, Shape({n_mels, bins}), DType::f32);
}

Tensor stft(const Tensor& signal, const StftOptions& o) {
  LOOM_CHECK(signal.defined(), "[stft] signal is undefined");
  return swap_last_two(stft_rows(signal, o));
}

Tensor istft(const Tensor& spectrum, const StftOptions& o, int64_t length) {
  check_stft_options(o, "istft");
  LOOM_CHECK(spectrum.defined() && spectrum.dtype() == DType::c64 && spectrum.rank() >= 2,
             "[istft] spectrum must be c64 [..., bins, frames]");
  int64_t bins = spectrum.type().shape[spectrum.rank() - 2];
  int64_t want = o.onesided ? o.n_fft / 2 + 1 : o.n_fft;
  LOOM_CHECK(bins == kDynamic || bins == want, "[istft] spectrum has ", bins, " bins, n_fft ",
             o.n_fft, " needs ", want);
  Graph g = spectrum.graph();
  Tensor x = swap_last_two(spectrum);  // [..., F, bins]
  FftScaling sc = o.normalized ? FftScaling::unitary : FftScaling::size;
  Tensor f = o.onesided ? irfft(x, {.axes = {-1}, .scaling = sc, .length = o.n_fft})
                        : real(ifft(x, {-1}, sc));  // [..., F, n_fft]
  Tensor wsq;
  if (o.window.defined()) {
    f = f * o.window;
    wsq = square(o.window);
  } else {
    wsq = g.constant(full({o.n_fft}, 1.0));
  }
  Tensor y = overlap_add(f, hop_of(o));
  // The window envelope sum_f w^2(t - f*hop), from frames of f's shape. With a static frame count
  // it is a constant (folded); otherwise `where(f == f, ...)` broadcasts w^2 to f's shape.
  Shape fs = f.shape();
  Tensor frames_w2 = fs[fs.rank() - 2] != kDynamic ? expand(wsq, {fs[fs.rank() - 2], o.n_fft})
                                                   : where(equal(f, f), wsq, wsq);
  Tensor env = overlap_add(frames_w2, hop_of(o));
  y = y / env;
  int64_t start = o.center ? o.n_fft / 2 : 0;
  int64_t end = length > 0 ? start + length : (o.center ? -(o.n_fft / 2) : kSliceEnd);
  if (end == 0) end = kSliceEnd;
  return slice(y, {start}, {end}, {y.rank() - 1});
}

Tensor log_mel_spectrogram(const Tensor& audio, const LogMelOptions& o) {
  LOOM_CHECK(audio.defined() && audio.rank() >= 1, "[log_mel_spectrogram] audio must be [..., T]");
  Graph g = audio.graph();
  StftOptions so{.n_fft = o.n_fft, .hop = o.hop, .window = hann_window(g, o.n_fft)};
  Tensor spec = stft_rows(audio, so);                   // c64 [..., F, bins]
  Tensor power = square(abs(spec));                     // |X|^2
  power = slice(power, {0}, {-1}, {power.rank() - 2});  // Whisper drops the last frame
  // filters @ magnitudes, with frames as rows: power [..., F-1, bins] x filtersᵀ [bins, n_mels].
  NDArray fb = mel_filterbank(o.sample_rate, o.n_fft, o.n_mels, o.scale);
  Tensor mel = matmul(power, g.constant(fb), {.transpose_b = true});
  Tensor l = log(clamp(mel, 1e-10, 1e300)) * (1.0 / std::log(10.0));
  // The floor is 8 below the maximum over the whole tensor (every batch element), as Whisper.
  l = maximum(l, max(l, {}, true) - 8.0);
  return swap_last_two((l + 4.0) * 0.25);  // [..., n_mels, F-1]
}

}  // namespace loom
