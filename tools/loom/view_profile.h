// view_profile.h — `loom run --profile-json FILE`: per-op times of a profiled executable as JSON,
// the file `loom view --profile FILE` colours the graph with (docs/FORMAT.md, "Profiles").
#pragma once
#include <string>

#include "loom/loom.h"

namespace loom::view {

// exe must be compiled with CompileOptions::profile; runs: how many runs its counters cover.
std::string profile_json(const Executable& exe, int runs, const std::string& package,
                         double ms_per_run);

}  // namespace loom::view
