// dequantize → matmul fusion into quantized_matmul, for every weight format and layout; results
// equal the unfused graph, and the float weights are never materialised.
#include <gtest/gtest.h>

#include <random>
#include <sstream>

#include "backends/cpu/quant/qmatmul.h"
#include "loom/loom.h"
#include "loom/prepared_run.h"
#include "profile_rows.h"

namespace loom {
namespace {

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& l : v) s += l + "\n";
  return s;
}

void check_fused(const Graph& g, const Tensor& y, int64_t m, int64_t k, double tol) {
  auto fused = g.compile({y});
  std::string log = joined(fused.pass_log());
  EXPECT_NE(log.find("[quantized_matmul] fused"), std::string::npos) << log;
  EXPECT_EQ(fused.to_text().find("dequantize"), std::string::npos) << fused.to_text();
  // Only the activations and the result are intermediates: no float weight tensor.
  auto stats = fused.plan_stats({{"x", Shape({m, k})}});
  EXPECT_EQ(stats.intermediate_bytes, 0);
  CompileOptions plain;
  plain.disabled_passes = {"quantized_matmul"};
  auto unfused = g.compile({y}, plain);
  EXPECT_NE(unfused.to_text().find("dequantize"), std::string::npos);
  auto x = random_uniform({m, k}, f32, -1, 1, std::random_device{}());
  auto a = fused.run({{"x", x}})[0].to_vector<float>(),
       b = unfused.run({{"x", x}})[0].to_vector<float>();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], tol * (1 + std::abs(b[i]))) << i;
}

TEST(QuantizedMatmulFusion, AffinePerBlockBothLayouts) {
  for (bool nk : {true, false}) {
    const int64_t n = 48, k = 128, m = 5;
    Graph g;
    auto x = g.placeholder({m, k}, f32, "x");
    Shape qs = nk ? Shape({n, k}) : Shape({k, n});
    Shape ss = nk ? Shape({n, k / 32}) : Shape({k / 32, n});
    auto q = g.constant(random_uniform(qs, u4, 0, 16, 1));
    auto s = g.constant(random_uniform(ss, f32, 0.01, 0.1, 2));
    auto z = g.constant(random_uniform(ss, f32, 0, 15, 3));
    auto w = dequantize(q, s, z, {.axis = nk ? 1 : 0, .block_size = 32});
    auto y = matmul(x, w, {.transpose_a = false, .transpose_b = nk});
    check_fused(g, y, m, k, 1e-4);
  }
}

TEST(QuantizedMatmulFusion, AffinePerAxisInt8AndLut) {
  const int64_t n = 40, k = 64, m = 3;
  Graph g;
  auto x = g.placeholder({m, k}, f32, "x");
  auto q = g.constant(random_uniform({k, n}, i8, -128, 128, 4));
  auto s = g.constant(random_uniform({n}, f32, 0.001, 0.01, 5));
  auto y = matmul(x, dequantize(q, s, {}, {.axis = 1}));
  check_fused(g, y, m, k, 1e-4);

  Graph h;
  auto xh = h.placeholder({m, k}, f32, "x");
  auto idx = h.constant(random_uniform({n, k}, u4, 0, 16, 6));
  auto table = h.constant(random_uniform({n, 16}, f32, -1, 1, 7));
  auto yh = matmul(xh, dequantize_lut(idx, table), {.transpose_a = false, .transpose_b = true});
  check_fused(h, yh, m, k, 1e-4);
}

TEST(QuantizedMatmulFusion, GgufBlockFormats) {
  namespace q = loom::cpu::quant;
  for (q::Format f : {q::Format::q4_0, q::Format::q4_1, q::Format::q8_0, q::Format::q6_k}) {
    const int64_t n = 33, k = 256, m = 2;
    NDArray w = random_uniform({n, k}, f32, -1, 1, 8);
    auto rb = static_cast<int64_t>(q::row_bytes(f, k));
    NDArray p(u8, {n, rb});
    for (int64_t r = 0; r < n; ++r)
      q::quantize_row(f, w.data_as<float>() + r * k, k, p.data_as<uint8_t>() + r * rb);
    Graph g;
    auto x = g.placeholder({m, k}, f32, "x");
    auto wd = dequantize_blocks(g.constant(p), std::string(q::format_name(f)), k);
    auto y = matmul(x, transpose(wd));
    // Integer-dot formats quantize activations to int8, as llama.cpp does.
    check_fused(g, y, m, k, q::uses_integer_dot(f) ? 0.1 : 1e-4);
  }
}

