// view_profile.cpp — the JSON profile written by `loom run --profile-json`.
#include "view_profile.h"

#include <cstdio>

#include "ir/op_registry.h"
#include "runtime/executable_impl.h"

namespace loom::view {
namespace {
void put_string(std::string& out, const std::string& s) {
  out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  out += '"';
}
}  // namespace

std::string profile_json(const Executable& exe, int runs, const std::string& package,
                         double ms_per_run) {
  const ExecutableImpl& e = *exe.impl();
  LOOM_CHECK(e.options.profile, "[profile] compile with CompileOptions::profile = true");
  LOOM_CHECK(runs > 0, "[profile] no runs to report");
  const auto& reg = ir::OpRegistry::get();
  std::string o = "{\"format\":\"loom-profile\",\"version\":1,\"package\":";
  put_string(o, package);
  o += ",\"device\":";
  put_string(o, e.options.device.to_string());
  char buf[96];
  std::snprintf(buf, sizeof buf, ",\"runs\":%d,\"ms_per_run\":%.6f,\"nodes\":[", runs, ms_per_run);
  o += buf;
  bool first = true;
  for (size_t i = 0; i < e.graph.nodes.size(); ++i) {
    int64_t calls = e.profile_calls[i].load();
    if (!calls) continue;
    const ir::Node& n = e.graph.nodes[i];
    if (!first) o += ',';
    first = false;
    o += "{\"node\":" + std::to_string(i) + ",\"name\":";
    put_string(o, n.name);
    o += ",\"op\":";
    put_string(o, reg.info(n.op).name);
    // Microseconds per run: the counters add up every run.
    std::snprintf(buf, sizeof buf, ",\"us\":%.3f,\"calls\":%lld}",
                  static_cast<double>(e.profile_ns[i].load()) / 1e3 / runs,
                  static_cast<long long>(calls));
    o += buf;
  }
  o += "]}\n";
  return o;
}

}  // namespace loom::view
