// FFT / spectral ops through Loom's CUDA backend (cuFFT), the cases of bench/cuda/fft_peer.py
// (torch.fft on the same card): rfft 4096x512, c2c 2^24 and 8192x1024, stft of 30 s of 16 kHz
// audio (n_fft 400, hop 160, hann, center), Whisper's log-mel, and a conv. Executables with one
// graph each, inputs and outputs on the device; timed by host clock around N runs plus a device
// sync after warm-up, random inputs. Prints "name us bytes" lines (bytes: the least a kernel must
// move, for the bandwidth floor) that fft_peer.py --loom reads.
#include <cuda_runtime_api.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "loom/loom.h"

using namespace loom;

namespace {

double time_us(int iters, const std::function<void()>& f) {
  for (int i = 0; i < 3; ++i) f();
  cudaDeviceSynchronize();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) f();
  cudaDeviceSynchronize();
  auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::micro>(t1 - t0).count() / iters;
}

// Uniform in [-1, 1); c64 gets random real and imaginary parts (random_uniform's c64 is real).
NDArray random_input(const Shape& s, DType t, uint64_t seed) {
  if (t != c64) return random_uniform(s, t, -1, 1, seed);
  NDArray parts = random_uniform(Shape({s.numel() * 2}), f32, -1, 1, seed);
  NDArray a = NDArray::empty(c64, s);
  std::memcpy(a.data(), parts.data(), static_cast<size_t>(parts.numel()) * 4);
  return a;
}

struct Case {
  std::string name;
  std::vector<std::pair<Shape, DType>> inputs;
  std::function<std::vector<Tensor>(Graph&, const std::vector<Tensor>&)> build;
  double bytes;
};

}  // namespace

int main() {
  if (cuda_device_count() == 0) {
    std::printf("no CUDA GPU\n");
    return 0;
  }
  const int64_t T = 16000 * 30;
  std::vector<Case> cases = {
      {"rfft_4096x512",
       {{{4096, 512}, f32}},
       [](Graph&, const std::vector<Tensor>& x) { return std::vector<Tensor>{rfft(x[0])}; },
       4096.0 * 512 * 4 + 4096.0 * 257 * 8},
      {"c2c_2^24",
       {{{1 << 24}, c64}},
       [](Graph&, const std::vector<Tensor>& x) { return std::vector<Tensor>{fft(x[0])}; },
       2.0 * (1 << 24) * 8},
      {"c2c_8192x1024",
       {{{8192, 1024}, c64}},
       [](Graph&, const std::vector<Tensor>& x) { return std::vector<Tensor>{fft(x[0])}; },
       2.0 * 8192 * 1024 * 8},
      {"stft_whisper_30s",
       {{{T}, f32}},
       [](Graph& g, const std::vector<Tensor>& x) {
         StftOptions so{.n_fft = 400, .hop = 160, .window = hann_window(g, 400)};
         return std::vector<Tensor>{stft(x[0], so)};
       },
       T * 4.0 + 3001.0 * 201 * 8},
      {"stft_whisper_8x30s",
       {{{8, T}, f32}},
       [](Graph& g, const std::vector<Tensor>& x) {
         StftOptions so{.n_fft = 400, .hop = 160, .window = hann_window(g, 400)};
         return std::vector<Tensor>{stft(x[0], so)};
       },
       8 * (T * 4.0 + 3001.0 * 201 * 8)},
      {"log_mel_whisper_30s",
       {{{T}, f32}},
       [](Graph&, const std::vector<Tensor>& x) {
         return std::vector<Tensor>{log_mel_spectrogram(x[0])};
       },
       T * 4.0 + 80.0 * 3000 * 4},
      // Stages of the log-mel / stft compositions, to see where their time goes.
      {"stage_frames_window_30s",
       {{{T}, f32}},
       [](Graph& g, const std::vector<Tensor>& x) {
         return std::vector<Tensor>{frames(x[0], 400, 160, 200) * hann_window(g, 400)};
       },
       T * 4.0 + 3001.0 * 400 * 4},
      {"stage_power_spectrum_30s",
       {{{T}, f32}},
       [](Graph& g, const std::vector<Tensor>& x) {
         return std::vector<Tensor>{
             square(abs(rfft(frames(x[0], 400, 160, 200) * hann_window(g, 400))))};
       },
       T * 4.0 + 3001.0 * 201 * 4},
      {"stage_transpose_c64_8x3001x201",
       {{{8, 3001, 201}, c64}},
       [](Graph&, const std::vector<Tensor>& x) {
         return std::vector<Tensor>{transpose(x[0], {0, 2, 1})};
       },
       2 * 8 * 3001.0 * 201 * 8},
      {"stage_max_all_3000x80",
       {{{3000, 80}, f32}},
       [](Graph&, const std::vector<Tensor>& x) {
         return std::vector<Tensor>{max(x[0], {}, true)};
       },
       3000.0 * 80 * 4},
      {"stage_mel_matmul_3000x201x80",
       {{{3000, 201}, f32}, {{80, 201}, f32}},
       [](Graph&, const std::vector<Tensor>& x) {
         return std::vector<Tensor>{matmul(x[0], x[1], {.transpose_b = true})};
       },
       (3000.0 * 201 + 80 * 201 + 3000 * 80) * 4},
      {"conv_32x64x56x56_k3",
       {{{32, 64, 56, 56}, f32}, {{64, 64, 3, 3}, f32}},
       [](Graph&, const std::vector<Tensor>& x) {
         return std::vector<Tensor>{conv(x[0], x[1], Tensor(), {.pads = {1, 1, 1, 1}})};
       },
       2.0 * 32 * 64 * 56 * 56 * 4},
  };
  cudaDeviceProp p;
  cudaGetDeviceProperties(&p, 0);
  std::printf("# Loom CUDA on %s\n", p.name);
  for (const auto& c : cases) {
    Graph g;
    std::vector<Tensor> ph;
    Feeds feeds;
    for (size_t i = 0; i < c.inputs.size(); ++i) {
      std::string name = "x" + std::to_string(i);
      ph.push_back(g.placeholder(c.inputs[i].first, c.inputs[i].second, name));
      feeds.emplace_back(name, to_device(random_input(c.inputs[i].first, c.inputs[i].second, 1 + i),
                                         Device::cuda(0)));
    }
    CompileOptions o;
    o.device = Device::cuda(0);
    Executable exe = g.compile(c.build(g, ph), o);
    double us = time_us(50, [&] { exe.run(feeds); });
    std::printf("%s %.2f %.0f\n", c.name.c_str(), us, c.bytes);
    std::fflush(stdout);
  }
  return 0;
}