TEST(QuantizeWeights, ShrinksAnMlpAndStaysClose) {
  for (auto mode : {QuantizeWeightsOptions::Mode::affine, QuantizeWeightsOptions::Mode::lut}) {
    for (int bits : {4, 8}) {
      Graph g;
      auto x = g.placeholder({-1, 256}, f32, "x");
      auto w1 = g.constant(random_normal({256, 512}, f32, 1, 0, 0.05));  // [k, n]
      auto w2 = g.constant(random_normal({128, 512}, f32, 2, 0, 0.05));  // [n, k]
      std::vector<Tensor> outs = {
          matmul(gelu(matmul(x, w1)), w2, {.transpose_a = false, .transpose_b = true})};
      auto base = g.compile(outs);
      std::vector<std::string> log;
      Graph q = quantize_weights(g, outs, {.bits = bits, .block = 32, .mode = mode}, &log);
      ASSERT_EQ(log.size(), 2u);
      auto small = q.compile(outs);
      std::string plog;
      for (const auto& l : small.pass_log()) plog += l + "\n";
      EXPECT_NE(plog.find("[quantized_matmul] fused"), std::string::npos) << plog;
      // int4: 1/8 of f32 plus per-block scale and zero point (or one 16-entry table per row);
      // 256-entry tables per row only pay off for long rows, so lut-8 is not checked here.
      double ratio =
          static_cast<double>(small.constant_bytes()) / static_cast<double>(base.constant_bytes());
      if (mode == QuantizeWeightsOptions::Mode::affine || bits == 4) {
        EXPECT_LT(ratio, bits == 4 ? 0.2 : 0.33) << "bits " << bits;
      }
      auto in = random_uniform({3, 256}, f32, -1, 1, std::random_device{}());
      auto a = small.run({{"x", in}})[0].to_vector<float>(),
           b = base.run({{"x", in}})[0].to_vector<float>();
      double err = 0, norm = 0;
      for (size_t i = 0; i < a.size(); ++i)
        err += (a[i] - b[i]) * (a[i] - b[i]), norm += b[i] * b[i];
      EXPECT_LT(std::sqrt(err / norm), bits == 4 ? 0.25 : 0.03) << "relative error, bits " << bits;
    }
  }
  Graph g;
  auto x = g.placeholder({2, 64}, f32, "x");
  std::vector<Tensor> outs = {matmul(x, g.constant(random_normal({64, 64}, f32, 3)))};
  EXPECT_THROW(quantize_weights(g, outs, {.bits = 3}), Error);
}

TEST(Quantization, BadParametersAreClearErrors) {
  Graph g;
  auto q = g.placeholder({4, 64}, u4, "q");
  auto s_bad = g.placeholder({4, 3}, f32, "s");
  try {
    dequantize(q, s_bad, {}, {.axis = 1, .block_size = 32});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not match blocks of 32 along axis 1"),
              std::string::npos)
        << e.what();
  }
  auto f = g.placeholder({4, 64}, f32, "f");
  EXPECT_THROW(dequantize(f, g.scalar(1.0)), Error);                    // not an integer tensor
  EXPECT_THROW(quantize(f, g.scalar(1.0), {}, {.dtype = f16}), Error);  // not an integer result
  auto p = g.placeholder({4, 20}, u8, "p");
  EXPECT_THROW(dequantize_blocks(p, "q4_7", 32), Error);
  EXPECT_THROW(dequantize_blocks(p, "q4_1", 33), Error);
  EXPECT_THROW(dequantize_blocks(p, "q4_0", 32), Error);  // 18 bytes per row, not 20
}

