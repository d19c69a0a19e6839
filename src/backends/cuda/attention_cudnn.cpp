// sdpa prefill through cuDNN's fused flash attention: one cudnn-frontend graph (a single SDPA
// node, f32 softmax, no stats) per shape, built on first use and cached; executed on the launch
// stream with its workspace from the device's caching allocator. The only translation unit that
// includes cudnn_frontend.h (heavy). NV_CUDNN_FRONTEND_USE_DYNAMIC_LOADING makes the frontend call
// cuDNN through `cudnn_frontend::cudnn_dlhandle`, which this file defines and fills by dlopen:
// nothing links libcudnn, and without the library the path is simply not taken.
#include "backends/cuda/attention_cudnn.h"

#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "backends/cuda/cuda_common.h"

#if LOOM_HAVE_CUDNN
#include <cudnn_frontend.h>
#include <dlfcn.h>

// The frontend resolves every cuDNN entry point in this handle (its Python package sets its own).
namespace cudnn_frontend {
void* cudnn_dlhandle = nullptr;
}  // namespace cudnn_frontend
#endif

namespace loom::backends::cuda::attn {
namespace {

// LOOM_SDPA_CUDNN: "0" disables the path; any other value also reports (stderr) why it is not
// available and every shape cuDNN rejects. Unset: enabled, silent.
bool env_disabled() {
  const char* e = std::getenv("LOOM_SDPA_CUDNN");
  return e && std::strcmp(e, "0") == 0;
}
bool verbose() {
  const char* e = std::getenv("LOOM_SDPA_CUDNN");
  return e && *e && std::strcmp(e, "0") != 0;
}

struct Probe {
  bool ok = false;
  int version = 0;
  std::string why;
};

#if LOOM_HAVE_CUDNN
Probe load_cudnn() {
  Probe r;
  // The frontend dlopens libcudart.so.12 before .so.13 for its own runtime calls (device
  // properties, stream capture queries); pin it to the runtime Loom was built with (already loaded,
  // so dlopen returns that copy) unless the user chose one.
  static const std::string cudart = "libcudart.so." + std::to_string(CUDART_VERSION / 1000);
  setenv("CUDNN_FRONTEND_CUDART_LIB_NAME", cudart.c_str(), /*overwrite=*/0);
  void* h = nullptr;
  std::string errs;
  for (const char* name : {"libcudnn.so.9", "libcudnn.so"}) {
    dlerror();
    h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (h) break;
    const char* e = dlerror();
    errs += std::string(errs.empty() ? "" : "; ") + (e ? e : name);
  }
  if (!h) {
    r.why = "cannot load libcudnn.so.9 (" + errs + ")";
    return r;
  }
  using GetVersion = size_t (*)();
  auto get_version = reinterpret_cast<GetVersion>(dlsym(h, "cudnnGetVersion"));
  size_t v = get_version ? get_version() : 0;
  if (v < 90000) {
    r.why = "loaded cuDNN reports version " + std::to_string(v) + " (< 9.0)";
    dlclose(h);
    return r;
  }
  cudnn_frontend::cudnn_dlhandle = h;  // never closed: plans and handles live to the end
  r.ok = true;
  r.version = static_cast<int>(v);
  return r;
}
#endif

const Probe& probe() {
  static const Probe p = [] {
    Probe r;
    if (env_disabled()) {
      r.why = "disabled by LOOM_SDPA_CUDNN=0";
    } else {
#if LOOM_HAVE_CUDNN
      r = load_cudnn();
#else
      r.why =
          "built without the cuDNN path (LOOM_CUDNN off, or cudnn-frontend / cudnn.h not found)";
#endif
    }
    if (!r.ok && verbose()) std::fprintf(stderr, "[loom] sdpa: no cuDNN path: %s\n", r.why.c_str());
    return r;
  }();
  return p;
}

}  // namespace

bool cudnn_available() { return probe().ok; }
const char* cudnn_unavailable_reason() { return probe().why.c_str(); }
int cudnn_version() { return probe().version; }

bool cudnn_supports(const SdpaLaunch& a) {
  bool half = a.q_dtype == DType::f16 || a.q_dtype == DType::bf16;
  return half && a.kv_dtype == a.q_dtype && a.out_dtype == a.q_dtype && a.D == a.Dv &&
         (a.D == 64 || a.D == 128 || a.D == 256) && a.Lq > 8 && a.Lk >= 1 && !a.mask && !a.kv_len &&
         (!a.causal || a.Lq <= a.Lk) && a.Hkv >= 1 && a.Hq % a.Hkv == 0 && aligned16(a.q) &&
         aligned16(a.k) && aligned16(a.v) && aligned16(a.out);
}

#if !LOOM_HAVE_CUDNN

bool cudnn_launch(const SdpaLaunch&, cudaStream_t, int, std::string* why) {
  if (why) *why = cudnn_unavailable_reason();
  return false;
}

#else

namespace {
namespace fe = cudnn_frontend;

constexpr size_t kMaxPlans = 256;  // least recently used plans go beyond this
enum : int64_t { kUidQ = 1, kUidK = 2, kUidV = 3, kUidO = 4 };

struct Key {
  int64_t B, Hq, Hkv, Lq, Lk, D;
  int dtype;
  bool causal;
  uint32_t scale_bits;
  int device;
  auto operator<=>(const Key&) const = default;
};

struct Plan {
  std::shared_ptr<fe::graph::Graph> graph;  // null: cuDNN failed for this key (not retried)
  int64_t workspace = 0;
  uint64_t last_use = 0;
};

// Leaked on purpose: plans and handles must not be destroyed during static destruction (the
// CUDA context and cuDNN may be gone by then).
struct State {
  std::mutex mu;
  std::map<Key, Plan> plans;
  std::map<int, cudnnHandle_t> handles;  // nullptr: creation failed on that device
  uint64_t tick = 0;
};
State& state() {
  static State& s = *new State;
  return s;
}

// Makes `device` current for the scope (cuDNN handles and the frontend's device queries use the
// current device).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    if (cudaGetDevice(&prev_) == cudaSuccess && prev_ != device && device >= 0)
      set_ = cudaSetDevice(device) == cudaSuccess;
  }
  ~DeviceGuard() {
    if (set_) cudaSetDevice(prev_);
  }

