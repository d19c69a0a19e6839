// Bounded fuzzing of the package reader inside the normal test run (~5 s): byte flips, digit
// rewrites inside the header, truncations, and structured edits of the JSON header (a random
// value anywhere replaced by another plausible one). The only acceptable outcomes are a loaded
// graph (which is then lowered) or loom::Error; a crash or any other exception fails the test
// (run under LOOM_SANITIZE=ON to catch out-of-bounds reads too).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "io/package.h"
#include "loom/loom.h"
#include "loom/package.h"
#include "runtime/compile.h"

namespace loom {
namespace {

using json = nlohmann::json;

std::vector<uint8_t> base_package() {
  Graph g;
  auto x = g.placeholder({-1, 8}, f32, "x");
  auto w = g.constant(random_normal({8, 6}, f32, 1), "w");
  auto parts = split(matmul(x, w), {2, 4}, 1);
  auto v = g.variable(zeros({2}, f32), "acc");
  g.assign(v, g.read(v) + sum(parts[0], {0}));
  auto y = concat({softmax(parts[1], -1), pad(parts[0], {0, 1}, {0, 1}, PadMode::edge)}, 1);
  auto z = slice(reshape(y, {-1}), {1}, {kSliceEnd}, {0}, {3});
  auto q = gather(w, g.constant(NDArray::from_vector<int64_t>({0, 2}, {2})), 0);
  std::string path = (std::filesystem::temp_directory_path() /
                      ("loom_fuzz_" + std::to_string(::getpid()) + ".loom"))
                         .string();
  save_graph(g, {y, z, cast(q, f16)}, path);
  std::ifstream f(path, std::ios::binary);
  std::vector<uint8_t> b(std::istreambuf_iterator<char>(f), {});
  std::filesystem::remove(path);
  return b;
}

bool try_load(const std::vector<uint8_t>& b) {
  try {
    io::Package p = io::read_package_bytes(b.data(), b.size(), "fuzz.loom");
    CompileOptions o;
    o.optimization_level = 0;
    compile_graph_data(std::move(p.graph), std::move(p.outputs), o, {}, false);
    return true;
  } catch (const Error&) {
    return false;
  }
}

// A random JSON value of a random kind: the structured mutation's replacement.
json random_value(std::mt19937_64& rng) {
  switch (rng() % 10) {
    case 0:
      return static_cast<int64_t>(rng() % 5) - 1;
    case 1:
      return static_cast<int64_t>(rng());
    case 2:
      return -static_cast<int64_t>(rng() % 100000);
    case 3:
      return 0.5;
    case 4:
      return "f32";
    case 5:
      return json::array({0, 0});
    case 6:
      return json::array();
    case 7:
      return json::object();
    case 8:
      return nullptr;
    default: {
      static const char* names[] = {"add", "matmul", "constant", "x", "acc", "nan", "split", "i"};
      return names[rng() % 8];
    }
  }
}

// Replaces one random leaf (or subtree) of `j`.
void mutate_json(json& j, std::mt19937_64& rng) {
  json* cur = &j;
  while ((cur->is_object() || cur->is_array()) && !cur->empty() && rng() % 6 != 0) {
    auto it = cur->begin();
    std::advance(it, static_cast<long>(rng() % cur->size()));
    cur = &*it;
  }
  if (cur->is_number_integer() && rng() % 2)
    *cur = static_cast<int64_t>(static_cast<uint64_t>(cur->get<int64_t>()) + rng() % 130 -
                                65);  // wraps (INT64_MAX is a slice end) without UB
  else
    *cur = random_value(rng);
}

// One mutated copy of `base`: a structured header edit, byte flips, a rewritten digit, or a
// truncation.
struct Seed {
  std::vector<uint8_t> bytes;
  json header;
  uint64_t header_len = 0;
  std::vector<uint8_t> data;
  explicit Seed(std::vector<uint8_t> b) : bytes(std::move(b)) {
    std::memcpy(&header_len, bytes.data() + 12, 8);
    header = json::parse(bytes.begin() + 20, bytes.begin() + 20 + static_cast<long>(header_len));
    uint64_t data_start = (20 + header_len + 63) / 64 * 64;
    data.assign(bytes.begin() + static_cast<long>(data_start), bytes.end());
  }
};

std::vector<uint8_t> mutate(const Seed& s, std::mt19937_64& rng) {
  const std::vector<uint8_t>& base = s.bytes;
  std::vector<uint8_t> b;
  int kind = static_cast<int>(rng() % 4);
  if (kind == 0) {  // structured: edit the header, keep the file consistent otherwise
    json h = s.header;
    int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) mutate_json(h, rng);
    std::string text = h.dump();
    b.assign(20, 0);
    std::memcpy(b.data(), base.data(), 12);
    uint64_t len = text.size();
    std::memcpy(b.data() + 12, &len, 8);
    b.insert(b.end(), text.begin(), text.end());
    b.resize((b.size() + 63) / 64 * 64, 0);
    b.insert(b.end(), s.data.begin(), s.data.end());
  } else if (kind == 1) {  // byte flips, mostly in the prefix and header
    b = base;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      size_t at =
          rng() % 2 ? rng() % std::min<size_t>(b.size(), 20 + s.header_len) : rng() % b.size();
      b[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
    }
  } else if (kind == 2) {  // a digit of the header rewritten (offsets, dims, indices)
    b = base;
    for (int tries = 0; tries < 50; ++tries) {
      size_t at = 20 + rng() % s.header_len;
      if (b[at] >= '0' && b[at] <= '9') {
        b[at] = static_cast<uint8_t>('0' + rng() % 10);
        break;
      }
    }
  } else {  // truncation
    b = base;
    b.resize(rng() % b.size());
  }
  return b;
}

double budget_seconds(double def) {
  const char* e = std::getenv("LOOM_FUZZ_SECONDS");
  return e ? std::atof(e) : def;
}

TEST(PackageFuzz, MutatedPackagesLoadOrThrowLoomError) {
  const Seed seed(base_package());
  ASSERT_TRUE(try_load(seed.bytes));
  std::mt19937_64 rng(1234);
  int loaded = 0, rejected = 0, iterations = 0;
  auto start = std::chrono::steady_clock::now();
  double budget = budget_seconds(5.0);
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < budget) {
    (try_load(mutate(seed, rng)) ? loaded : rejected)++;
    ++iterations;
  }
  std::cout << "package fuzz: " << iterations << " mutated packages, " << loaded << " loaded, "
            << rejected << " rejected with loom::Error\n";
  EXPECT_GT(iterations, 1000);
  EXPECT_GT(rejected, 0);
}