TEST(Quantization, RoundTripWithinHalfAStep) {
  // quantize → dequantize error ≤ scale / 2 per element (round half to even), saturation at ends.
  Graph g;
  auto x = g.placeholder({3, 64}, f32, "x");
  auto s = g.constant(random_uniform({3, 2}, f32, 0.05, 0.1, 9));
  auto z = g.constant(full({3, 2}, 8, f32));
  QuantAttrs a{.axis = 1, .block_size = 32, .dtype = u4};
  auto back = dequantize(quantize(x, s, z, a), s, z, {.axis = 1, .block_size = 32});
  auto exe = g.compile({back});
  auto in = random_uniform({3, 64}, f32, -0.5, 0.5, std::random_device{}());
  auto out = exe.run({{"x", in}})[0].to_vector<float>();
  auto scales = random_uniform({3, 2}, f32, 0.05, 0.1, 9).to_vector<float>();
  auto xin = in.to_vector<float>();
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t c = 0; c < 64; ++c) {
      float sc = scales[static_cast<size_t>(r * 2 + c / 32)];
      float v = xin[static_cast<size_t>(r * 64 + c)];
      float clamped = std::min(std::max(v, -8 * sc), 7 * sc);  // u4 0..15 around zero point 8
      EXPECT_LE(std::abs(out[static_cast<size_t>(r * 64 + c)] - clamped), sc / 2 + 1e-6);
    }
}

}  // namespace
}  // namespace loom

namespace loom {
namespace {

// merge_parallel_matmuls: three projections of one x (q / k / v) become one quantized_matmul over
// the concatenated rows plus slices; results are bit-equal to the unmerged graph (each output row
// is the same dot product, whatever thread computes it). In a prepared one-token run the slices
// are views: no slice step runs.
TEST(MergeParallelMatmuls, OneGemvForParallelProjectionsBitEqual) {
  namespace q = loom::cpu::quant;
  for (q::Format f : {q::Format::q4_0, q::Format::q8_0, q::Format::q6_k}) {
    const int64_t k = 256;
    const std::vector<int64_t> ns = {96, 32, 32};
    Graph g;
    auto x = g.placeholder({1, -1, k}, f32, "x");
    std::vector<Tensor> outs;
    for (size_t i = 0; i < ns.size(); ++i) {
      NDArray w = random_uniform({ns[i], k}, f32, -1, 1, 20 + i);
      auto rb = static_cast<int64_t>(q::row_bytes(f, k));
      NDArray p(u8, {ns[i], rb});
      for (int64_t r = 0; r < ns[i]; ++r)
        q::quantize_row(f, w.data_as<float>() + r * k, k, p.data_as<uint8_t>() + r * rb);
      auto wd = dequantize_blocks(g.constant(p), std::string(q::format_name(f)), k);
      // neg: the projections feed ops (as in a decoder layer), so they are no compile targets.
      outs.push_back(neg(matmul(x, wd, {.transpose_a = false, .transpose_b = true})));
    }
    auto merged = g.compile(outs);
    EXPECT_NE(joined(merged.pass_log()).find("[merge_parallel_matmuls] merged 3 quantized_matmul"),
              std::string::npos)
        << joined(merged.pass_log());
    CompileOptions off;
    off.disabled_passes = {"merge_parallel_matmuls"};
    auto plain = g.compile(outs, off);
    EXPECT_EQ(joined(plain.pass_log()).find("[merge_parallel_matmuls] merged"), std::string::npos);
    for (int64_t m : {1, 3}) {
      NDArray xv = random_uniform({1, m, k}, f32, -1, 1, 30 + m);
      auto a = merged.run({{"x", xv}});
      auto b = plain.run({{"x", xv}});
      PreparedRun pr(merged, {{"x", Shape({1, m, k})}});
      pr.set_inputs({{"x", xv}});
      pr.run();
      ASSERT_EQ(a.size(), 3u);
      for (size_t i = 0; i < a.size(); ++i) {
        ASSERT_EQ(a[i].shape(), Shape({1, m, ns[i]}));
        EXPECT_EQ(a[i].to_doubles(), b[i].to_doubles()) << q::format_name(f) << " m " << m;
        EXPECT_EQ(pr.outputs()[i].to_doubles(), b[i].to_doubles())
            << q::format_name(f) << " prepared, m " << m;
      }
      // One token: each slice is one contiguous range of the merged output, so a view.
      // Several tokens: rows of the merged output interleave, so the slices copy.
      std::string prof = pr.profile(1);
      if (m == 1)
        EXPECT_EQ(prof.find("\nslice "), std::string::npos) << prof;
      else
        EXPECT_NE(prof.find("\nslice "), std::string::npos) << prof;
      EXPECT_EQ(loom::testing::profile_steps(prof, "quantized_matmul"), 1) << prof;  // one GEMV
    }
  }
}

}  // namespace
}  // namespace loom