 private:
  int prev_ = -1;
  bool set_ = false;
};

// True when a stream capture is open on `s` (or the query failed: then be conservative).
bool capturing(cudaStream_t s) {
  cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(s, &st) != cudaSuccess) {
    cudaGetLastError();  // not sticky; clear it so the next launch check does not see it
    return true;
  }
  return st != cudaStreamCaptureStatusNone;
}

std::string check(fe::error_t e, const char* step) {
  if (e.is_good()) return "";
  return std::string(step) + ": " + e.get_message();
}

// Builds the graph for `k` (the caller holds the lock, the device is current). Returns "" or why
// not.
std::string build(const Key& k, cudnnHandle_t h, Plan* p) {
  auto g = std::make_shared<fe::graph::Graph>();
  g->set_io_data_type(k.dtype == static_cast<int>(DType::bf16) ? fe::DataType_t::BFLOAT16
                                                               : fe::DataType_t::HALF)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  auto bhld = [&](const char* name, int64_t uid, int64_t H, int64_t L) {
    return fe::graph::Tensor_attributes()
        .set_name(name)
        .set_uid(uid)
        .set_dim({k.B, H, L, k.D})
        .set_stride({H * L * k.D, L * k.D, k.D, 1});
  };
  auto q = g->tensor(bhld("Q", kUidQ, k.Hq, k.Lq));
  auto kt = g->tensor(bhld("K", kUidK, k.Hkv, k.Lk));
  auto vt = g->tensor(bhld("V", kUidV, k.Hkv, k.Lk));
  auto opt = fe::graph::SDPA_attributes()
                 .set_name("loom_sdpa")
                 .set_generate_stats(false)
                 .set_attn_scale(std::bit_cast<float>(k.scale_bits));
  // Loom masks key j for query i when j > Lk - Lq + i: the diagonal ends at the bottom-right
  // corner (PyTorch's convention). With Lq == Lk both alignments agree; top-left is accepted by
  // older cuDNN releases too.
  if (k.causal)
    opt.set_diagonal_alignment(k.Lq == k.Lk ? fe::DiagonalAlignment_t::TOP_LEFT
                                            : fe::DiagonalAlignment_t::BOTTOM_RIGHT)
        .set_diagonal_band_right_bound(0);
  auto [o, stats] = g->sdpa(q, kt, vt, opt);
  (void)stats;
  o->set_output(true)
      .set_uid(kUidO)
      .set_dim({k.B, k.Hq, k.Lq, k.D})
      .set_stride({k.Hq * k.Lq * k.D, k.Lq * k.D, k.D, 1});
  std::string why;
  if ((why = check(g->validate(), "validate")).size()) return why;
  if ((why = check(g->build_operation_graph(h), "build_operation_graph")).size()) return why;
  if ((why = check(g->create_execution_plans({fe::HeurMode_t::A}), "create_execution_plans"))
          .size())
    return why;
  if ((why = check(g->check_support(), "check_support")).size()) return why;
  if ((why = check(g->build_plans(fe::BuildPlanPolicy_t::HEURISTICS_CHOICE), "build_plans")).size())
    return why;
  int64_t ws = 0;
  if ((why = check(g->get_workspace_size(ws), "get_workspace_size")).size()) return why;
  p->graph = std::move(g);
  p->workspace = ws;
  return "";
}

