// Op cases: sdpa, rope, and the KV-cache slicing ops.
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
  return c;
}

LOOM_OP_CASES(make());

}  // namespace
}  // namespace loom::testing
