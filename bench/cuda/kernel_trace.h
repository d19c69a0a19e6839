// Where a CUDA-graph decode step's time goes, kernel by kernel, from CUPTI's activity records
// (start / end timestamps of every kernel, also inside graph replays, with no serialisation).
// Also the host side: time inside CUDA runtime calls (graph launch, copies, waits) per step.
// Kernels launched early (programmatic dependent launch) start long before their inputs are ready,
// so a kernel's own duration says little; what it costs the step is how far it moves the step's
// end: end(i) - max(end(j), j < i) in start order. Those increments add up to the step's span.
//   KernelTrace::start(); ...replays...; cudaDeviceSynchronize(); auto t = KernelTrace::stop();
#pragma once

#include <cupti.h>
#include <cxxabi.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

namespace loom::bench {

struct KernelRecord {
  std::string name;
  uint64_t start = 0, end = 0;  // ns
  bool api = false;             // a CUDA runtime call on the host, not a kernel
};

class KernelTrace {
 public:
  // kernels = false: host runtime calls only (kernel records make graph launches slower).
  static bool start(bool kernels = true) {
    records().clear();
    if (!check(cuptiActivityRegisterCallbacks(on_request, on_complete), "register")) return false;
    return (!kernels ||
            check(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "enable")) &&
           check(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_RUNTIME), "enable runtime");
  }
  // From now on: records that start earlier are dropped by stop(). Tracing changes the first runs
  // after start() (CUPTI instruments the graph again), so mark after a warm-up run.
  static void mark() { cuptiGetTimestamp(&since()); }
  // Flushes and returns the records since start() (or mark()), in start order.
  static std::vector<KernelRecord> stop() {
    check(cuptiActivityFlushAll(1), "flush");
    check(cuptiActivityDisable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "disable");
    check(cuptiActivityDisable(CUPTI_ACTIVITY_KIND_RUNTIME), "disable runtime");
    std::vector<KernelRecord> r;
    for (const auto& k : records())
      if (k.start >= since()) r.push_back(k);
    since() = 0;
    std::sort(r.begin(), r.end(),
              [](const KernelRecord& a, const KernelRecord& b) { return a.start < b.start; });
    return r;
  }

  // Per kernel name: calls per step and the step time it adds (see the header comment), over
  // `steps` replays; the longest first. Names are cut at their template arguments. With `layers`,
  // a kernel called c >= 2 · layers times per step is also split by its call's slot in the layer
  // (call i of the step in slot i mod (c / layers); calls past layers · (c / layers), e.g. the
  // LM head's GEMV, in their own slot): a decode step's four GEMVs of a layer, told apart.
  static std::string summary(const std::vector<KernelRecord>& r, int steps, int layers = 0) {
    struct Sum {
      int calls = 0;
      double add_ns = 0;
    };
    std::map<std::string, Sum> by, host;  // kernels; host runtime calls
    std::map<std::string, int> seen;      // calls of each name so far
    uint64_t last_end = 0, span = 0, first = 0;
    int kernels = 0;
    for (const auto& k : r) {
      if (k.api) {  // host time inside runtime calls, per call name
        auto& h = host[k.name];
        ++h.calls;
        h.add_ns += static_cast<double>(k.end - k.start);
        continue;
      }
      ++kernels;
      if (last_end == 0) first = k.start, last_end = k.start;
      auto& s = by[short_name(k.name)];
      ++s.calls;
      const double add = k.end > last_end ? static_cast<double>(k.end - last_end) : 0.0;
      s.add_ns += add;
      last_end = std::max(last_end, k.end);
      if (layers > 0) seen[short_name(k.name)]++;
    }
    if (layers > 0) {  // second pass: the slots of the kernels called often enough
      std::map<std::string, int> occ;
      uint64_t end = 0;
      for (const auto& k : r) {
        if (k.api) continue;
        const std::string n = short_name(k.name);
        const int per_step = seen[n] / std::max(steps, 1), per_layer = per_step / layers;
        const int i = occ[n]++ % std::max(per_step, 1);
        const double add = end && k.end > end ? static_cast<double>(k.end - end) : 0.0;
        end = std::max(end, k.end);
        if (per_layer < 2) continue;
        const int slot = i < per_layer * layers ? i % per_layer : per_layer;
        auto& s = by[n + " #" + std::to_string(slot)];
        ++s.calls;
        s.add_ns += add;
      }
    }
    span = last_end - first;
    std::vector<std::pair<std::string, Sum>> v(by.begin(), by.end());
    std::sort(v.begin(), v.end(),
              [](const auto& a, const auto& b) { return a.second.add_ns > b.second.add_ns; });
    std::string out;
    char line[256];
    std::snprintf(line, sizeof line, "    %-44s %8s %12s %10s %7s\n", "kernel", "calls", "us/step",
                  "us/call", "share");
    out += line;
    for (const auto& [name, s] : v) {
      std::snprintf(line, sizeof line, "    %-44.44s %8.1f %12.1f %10.2f %6.1f%%\n", name.c_str(),
                    static_cast<double>(s.calls) / steps, s.add_ns / 1e3 / steps,
                    s.add_ns / 1e3 / s.calls, 100.0 * s.add_ns / static_cast<double>(span));
      out += line;
    }
    std::snprintf(line, sizeof line,
                  "    %d kernels per step, step span %.1f us (first start to last end, host "
                  "waits included)\n    host, CUDA runtime calls per step:\n",
                  kernels / std::max(steps, 1), static_cast<double>(span) / 1e3 / steps);
    out += line;
    for (const auto& [name, h] : host) {
      std::snprintf(line, sizeof line, "    %-44.44s %8.1f %12.1f %10.2f\n", name.c_str(),
                    static_cast<double>(h.calls) / steps, h.add_ns / 1e3 / steps,
                    h.add_ns / 1e3 / h.calls);
      out += line;
    }
    return out;
  }

