// NVRTC compilation with memory + disk caches, and library loading (see nvrtc_compile.h).
#include "backends/cuda/nvrtc_compile.h"

#include <nvrtc.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "backends/cuda/cuda_common.h"
#include "loom/error.h"

namespace loom::backends::cuda::nvrtc {
namespace {

std::atomic<uint64_t> g_compiles{0}, g_memory_hits{0}, g_disk_hits{0}, g_disk_writes{0},
    g_disk_rejects{0};

uint64_t fnv1a(const void* data, size_t n, uint64_t h = 1469598103934665603ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string nvrtc_version() {
  int major = 0, minor = 0;
  nvrtcVersion(&major, &minor);
  return std::to_string(major) + "." + std::to_string(minor);
}

// Everything the cubin depends on: the source, the target and the compiler.
std::string cache_key(const std::string& source, const std::string& arch) {
  return "nvrtc " + nvrtc_version() + " " + arch + "\n" + source;
}

// 128 bits of hash: two FNV-1a passes with different seeds.
std::string key_hash(const std::string& key) {
  return hex(fnv1a(key.data(), key.size())) +
         hex(fnv1a(key.data(), key.size(), 0x9e3779b97f4a7c15ull));
}

// A cache file: magic, payload length, payload checksum, payload. Anything else is rejected.
constexpr char kMagic[8] = {'L', 'O', 'O', 'M', 'C', 'U', 'B', '1'};

bool read_cached(const std::filesystem::path& file, std::string* image) {
  std::ifstream f(file, std::ios::binary);
  if (!f) return false;  // not cached (or unreadable): not a reject
  char magic[8];
  uint64_t size = 0, sum = 0;
  bool ok = static_cast<bool>(f.read(magic, 8)) && std::memcmp(magic, kMagic, 8) == 0 &&
            f.read(reinterpret_cast<char*>(&size), 8) && f.read(reinterpret_cast<char*>(&sum), 8) &&
            size > 0 && size < (uint64_t{1} << 30);
  if (ok) {
    image->resize(size);
    ok = f.read(image->data(), static_cast<std::streamsize>(size)) &&
         f.peek() == std::char_traits<char>::eof() && fnv1a(image->data(), size) == sum;
  }
  if (!ok) ++g_disk_rejects;
  return ok;
}

void write_cached(const std::filesystem::path& file, const std::string& image) {
  std::error_code ec;
  std::filesystem::create_directories(file.parent_path(), ec);
  if (ec) return;
  // Write then rename: a reader never sees half a file, concurrent writers never mix bytes.
  std::ostringstream tmp_name;
  tmp_name << file.string() << ".tmp." << ::getpid() << "." << std::this_thread::get_id();
  std::filesystem::path tmp = tmp_name.str();
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return;
    uint64_t size = image.size(), sum = fnv1a(image.data(), image.size());
    f.write(kMagic, 8);
    f.write(reinterpret_cast<const char*>(&size), 8);
    f.write(reinterpret_cast<const char*>(&sum), 8);
    f.write(image.data(), static_cast<std::streamsize>(image.size()));
    if (!f) {
      f.close();
      std::filesystem::remove(tmp, ec);
      return;
    }
  }
  std::filesystem::rename(tmp, file, ec);
  if (ec)
    std::filesystem::remove(tmp, ec);
  else
    ++g_disk_writes;
}

#define LOOM_NVRTC_CHECK(call, what)                                                             \
  do {                                                                                           \
    nvrtcResult r_ = (call);                                                                     \
    if (r_ != NVRTC_SUCCESS)                                                                     \
      ::loom::fail("[cuda] NVRTC ", #call, " failed for ", what, ": ", nvrtcGetErrorString(r_)); \
  } while (0)

std::string compile_uncached(const std::string& source, const std::string& arch,
                             const std::string& what) {
  nvrtcProgram prog;
  LOOM_NVRTC_CHECK(
      nvrtcCreateProgram(&prog, source.c_str(), "loom_generated.cu", 0, nullptr, nullptr), what);
  struct Destroy {
    nvrtcProgram* p;
    ~Destroy() { nvrtcDestroyProgram(p); }
  } destroy{&prog};
  std::string arch_opt = "--gpu-architecture=" + arch;
  // IEEE float semantics as on the CPU: precise division and sqrt, no flush-to-zero, and no
  // contraction of a * b + c into one rounding (the CPU backend rounds each op).
  const char* opts[] = {arch_opt.c_str(),  "--std=c++17",      "-default-device", "--ftz=false",
                        "--prec-div=true", "--prec-sqrt=true", "--fmad=false"};
  nvrtcResult r = nvrtcCompileProgram(prog, static_cast<int>(std::size(opts)), opts);
  if (r != NVRTC_SUCCESS) {
    size_t n = 0;
    nvrtcGetProgramLogSize(prog, &n);
    std::string log(n, '\0');
    if (n) nvrtcGetProgramLog(prog, log.data());
    while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
    fail("[cuda] NVRTC could not compile ", what, " for ", arch, " (", nvrtcGetErrorString(r),
         "):\n", log);
  }
  size_t n = 0;
  LOOM_NVRTC_CHECK(nvrtcGetCUBINSize(prog, &n), what);
  std::string cubin(n, '\0');
  LOOM_NVRTC_CHECK(nvrtcGetCUBIN(prog, cubin.data()), what);
  ++g_compiles;
  return cubin;
}

std::mutex g_mutex;
std::unordered_map<std::string, std::shared_ptr<const std::string>>& images() {
  static std::unordered_map<std::string, std::shared_ptr<const std::string>> m;
  return m;
}

}  // namespace

Stats stats() {
  return {g_compiles.load(), g_memory_hits.load(), g_disk_hits.load(), g_disk_writes.load(),
          g_disk_rejects.load()};
}

std::string cache_dir() {
  if (const char* d = std::getenv("LOOM_CACHE_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/loom";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/loom";
  return "";
}

std::string arch_of_device(int device) {
  static std::mutex m;
  static std::map<int, std::string> archs;
  std::lock_guard lock(m);
  auto it = archs.find(device);
  if (it != archs.end()) return it->second;
  int major = 0, minor = 0;
  LOOM_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  LOOM_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  return archs[device] = "sm_" + std::to_string(major) + std::to_string(minor);
}

std::shared_ptr<const std::string> compile(const std::string& source, const std::string& arch,
                                           const std::string& what, const CompileOptions& options) {
  const std::string key = cache_key(source, arch);
  if (options.memory_cache) {
    std::lock_guard lock(g_mutex);
    auto it = images().find(key);
    if (it != images().end()) {
      ++g_memory_hits;
      return it->second;
    }
  }
  std::filesystem::path file;
  std::string dir = options.disk_cache ? cache_dir() : "";
  if (!dir.empty()) file = std::filesystem::path(dir) / "nvrtc" / (key_hash(key) + ".cubin");
  auto image = std::make_shared<std::string>();
  if (!file.empty() && read_cached(file, image.get())) {
    ++g_disk_hits;
  } else {
    *image = compile_uncached(source, arch, what);
    if (!file.empty()) write_cached(file, *image);
  }
  std::lock_guard lock(g_mutex);
  if (images().size() > 4096) images().clear();  // bounded: sources of long-gone executables
  auto [it, inserted] = images().emplace(key, image);
  return it->second;
}

Module::~Module() {
  // Libraries live as long as the kernels that use them; at process exit the driver may be gone.
  (void)cudaLibraryUnload(lib_);
}

cudaKernel_t Module::kernel(const char* name) const {
  cudaKernel_t k = nullptr;
  LOOM_CUDA_CHECK(cudaLibraryGetKernel(&k, lib_, name));
  return k;
}

std::shared_ptr<const Module> load(const std::string& source, int device, const std::string& what) {
  static std::mutex m;
  static std::map<std::pair<std::string, std::string>, std::shared_ptr<const Module>> modules;
  const std::string arch = arch_of_device(device);
  {
    std::lock_guard lock(m);
    auto it = modules.find({arch, source});
    if (it != modules.end()) return it->second;
  }
  auto image = compile(source, arch, what);
  LOOM_CUDA_CHECK(cudaSetDevice(device));
  cudaLibrary_t lib = nullptr;
  cudaError_t e =
      cudaLibraryLoadData(&lib, image->data(), nullptr, nullptr, 0, nullptr, nullptr, 0);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    fail("[cuda] could not load the code compiled for ", what, " (", arch,
         "): ", cudaGetErrorString(e));
  }
  auto mod = std::make_shared<const Module>(lib);
  std::lock_guard lock(m);
  if (modules.size() > 4096) modules.clear();
  return modules.emplace(std::make_pair(arch, source), mod).first->second;
}

}  // namespace loom::backends::cuda::nvrtc
