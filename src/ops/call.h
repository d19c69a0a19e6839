// The `call` op's declared output types (shared by its type inference, the builder and the
// runtime, which resolves a call's output shapes by asking the bound executable).
#pragma once
#include <vector>

#include "loom/attrs.h"
#include "loom/shape.h"

namespace loom::ops {

// The declared output types of a call; throws "[call] ..." when the attributes are inconsistent.
std::vector<TensorType> call_output_types(const CallAttrs& attrs);
// Stores `types` in the attributes' flattened form.
void set_call_output_types(CallAttrs& attrs, const std::vector<TensorType>& types);
// Whether a value of type `got` may flow where `want` is declared: same dtype and rank, static
// dims equal where both are static (dynamic dims are checked per run).
bool types_compatible(const TensorType& want, const TensorType& got);

}  // namespace loom::ops
