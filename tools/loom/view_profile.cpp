// view_profile.cpp — the JSON profile written by `loom run --profile-json`.
#include "view_profile.h"

#include <nlohmann/json.hpp>

#include "ir/op_registry.h"
#include "runtime/executable_impl.h"

namespace loom::view {

std::string profile_json(const Executable& exe, int runs, const std::string& package,
                         double ms_per_run) {
  const ExecutableImpl& e = *exe.impl();
  LOOM_CHECK(e.options.profile, "[profile] compile with CompileOptions::profile = true");
  LOOM_CHECK(runs > 0, "[profile] no runs to report");
  const auto& reg = ir::OpRegistry::get();
  nlohmann::json nodes = nlohmann::json::array();
  for (size_t i = 0; i < e.graph.nodes.size(); ++i) {
    int64_t calls = e.profile_calls[i].load();
    if (!calls) continue;
    const ir::Node& n = e.graph.nodes[i];
    // Microseconds per run: the counters add up every run.
    nodes.push_back({{"node", i},
                     {"name", n.name},
                     {"op", reg.info(n.op).name},
                     {"us", static_cast<double>(e.profile_ns[i].load()) / 1e3 / runs},
                     {"calls", calls}});
  }
  nlohmann::json o = {{"format", "loom-profile"},
                      {"version", 1},
                      {"package", package},
                      {"device", e.options.device.to_string()},
                      {"runs", runs},
                      {"ms_per_run", ms_per_run},
                      {"nodes", nodes}};
  // Invalid UTF-8 in a name is replaced rather than thrown on (names come from model files).
  return o.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace loom::view
