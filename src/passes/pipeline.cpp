// The order of the optimisation passes, with the reason for each slot.
#include "passes/pass.h"

namespace loom::passes {

const std::vector<PassInfo>& pipeline() {
  static const std::vector<PassInfo> p = {
      {"dce", "first: no later pass should spend time on ops nobody uses", dead_code_elimination},
      {"constant_folding", "before CSE: folded constants become equal and merge", constant_folding},
      {"cse", "after folding: merges duplicate ops and equal constants",
       common_subexpression_elimination},
      {"attention_pattern",
       "after CSE, so shared subexpressions are seen once; before DCE, which drops the unfused "
       "scores",
       attention_pattern},
      {"quantized_matmul",
       "after folding/CSE (weights are constants by then); before DCE, which drops the float "
       "weights",
       quantized_matmul_fusion},
      {"merge_parallel_matmuls",
       "right after quantized_matmul, which makes the nodes it groups (CSE, earlier, merged "
       "equal x values, so projections of one x share a Value); before stitch and "
       "fuse_add_rms_norm, so they see the final graph (the slices are movement ops, never "
       "stitched); before the last DCE, which drops what it leaves unused",
       merge_parallel_matmuls},
      {"inplace_variable_update", "late: after every rewrite that could add uses of the cache read",
       inplace_variable_update},
      {"fuse_rope_into_write_slice",
       "right after inplace_variable_update, which makes the write_slice it fuses the rope into",
       fuse_rope_into_write_slice},
      {"fuse_kv_cache_write",
       "right after fuse_rope_into_write_slice, which makes the rope_write_slice it pairs with "
       "the value write",
       fuse_kv_cache_write},
      {"fuse_rope_write_kv_into_sdpa",
       "right after fuse_kv_cache_write, which makes the rope_write_kv whose caches and rotated "
       "queries the attention reads",
       fuse_rope_write_kv_into_sdpa},
      {"fuse_add_rms_norm",
       "after CSE (duplicate adds merged) and the pattern rewrites; before stitch, which would "
       "otherwise take the add into a stitched region and hide it (stitch then still fuses what "
       "feeds the add)",
       fuse_add_rms_norm},
      {"fuse_add_rms_norm_into_quantized_matmul",
       "right after fuse_add_rms_norm, which makes the add_rms_norm it folds into the GEMV that "
       "reads its norm, and after merge_parallel_matmuls, so a norm's one consumer is the merged "
       "q/k/v or gate/up matmul; before stitch (neither op is stitched, but the pattern rewrites "
       "come first)",
       fuse_add_rms_norm_into_quantized_matmul},
      {"fuse_swiglu_into_quantized_matmul",
       "after merge_parallel_matmuls, which makes the gate / up product whose halves the SwiGLU "
       "reads; before stitch, which would take the silu and the mul into a region",
       fuse_swiglu_into_quantized_matmul},
      {"stitch",
       "after every pattern rewrite (attention, quantized matmul, in-place updates, rope + "
       "cache write, add + rms_norm, the norm and the SwiGLU into their matmuls), which must "
       "still see the individual ops; before DCE",
       stitch},
      {"dce", "last: removes what folding and CSE left unused", dead_code_elimination},
  };
  return p;
}

}  // namespace loom::passes
