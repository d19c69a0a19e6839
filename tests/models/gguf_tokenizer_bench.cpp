// Timings for docs/benchmarks/gguf.md: GGUF open (mmap + parse + validate), to_f32 of every
// tensor, tokenizer construction and encoding. Peer figures come from
// scripts/bench_gguf_tokenizer_peer.py in the same session. Usage: gguf_tokenizer_bench [model]
#include <chrono>
#include <cstdio>
#include <string>

#include "io/gguf.h"
#include "models/tokenizer.h"

using Clock = std::chrono::steady_clock;
static double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

int main(int argc, char** argv) {
  std::string path = argc > 1 ? argv[1] : loom::io::find_smollm2_gguf();
  if (path.empty()) {
    std::fprintf(stderr, "SmolLM2 GGUF not found\n");
    return 1;
  }
  const int reps = 20;
  auto t = Clock::now();
  for (int i = 0; i < reps; ++i) loom::io::GgufFile::open(path);
  double open_s = since(t) / reps;
  loom::io::GgufFile f = loom::io::GgufFile::open(path);
  std::printf("open+parse: %.2f ms (%zu tensors, %zu keys)\n", open_s * 1e3, f.tensors().size(),
              f.keys().size());

  double bytes_in = 0, elems = 0;
  t = Clock::now();
  for (const auto& x : f.tensors()) {
    loom::NDArray a = loom::io::to_f32(x);
    bytes_in += x.nbytes;
    elems += a.numel();
  }
  double deq_s = since(t);
  std::printf("to_f32 all tensors: %.1f ms (%.0f M elements, %.2f GB/s of f32 out)\n", deq_s * 1e3,
              elems / 1e6, elems * 4 / deq_s / 1e9);

  t = Clock::now();
  for (int i = 0; i < reps; ++i) loom::models::Tokenizer::from_gguf(f);
  double tok_s = since(t) / reps;
  loom::models::Tokenizer tok = loom::models::Tokenizer::from_gguf(f);
  std::printf("tokenizer from_gguf: %.2f ms\n", tok_s * 1e3);

  std::string text;
  const char* para =
      "The quick brown fox jumps over the lazy dog. In 2024, 1,234 people wrote code: "
      "def f(x): return x * 2 + 3.14159 # comment\n Unicode: naïve café, Москва, 日本語 🚀. ";
  while (text.size() < (1 << 20)) text += para;
  t = Clock::now();
  std::vector<int32_t> ids = tok.encode(text);
  double enc_s = since(t);
  std::printf("encode 1 MiB: %.1f ms, %zu tokens (%.2f MB/s, %.2f M tokens/s)\n", enc_s * 1e3,
              ids.size(), text.size() / enc_s / 1e6, ids.size() / enc_s / 1e6);
  t = Clock::now();
  std::string back = tok.decode(ids);
  std::printf("decode: %.1f ms (round trip %s)\n", since(t) * 1e3, back == text ? "ok" : "FAILED");
  return back == text ? 0 : 1;
}
