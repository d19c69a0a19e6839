// Bounded fuzzing of the package reader inside the normal test run (~5 s): byte flips, digit
// rewrites inside the header, truncations, and structured edits of the JSON header (a random
// value anywhere replaced by another plausible one). The only acceptable outcomes are a loaded
// graph (which is then lowered) or loom::Error; a crash or any other exception fails the test
// (run under LOOM_SANITIZE=ON to catch out-of-bounds reads too).
#include <gtest/gtest.h>

#include <chrono>
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
    *cur = cur->get<int64_t>() + static_cast<int64_t>(rng() % 130) - 65;
  else
    *cur = random_value(rng);
}

TEST(PackageFuzz, MutatedPackagesLoadOrThrowLoomError) {
  const std::vector<uint8_t> base = base_package();
  ASSERT_TRUE(try_load(base));
  uint64_t header_len;
  std::memcpy(&header_len, base.data() + 12, 8);
  json header = json::parse(base.begin() + 20, base.begin() + 20 + static_cast<long>(header_len));
  uint64_t data_start = (20 + header_len + 63) / 64 * 64;
  std::vector<uint8_t> data(base.begin() + static_cast<long>(data_start), base.end());

  std::mt19937_64 rng(1234);
  int loaded = 0, rejected = 0, iterations = 0;
  auto start = std::chrono::steady_clock::now();
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < 5.0) {
    std::vector<uint8_t> b;
    int kind = static_cast<int>(rng() % 4);
    if (kind == 0) {  // structured: edit the header, keep the file consistent otherwise
      json h = header;
      int edits = 1 + static_cast<int>(rng() % 3);
      for (int e = 0; e < edits; ++e) mutate_json(h, rng);
      std::string text = h.dump();
      b.assign(20, 0);
      std::memcpy(b.data(), base.data(), 12);
      uint64_t len = text.size();
      std::memcpy(b.data() + 12, &len, 8);
      b.insert(b.end(), text.begin(), text.end());
      b.resize((b.size() + 63) / 64 * 64, 0);
      b.insert(b.end(), data.begin(), data.end());
    } else if (kind == 1) {  // byte flips, mostly in the prefix and header
      b = base;
      int flips = 1 + static_cast<int>(rng() % 4);
      for (int f = 0; f < flips; ++f) {
        size_t at =
            rng() % 2 ? rng() % std::min<size_t>(b.size(), 20 + header_len) : rng() % b.size();
        b[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
      }
    } else if (kind == 2) {  // a digit of the header rewritten (offsets, dims, indices)
      b = base;
      for (int tries = 0; tries < 50; ++tries) {
        size_t at = 20 + rng() % header_len;
        if (b[at] >= '0' && b[at] <= '9') {
          b[at] = static_cast<uint8_t>('0' + rng() % 10);
          break;
        }
      }
    } else {  // truncation
      b = base;
      b.resize(rng() % b.size());
    }
    (try_load(b) ? loaded : rejected)++;
    ++iterations;
  }
  std::cout << "package fuzz: " << iterations << " mutated packages, " << loaded << " loaded, "
            << rejected << " rejected with loom::Error\n";
  EXPECT_GT(iterations, 1000);
  EXPECT_GT(rejected, 0);
}

}  // namespace
}  // namespace loom