  // One stretch of a step as a timeline: kernels [from, from + count) of the last of `steps`
  // replays, each with when it started and ended relative to the end of the kernels before it
  // (negative start: launched early and waiting, pdl.cuh) and its own duration, in us.
  static std::string timeline(const std::vector<KernelRecord>& r, int steps, int from, int count) {
    std::vector<const KernelRecord*> k;
    for (const auto& x : r)
      if (!x.api) k.push_back(&x);
    const size_t per_step = k.size() / static_cast<size_t>(std::max(steps, 1));
    if (per_step == 0) return "";
    const size_t first = k.size() - per_step;
    uint64_t prev_end = 0;
    for (size_t i = first; i < first + static_cast<size_t>(from) && i < k.size(); ++i)
      prev_end = std::max(prev_end, k[i]->end);
    std::string out;
    char line[256];
    std::snprintf(line, sizeof line, "    %-44s %9s %9s %9s\n", "kernel", "start", "end", "own");
    out += line;
    for (size_t i = first + static_cast<size_t>(from);
         i < k.size() && i < first + static_cast<size_t>(from + count); ++i) {
      auto rel = [&](uint64_t t) { return (static_cast<double>(t) - prev_end) / 1e3; };
      std::snprintf(line, sizeof line, "    %-44.44s %9.2f %9.2f %9.2f\n",
                    short_name(k[i]->name).c_str(), rel(k[i]->start), rel(k[i]->end),
                    static_cast<double>(k[i]->end - k[i]->start) / 1e3);
      out += line;
      prev_end = std::max(prev_end, k[i]->end);
    }
    return out;
  }

 private:
  static uint64_t& since() {
    static uint64_t t = 0;
    return t;
  }
  static std::vector<KernelRecord>& records() {
    static std::vector<KernelRecord> r;
    return r;
  }
  static bool check(CUptiResult e, const char* what) {
    if (e == CUPTI_SUCCESS) return true;
    const char* msg = nullptr;
    cuptiGetResultString(e, &msg);
    std::fprintf(stderr, "CUPTI %s: %s\n", what, msg ? msg : "?");
    return false;
  }
  // "void ns::(anonymous namespace)::kernel<1, 2>(Args)" -> "kernel<1, 2>".
  static std::string short_name(const std::string& mangled) {
    int status = 0;
    char* d = abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &status);
    std::string s = status == 0 && d ? d : mangled;
    std::free(d);
    for (size_t a; (a = s.find("(anonymous namespace)::")) != std::string::npos;) s.erase(a, 23);
    if (s.rfind("void ", 0) == 0) s.erase(0, 5);
    s = s.substr(0, s.find('('));
    const auto t = s.find('<');
    const auto c = s.rfind("::", t);
    return c == std::string::npos ? s : s.substr(c + 2);
  }
  static void CUPTIAPI on_request(uint8_t** buffer, size_t* size, size_t* max_records) {
    *size = 8 << 20;
    *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, *size));
    *max_records = 0;
  }
  static void CUPTIAPI on_complete(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
    CUpti_Activity* rec = nullptr;
    while (cuptiActivityGetNextRecord(buffer, valid, &rec) == CUPTI_SUCCESS) {
      if (rec->kind == CUPTI_ACTIVITY_KIND_RUNTIME) {
        const auto* a = reinterpret_cast<const CUpti_ActivityAPI*>(rec);
        const char* name = nullptr;
        cuptiGetCallbackName(CUPTI_CB_DOMAIN_RUNTIME_API, a->cbid, &name);
        records().push_back({name ? name : "?", a->start, a->end, true});
        continue;
      }
      if (rec->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) continue;
      const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(rec);
      records().push_back({k->name ? k->name : "?", k->start, k->end});
    }
    std::free(buffer);
  }
};

}  // namespace loom::bench