std::string key_name(const Key& k) {
  char b[160];
  std::snprintf(b, sizeof b, "B%lld Hq%lld Hkv%lld Lq%lld Lk%lld D%lld %s%s cuda:%d",
                static_cast<long long>(k.B), static_cast<long long>(k.Hq),
                static_cast<long long>(k.Hkv), static_cast<long long>(k.Lq),
                static_cast<long long>(k.Lk), static_cast<long long>(k.D),
                k.dtype == static_cast<int>(DType::bf16) ? "bf16" : "f16",
                k.causal ? " causal" : "", k.device);
  return b;
}

}  // namespace

bool cudnn_launch(const SdpaLaunch& a, cudaStream_t stream, int device, std::string* why_out) {
  if (!cudnn_available()) {
    if (why_out) *why_out = cudnn_unavailable_reason();
    return false;
  }
  if (!cudnn_supports(a)) {
    if (why_out) *why_out = "shape or dtype not taken by the cuDNN path";
    return false;
  }
  const Key k{a.B,
              a.Hq,
              a.Hkv,
              a.Lq,
              a.Lk,
              a.D,
              static_cast<int>(a.q_dtype),
              a.causal,
              std::bit_cast<uint32_t>(a.scale),
              device};
  const bool cap = capturing(stream);
  State& s = state();
  std::lock_guard lock(s.mu);
  auto fail = [&](const std::string& why) {
    if (why_out) *why_out = why;
    if (verbose())
      std::fprintf(stderr, "[loom] sdpa: cuDNN failed for %s, using Loom's kernel: %s\n",
                   key_name(k).c_str(), why.c_str());
    Plan& p = s.plans[k];
    p.graph.reset();
    p.last_use = ++s.tick;
    return false;
  };
  try {
    auto hit = s.handles.find(device);
    auto it = s.plans.find(k);
    if (it != s.plans.end() && !it->second.graph) {  // failed before
      if (why_out) *why_out = "cuDNN failed for this shape before";
      return false;
    }
    // Creating a handle or building a plan inside an open stream capture is not safe: take
    // Loom's kernel this time (not remembered; the eager run before a capture builds both).
    if (cap && (hit == s.handles.end() || it == s.plans.end())) {
      if (why_out) *why_out = "stream capture open before the plan was built";
      return false;
    }
    DeviceGuard guard(device);
    if (hit == s.handles.end()) {
      cudnnHandle_t h = nullptr;
      if (fe::detail::create_handle(&h) != CUDNN_STATUS_SUCCESS) h = nullptr;
      hit = s.handles.emplace(device, h).first;
    }
    if (!hit->second) return fail("cudnnCreate failed on this device");
    if (it == s.plans.end()) {
      if (s.plans.size() >= kMaxPlans) {  // drop the least recently used
        auto lru = s.plans.begin();
        for (auto j = s.plans.begin(); j != s.plans.end(); ++j)
          if (j->second.last_use < lru->second.last_use) lru = j;
        s.plans.erase(lru);
      }
      Plan p;
      std::string why = build(k, hit->second, &p);
      if (!why.empty()) return fail(why);
      it = s.plans.emplace(k, std::move(p)).first;
    }
    Plan& p = it->second;
    p.last_use = ++s.tick;
    if (fe::detail::set_stream(hit->second, stream) != CUDNN_STATUS_SUCCESS)
      return fail("cudnnSetStream failed");
    // Stream-ordered like every Loom kernel's scratch: the block goes back to the cache when this
    // pointer dies, and the next user is ordered after this work on the device's stream.
    std::shared_ptr<Storage> ws =
        p.workspace > 0 ? scratch(device, static_cast<size_t>(p.workspace)) : nullptr;
    std::unordered_map<int64_t, void*> pack{{kUidQ, const_cast<void*>(a.q)},
                                            {kUidK, const_cast<void*>(a.k)},
                                            {kUidV, const_cast<void*>(a.v)},
                                            {kUidO, a.out}};
    std::string why =
        check(p.graph->execute(hit->second, pack, ws ? ws->data() : nullptr), "execute");
    if (!why.empty()) return fail(why);
    return true;
  } catch (const std::exception& e) {  // the frontend throws when a cuDNN symbol is missing
    return fail(std::string("exception: ") + e.what());
  }
}

#endif  // LOOM_HAVE_CUDNN

}  // namespace loom::backends::cuda::attn