std::vector<uint8_t> bytes_of(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// Real packages as seeds: the checked-in v1 executable, an executable with int4 weights fused
// into quantized_matmul (packed u4 constants, per-block scales), a conv / pool network, and a v2
// executable embedding a callee package (nested header and data). With LOOM_FUZZ_CORPUS=DIR the
// seeds are also written there (the libFuzzer target's corpus, tests/io/fuzz_package.cpp).
std::vector<std::vector<uint8_t>> seed_corpus() {
  std::vector<std::vector<uint8_t>> seeds;
  const char* d = std::getenv("LOOM_TEST_DATA");
  std::string v1 = std::string(d ? d : "tests/data") + "/package/v1_mlp.loom";
  if (std::filesystem::exists(v1)) seeds.push_back(bytes_of(v1));
  std::string tmp = (std::filesystem::temp_directory_path() /
                     ("loom_fuzz_seed_" + std::to_string(::getpid()) + ".loom"))
                        .string();
  auto save = [&](const Executable& exe) {
    exe.save(tmp);
    seeds.push_back(bytes_of(tmp));
    std::filesystem::remove(tmp);
  };
  {
    Graph g;
    auto x = g.placeholder({-1, 64}, f32, "x");
    auto w = g.constant(random_normal({64, 32}, f32, 3), "w");
    std::vector<Tensor> outs{gelu(matmul(x, w))};
    QuantizeWeightsOptions q;
    q.bits = 4;
    q.min_elements = 16;
    Graph qg = quantize_weights(g, outs, q);
    save(qg.compile(outs));
  }
  {
    Graph g;
    auto x = g.placeholder({-1, 3, 12, 12}, f32, "img");
    auto w = g.constant(random_normal({4, 3, 3, 3}, f32, 5), "k");
    auto b = g.constant(random_normal({4}, f32, 6), "b");
    auto y = max_pool(conv(x, w, b, {.strides = {1, 1}, .pads = {1, 1, 1, 1}}),
                      {.kernel = {2, 2}, .strides = {2, 2}});
    save(g.compile({global_avg_pool(y)}));
  }
  {
    Graph cg;
    auto cx = cg.placeholder({3}, f32, "x");
    Executable callee = cg.compile({cx * 2.0});
    Graph g;
    auto x = g.placeholder({3}, f32, "x");
    auto z = call("twice", {x}, {{f32, Shape({3})}}, {.optional = true})[0] + 1.0;
    CompileOptions o;
    o.callables = {{"twice", callee}};
    save(g.compile({z}, o));
  }
  if (const char* dir = std::getenv("LOOM_FUZZ_CORPUS")) {
    std::filesystem::create_directories(dir);
    for (size_t i = 0; i < seeds.size(); ++i) {
      std::ofstream f(std::string(dir) + "/seed_" + std::to_string(i) + ".loom", std::ios::binary);
      f.write(reinterpret_cast<const char*>(seeds[i].data()),
              static_cast<std::streamsize>(seeds[i].size()));
    }
  }
  return seeds;
}

TEST(PackageFuzz, RealPackagesMutatedLoadOrThrowLoomError) {
  std::vector<Seed> seeds;
  for (auto& b : seed_corpus()) seeds.emplace_back(std::move(b));
  ASSERT_GE(seeds.size(), 3u);
  for (const auto& s : seeds) ASSERT_TRUE(try_load(s.bytes));
  std::mt19937_64 rng(99);
  std::vector<int> loaded(seeds.size()), rejected(seeds.size());
  int iterations = 0;
  auto start = std::chrono::steady_clock::now();
  double budget = budget_seconds(6.0);
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < budget) {
    size_t k = rng() % seeds.size();
    (try_load(mutate(seeds[k], rng)) ? loaded[k] : rejected[k])++;
    ++iterations;
  }
  std::cout << "package fuzz over " << seeds.size() << " real packages: " << iterations
            << " mutated packages\n";
  for (size_t k = 0; k < seeds.size(); ++k) {
    std::cout << "  seed " << k << " (" << seeds[k].bytes.size() << " bytes): " << loaded[k]
              << " loaded, " << rejected[k] << " rejected with loom::Error\n";
    EXPECT_GT(rejected[k], 0) << "seed " << k;
  }
  EXPECT_GT(iterations, 500);
}

}  // namespace
}  // namespace loom
