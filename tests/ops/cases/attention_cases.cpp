// Op cases: sdpa, rope, the KV-cache slicing ops, and rope fused into the cache write.
#include "ir/graph.h"
#include "ops/op_case.h"

namespace loom::testing {
namespace {

OpCase attn(const std::string& name, DType t, int64_t B, int64_t Hq, int64_t Hkv, int64_t Lq,
            int64_t Lk, int64_t D, int64_t Dv, bool causal,
            int mask_kind /*0 none, 1 bool [1,1,Lq,Lk], 2 additive [B,1,1,Lk]*/,
            bool kv_len = false) {
  OpCase c{"sdpa/" + name,
           {{"q", t, {B, Hq, Lq, D}}, {"k", t, {B, Hkv, Lk, D}}, {"v", t, {B, Hkv, Lk, Dv}}},
           nullptr};
  if (mask_kind == 1) c.inputs.push_back({"m", boolean, {1, 1, Lq, Lk}, {}, 0, 2});
  if (mask_kind == 2) c.inputs.push_back({"m", f32, {B, 1, 1, Lk}, {}, -3, 0});
  if (kv_len)
    c.inputs.push_back({"n", i64, {}, {}, static_cast<double>(Lq), static_cast<double>(Lk + 1)});
  c.build = [causal, mask_kind, kv_len](Graph&, const std::vector<Tensor>& in) {
    SdpaOptions o;
    o.causal = causal;
    size_t next = 3;
    if (mask_kind) o.mask = in[next++];
    if (kv_len) o.kv_len = in[next++];
    return std::vector<Tensor>{sdpa(in[0], in[1], in[2], o)};
  };
  return c;
}

OpCase rope_case(const std::string& name, DType t, Shape x, Shape pos, RopeAttrs o) {
  return {"rope/" + name,
          {{"x", t, x}, {"p", i32, pos, {}, 0, 5000}},
          [o](Graph&, const std::vector<Tensor>& in) {
            return std::vector<Tensor>{rope(in[0], in[1], o)};
          }};
}

// rope_write_slice(cache, x, positions, starts) = write_slice(cache, rope(x, positions), starts).
// The op is made by a pass and writes into input 0's memory, so it has no public builder: the case
// builds the node itself, into a copy of the fed cache (so no run writes into its feeds; every
// run rewrites the copy). The starts are the fed ones times `mask` (0 on the axes x covers), each
// fed start in [0, start_hi). On the reference backend the op is rope then write_slice, so the
// harness compares every backend's fused kernel with the unfused composition.
// x may have another float dtype than the cache (`xt`): the rotated rows are then converted to the
// cache's dtype.
OpCase rope_write_mixed_case(const std::string& name, DType t, DType xt, Shape cache, Shape x,
                             Shape pos, std::vector<int64_t> mask, double start_hi, RopeAttrs o,
                             DType pos_dt = i32) {
  return {"rope_write_slice/" + name,
          {{"cache", t, cache},
           {"x", xt, x},
           {"p", pos_dt, pos, {}, 0, 5000},
           {"s", i64, {4}, {}, 0, start_hi}},
          [o, mask](Graph& g, const std::vector<Tensor>& in) {
            Tensor copy = in[0] * 1.0;
            Tensor starts = in[3] * g.constant(NDArray::from_vector<int64_t>(mask, {4}));
            auto data = copy.graph_data();
            auto v = [](const Tensor& t) { return ir::Value{t.node(), t.index()}; };
            auto out = ir::add_node(*data, ir::op::rope_write_slice,
                                    {v(copy), v(in[1]), v(in[2]), v(starts)}, make_attrs(o));
            return std::vector<Tensor>{Tensor(data, out[0].node, out[0].index)};
          }};
}
OpCase rope_write_case(const std::string& name, DType t, Shape cache, Shape x, Shape pos,
                       std::vector<int64_t> mask, double start_hi, RopeAttrs o,
                       DType pos_dt = i32) {
  return rope_write_mixed_case(name, t, t, std::move(cache), std::move(x), std::move(pos),
                               std::move(mask), start_hi, o, pos_dt);
}

// rope_write_kv(k_cache, v_cache, k, v, positions, starts [, q]): a layer's key write (rotated),
// value write and query rope in one node (made by the fuse_kv_cache_write pass, so built directly
// into copies of the fed caches, as rope_write_mixed_case does). The reference runs the unfused
// parts, so every backend's fused kernel is compared with them. Values of dtype `vt` into caches
// of dtype `t` (converted), keys and queries of dtype `xt`.
OpCase rope_write_kv_case(const std::string& name, DType t, DType xt, DType vt, int64_t hq,
                          int64_t hkv, int64_t len, int64_t l, int64_t d, bool with_q,
                          RopeAttrs o) {
  std::vector<InputSpec> in = {
      {"kc", t, {1, hkv, len, d}},  {"vc", t, {1, hkv, len, d}},
      {"k", xt, {1, hkv, l, d}},    {"v", vt, {1, hkv, l, d}},
      {"p", i32, {l}, {}, 0, 5000}, {"s", i64, {4}, {}, 0, static_cast<double>(len - l + 1)}};
  if (with_q) in.push_back({"q", xt, {1, hq, l, d}});
  return {"rope_write_kv/" + name, in, [o, with_q](Graph& g, const std::vector<Tensor>& in) {
            Tensor kc = in[0] * 1.0, vc = in[1] * 1.0;
            Tensor starts = in[5] * g.constant(NDArray::from_vector<int64_t>({0, 0, 1, 0}, {4}));
            auto data = kc.graph_data();
            auto v = [](const Tensor& t) { return ir::Value{t.node(), t.index()}; };
            std::vector<ir::Value> args = {v(kc), v(vc), v(in[2]), v(in[3]), v(in[4]), v(starts)};
            if (with_q) args.push_back(v(in[6]));
            auto out = ir::add_node(*data, ir::op::rope_write_kv, args, make_attrs(o));
            std::vector<Tensor> r;
            for (const auto& x : out) r.emplace_back(data, x.node, x.index);
            return r;
          }};
}

// rope_write_kv_sdpa(k_cache, v_cache, k, v, positions, starts, q [, kv_len]): rope_write_kv, then
// causal sdpa over the written caches with the rotated q (made by fuse_rope_write_kv_into_sdpa, so
// built directly into copies of the fed caches). One new row of f32 k / v / q into caches of dtype
// `t`: the decode step CUDA's tensor-core decode kernel takes whole (f16 / bf16 caches, interleaved
// rope over every dim), or other layouts its kernels run as the pair. The row lands anywhere in
// the cache (fed start times {0, 0, 1, 0}), before or past kv_len (fed in [1, len]).
OpCase rope_write_kv_sdpa_case(const std::string& name, DType t, int64_t hq, int64_t hkv,
                               int64_t len, int64_t d, bool with_kv_len, RopeAttrs o) {
  std::vector<InputSpec> in = {
      {"kc", t, {1, hkv, len, d}},  {"vc", t, {1, hkv, len, d}},
      {"k", f32, {1, hkv, 1, d}},   {"v", f32, {1, hkv, 1, d}},
      {"p", i32, {1}, {}, 0, 5000}, {"s", i64, {4}, {}, 0, static_cast<double>(len)},
      {"q", f32, {1, hq, 1, d}}};
  if (with_kv_len) in.push_back({"n", i64, {}, {}, 1, static_cast<double>(len + 1)});
  OpCase c{"rope_write_kv_sdpa/" + name, in,
           [o, with_kv_len](Graph& g, const std::vector<Tensor>& in) {
             Tensor kc = in[0] * 1.0, vc = in[1] * 1.0;
             Tensor starts = in[5] * g.constant(NDArray::from_vector<int64_t>({0, 0, 1, 0}, {4}));
             auto data = kc.graph_data();
             auto v = [](const Tensor& t) { return ir::Value{t.node(), t.index()}; };
             std::vector<ir::Value> args = {v(kc),    v(vc),     v(in[2]), v(in[3]),
                                            v(in[4]), v(starts), v(in[6])};
             if (with_kv_len) args.push_back(v(in[7]));
             RopeSdpaAttrs a{o.interleaved, o.theta,    o.position_scale, o.rotary_dim, true, 0,
                             false,         with_kv_len};
             auto out = ir::add_node(*data, ir::op::rope_write_kv_sdpa, args, make_attrs(a));
             std::vector<Tensor> r;
             for (const auto& x : out) r.emplace_back(data, x.node, x.index);
             return r;
           }};
  // The attention is f32, but a GPU's tensor cores take q and the probabilities in the cache's
  // 16-bit type (as sdpa's decode kernel does).
  if (t == f16) c.rtol = c.atol = 5e-3;
  if (t == bf16) c.rtol = c.atol = 3e-2;
  return c;
}

// slice_update(base, update, starts), or its in-place form write_slice (made by a pass, so built
// directly into a copy of the fed base, as rope_write_case does), with an update of dtype `ut`
// into a base of dtype `bt`: a float update of another dtype is converted to the base's, rounded
// to nearest as cast rounds. Every backend stores exactly those values, so the tolerance is ~0
// (a byte copy, a truncation or a double rounding fails). Starts [0, 0, j, 0] with j < 30: the 3
// rows land anywhere along the base's axis 2.
OpCase update_case(bool in_place, DType bt, DType ut) {
  std::string name = std::string(in_place ? "write_slice/" : "slice_update/") +
                     std::string(dtype_name(ut)) + "_into_" + std::string(dtype_name(bt));
  OpCase c{name,
           {{"x", bt, {2, 3, 32, 8}}, {"u", ut, {2, 3, 3, 8}}, {"s", i64, {4}, {}, 0, 30}},
           [in_place](Graph& g, const std::vector<Tensor>& in) {
             Tensor starts = in[2] * g.constant(NDArray::from_vector<int64_t>({0, 0, 1, 0}, {4}));
             if (!in_place) return std::vector<Tensor>{slice_update(in[0], in[1], starts)};
             Tensor copy = in[0] * 1.0;
             auto data = copy.graph_data();
             auto v = [](const Tensor& t) { return ir::Value{t.node(), t.index()}; };
             auto out = ir::add_node(*data, ir::op::write_slice, {v(copy), v(in[1]), v(starts)},
                                     make_attrs(NoAttrs{}));
             return std::vector<Tensor>{Tensor(data, out[0].node, out[0].index)};
           }};
  c.rtol = 1e-12;
  return c;
}

std::vector<OpCase> make() {
  std::vector<OpCase> c = {
      attn("mha_f32", f32, 2, 4, 4, 17, 17, 32, 32, false, 0),
      attn("causal_gqa_smollm", f32, 1, 9, 3, 12, 12, 64, 64, true, 0),
      attn("decode_offset_causal", f32, 1, 8, 2, 3, 40, 16, 16, true, 0),
      attn("decode_long", f32, 1, 4, 1, 1, 4100, 64, 64, false, 0),
      attn("bool_mask", f32, 2, 2, 2, 5, 9, 8, 8, false, 1),
      attn("additive_mask_mqa", f32, 2, 6, 1, 4, 11, 16, 16, false, 2),
      attn("kv_len_bound", f32, 1, 4, 2, 2, 64, 32, 32, true, 0, true),
      attn("odd_dims", f32, 1, 3, 3, 7, 13, 72, 40, false, 0),
      attn("f16", f16, 1, 4, 2, 6, 30, 64, 64, true, 0),
      attn("bf16", bf16, 1, 4, 4, 6, 30, 64, 64, false, 1),
  };
  c.push_back(rope_case("half_split_f32", f32, {1, 3, 5, 64}, {5}, {}));
  c.push_back(rope_case("interleaved_f32", f32, {2, 2, 4, 32}, {4}, {.interleaved = true}));
  c.push_back(
      rope_case("partial_scaled", f32, {1, 2, 6, 80}, {1, 6},
                {.interleaved = false, .theta = 500000, .position_scale = 4, .rotary_dim = 32}));
  c.push_back(rope_case("bf16", bf16, {1, 2, 3, 16}, {3}, {}));
  c.push_back({"dynamic_slice/cache_window",
               {{"x", f32, {1, 2, 32, 8}}, {"s", i64, {4}, {}, 0, 1}},
               [](Graph&, const std::vector<Tensor>& in) {
                 return std::vector<Tensor>{slice(in[0], in[1], {1, 2, 16, 8})};
               }});
  c.push_back({"slice_update/cache_write",
               {{"x", f32, {1, 2, 32, 8}}, {"u", f32, {1, 2, 3, 8}}, {"s", i32, {4}, {}, 0, 1}},
               [](Graph&, const std::vector<Tensor>& in) {
                 return std::vector<Tensor>{slice_update(in[0], in[1], in[2])};
               }});
  c.push_back({"slice_update/static_starts_i64",
               {{"x", i64, {6, 5}, {}, -9, 9}, {"u", i64, {2, 2}, {}, -9, 9}},
               [](Graph&, const std::vector<Tensor>& in) {
                 return std::vector<Tensor>{slice_update(in[0], in[1], std::vector<int64_t>{3, 1})};
               }});
  // rope_write_slice: a Llama decode step (one row at a dynamic position, interleaved), a prefill
  // chunk (half split), rotary_dim < D with scaled positions (the tail dims copied), a region
  // offset on the head axis too, per-batch i64 positions, f16 and bf16.
  const std::vector<int64_t> at_row{0, 0, 1, 0};
  c.push_back(rope_write_case("decode_interleaved_f32", f32, {1, 3, 40, 64}, {1, 3, 1, 64}, {1},
                              at_row, 40, {.interleaved = true}));
  c.push_back(rope_write_case("prefill_half_split_f32", f32, {1, 2, 32, 32}, {1, 2, 7, 32}, {7},
                              at_row, 26, {}));
  c.push_back(rope_write_case(
      "partial_scaled_f32", f32, {1, 2, 16, 80}, {1, 2, 3, 80}, {1, 3}, at_row, 14,
      {.interleaved = false, .theta = 500000, .position_scale = 4, .rotary_dim = 32}));
  c.push_back(rope_write_case("partial_interleaved_heads_offset_f32", f32, {1, 4, 12, 8},
                              {1, 2, 3, 8}, {3}, {0, 1, 1, 0}, 3,
                              {.interleaved = true, .rotary_dim = 4}));
  c.push_back(rope_write_case("batched_positions_i64_f32", f32, {2, 2, 9, 16}, {2, 2, 2, 16},
                              {2, 2}, at_row, 8, {}, i64));
  c.push_back(rope_write_case("decode_f16", f16, {1, 4, 24, 64}, {1, 4, 1, 64}, {1}, at_row, 24,
                              {.interleaved = true}));
  c.push_back(rope_write_case("prefill_partial_f16", f16, {1, 2, 20, 48}, {1, 2, 5, 48}, {5},
                              at_row, 16, {.rotary_dim = 16}));
  c.push_back(rope_write_case("bf16", bf16, {1, 2, 10, 16}, {1, 2, 3, 16}, {3}, at_row, 8, {}));
  // x of another float dtype than the cache: a Llama f16 cache fed f32 keys (decode and prefill),
  // an f32 x into a bf16 cache, and a bf16 x into an f32 cache (its rows rounded to bf16 first, as
  // rope's output would be).
  c.push_back(rope_write_mixed_case("decode_f32_into_f16", f16, f32, {1, 4, 24, 64}, {1, 4, 1, 64},
                                    {1}, at_row, 24, {.interleaved = true}));
  c.push_back(rope_write_mixed_case("prefill_partial_f32_into_f16", f16, f32, {1, 2, 20, 48},
                                    {1, 2, 5, 48}, {5}, at_row, 16, {.rotary_dim = 16}));
  c.push_back(rope_write_mixed_case("f32_into_bf16", bf16, f32, {1, 2, 10, 16}, {1, 2, 3, 16}, {3},
                                    at_row, 8, {}));
  c.push_back(rope_write_mixed_case("bf16_into_f32", f32, bf16, {1, 2, 10, 16}, {1, 2, 3, 16}, {3},
                                    at_row, 8, {.interleaved = true}));
  // rope_write_kv: a Llama decode step (f32 k / v / q into an f16 cache, GQA), a prefill chunk
  // with rotary_dim < D and no q, all f32 half split, bf16.
  c.push_back(rope_write_kv_case("decode_gqa_f32_into_f16", f16, f32, f32, 8, 2, 40, 1, 64, true,
                                 {.interleaved = true, .theta = 1e6}));
  c.push_back(rope_write_kv_case("prefill_partial_no_q_f16", f16, f16, f16, 4, 4, 24, 5, 48, false,
                                 {.rotary_dim = 16}));
  c.push_back(
      rope_write_kv_case("prefill_half_split_f32", f32, f32, f32, 6, 3, 16, 3, 16, true, {}));
  c.push_back(rope_write_kv_case("bf16", bf16, bf16, bf16, 2, 1, 10, 2, 16, true,
                                 {.interleaved = true, .position_scale = 4}));
  // f32 k / v / q with every dim rotated take CUDA's fast kernel (a thread per pair and up to 4
  // heads): Mistral-7B's heads (40 in 10 chunks) into bf16, and no q (3 heads: one partial
  // chunk) with a position scale.
  c.push_back(rope_write_kv_case("decode_mistral_f32_into_bf16", bf16, f32, f32, 32, 8, 24, 1, 128,
                                 true, {.theta = 1e6}));
  c.push_back(rope_write_kv_case("decode_no_q_f32_into_f16", f16, f32, f32, 4, 3, 12, 2, 32, false,
                                 {.interleaved = true, .position_scale = 2}));
  // rope_write_kv_sdpa: Mistral-7B's decode step (GQA 32 / 8, D 128, f16 cache of 300: 3 key
  // splits), SmolLM2's (9 / 3, D 64, bf16), and without kv_len; then what CUDA runs as the pair:
  // an f32 cache, half-split rope, rotary_dim < D.
  c.push_back(rope_write_kv_sdpa_case("decode_mistral_f16", f16, 32, 8, 300, 128, true,
                                      {.interleaved = true, .theta = 1e6}));
  c.push_back(rope_write_kv_sdpa_case("decode_smollm2_bf16", bf16, 9, 3, 200, 64, true,
                                      {.interleaved = true, .theta = 1e5}));
  c.push_back(rope_write_kv_sdpa_case("decode_no_kv_len_f16", f16, 4, 2, 40, 64, false,
                                      {.interleaved = true, .position_scale = 2}));
  c.push_back(rope_write_kv_sdpa_case("f32_cache", f32, 4, 2, 24, 32, true, {.interleaved = true}));
  c.push_back(rope_write_kv_sdpa_case("half_split_f16", f16, 4, 2, 24, 64, true, {}));
  c.push_back(rope_write_kv_sdpa_case("partial_rotary_f16", f16, 4, 4, 24, 64, true,
                                      {.interleaved = true, .rotary_dim = 16}));
  // slice_update / write_slice converting the update: f32 into f16 (a Llama cache), f16 into f32,
  // f32 into bf16, f64 into f16; write_slice also with equal dtypes.
  for (bool in_place : {false, true}) {
    c.push_back(update_case(in_place, f16, f32));
    c.push_back(update_case(in_place, f32, f16));
    c.push_back(update_case(in_place, bf16, f32));
    c.push_back(update_case(in_place, f16, f64));
  }
  c.push_back(update_case(true, f32, f32));
  return c;
}

LOOM_OP_CASES(make());

}  // namespace
}  // namespace loom::testing
