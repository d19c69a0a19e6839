// `.loom` packages: writer and validating, memory-mapping reader (format: docs/FORMAT.md).
//
// Layout: "LOOMPKG\0" | u32 version | u64 header length | JSON header | pad to 64 | tensor data,
// every tensor at a 64-byte aligned offset from the start of the data section. Attributes are
// serialised generically through Attrs::fields() / set_fields() (no per-op code), so a new op or
// attribute needs nothing here.
#include "io/package.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <tuple>

#include "ir/op_registry.h"
#include "loom/package.h"
#include "runtime/compile.h"
#include "runtime/executable_impl.h"

namespace loom::io {
namespace {

using json = nlohmann::json;

constexpr char kMagic[8] = {'L', 'O', 'O', 'M', 'P', 'K', 'G', '\0'};
constexpr uint64_t kPrefixBytes = 8 + 4 + 8;
constexpr uint64_t kAlign = 64;
// Far beyond any real model; keeps products of dims from overflowing before the size check.
constexpr int64_t kMaxDim = int64_t{1} << 40;

uint64_t align_up(uint64_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

// ------------------------------------------------------------------------------------ writing

// Tensors to write, deduplicated by identity (tied weights share storage and layout).
struct DataWriter {
  using Key =
      std::tuple<const Storage*, int64_t, DType, std::vector<int64_t>, std::vector<int64_t>>;
  std::map<Key, uint64_t> offsets;
  std::vector<NDArray> arrays;  // contiguous, in offset order
  uint64_t size = 0;

  json ref(const NDArray& a) {
    if (!a.defined()) return nullptr;
    Key key{a.storage().get(), a.offset(), a.dtype(), a.shape().dims(), a.strides()};
    auto it = offsets.find(key);
    uint64_t off;
    if (it != offsets.end()) {
      off = it->second;
    } else {
      off = size;
      offsets.emplace(key, off);
      arrays.push_back(a.contiguous());
      size = align_up(size + a.nbytes());
    }
    return json{{"dtype", std::string(dtype_name(a.dtype()))},
                {"shape", a.shape().dims()},
                {"offset", off},
                {"nbytes", a.nbytes()}};
  }
};

json double_json(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  return d;
}

// Every attribute value is tagged with its kind so that it reads back into the same variant
// alternative: {"i": 3}, {"f": 0.5}, {"b": true}, {"s": "x"}, {"iv": [..]}, {"fv": [..]},
// {"t": tensor reference or null}.
json attr_json(const AttrValue& v, DataWriter& data) {
  return std::visit(
      [&](const auto& x) -> json {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, int64_t>)
          return {{"i", x}};
        else if constexpr (std::is_same_v<T, double>)
          return {{"f", double_json(x)}};
        else if constexpr (std::is_same_v<T, bool>)
          return {{"b", x}};
        else if constexpr (std::is_same_v<T, std::string>)
          return {{"s", x}};
        else if constexpr (std::is_same_v<T, std::vector<int64_t>>)
          return {{"iv", x}};
        else if constexpr (std::is_same_v<T, std::vector<double>>) {
          json a = json::array();
          for (double d : x) a.push_back(double_json(d));
          return {{"fv", a}};
        } else {
          return {{"t", data.ref(x)}};
        }
      },
      v);
}

json type_json(const TensorType& t) {
  return {{"dtype", std::string(dtype_name(t.dtype))}, {"shape", t.shape.dims()}};
}

json value_json(ir::Value v) { return json::array({v.node, v.index}); }

json options_json(const CompileOptions& o) {
  return {{"device", o.device.to_string()},
          {"optimization_level", o.optimization_level},
          {"disabled_passes", o.disabled_passes},
          {"constant_folding_max_elements", o.constant_folding_max_elements},
          {"plan_cache_capacity", o.plan_cache_capacity},
          {"num_threads", o.num_threads}};
}

// ------------------------------------------------------------------------------------ reading

// The mapped (or copied) bytes of a package; constants keep it alive through their storage.
struct Mapping {
  std::byte* data = nullptr;
  size_t size = 0;
  bool mapped = false;
  std::shared_ptr<Mapping> parent;  // an embedded package: a range of its parent's bytes
  ~Mapping() {
    if (!data || parent) return;
    if (mapped)
      ::munmap(data, size);
    else
      std::free(data);
  }
};

class Reader {
 public:
  Reader(std::string name, std::shared_ptr<Mapping> map, int depth = 0)
      : name_(std::move(name)), map_(std::move(map)), depth_(depth) {}

  template <class... Args>
  [[noreturn]] void error(const Args&... args) const {
    fail("[package] ", name_, ": ", args...);
  }

  Package read() {
    const std::byte* p = map_->data;
    uint64_t size = map_->size;
    if (size < kPrefixBytes) error("file too short (", size, " bytes) to be a package");
    if (std::memcmp(p, kMagic, 8) != 0) error("not a Loom package (bad magic)");
    uint32_t version;
    uint64_t header_len;
    std::memcpy(&version, p + 8, 4);
    std::memcpy(&header_len, p + 12, 8);
    if (version == 0 || version > kPackageVersion)
      error("format version ", version, " is not supported (this Loom reads 1 to ", kPackageVersion,
            ")");
    if (header_len > size - kPrefixBytes)
      error("header length ", header_len, " runs past the end of the file (", size, " bytes)");
    data_start_ = align_up(kPrefixBytes + header_len);
    if (data_start_ > size) error("data section starts past the end of the file");
    data_size_ = size - data_start_;

    json h;
    try {
      const char* b = reinterpret_cast<const char*>(p + kPrefixBytes);
      h = json::parse(b, b + header_len);
    } catch (const json::exception& e) {
      error("the header is not valid JSON: ", e.what());
    }
    Package pkg;
    pkg.version = version;
    pkg.file_bytes = size;
    pkg.data_bytes = data_size_;
    try {
      parse(h, pkg);
    } catch (const json::exception& e) {  // defensive: every access below is checked first
      error("malformed header: ", e.what());
    }
    return pkg;
  }

 private:
  const json& member(const json& obj, const char* key, const std::string& where) const {
    if (!obj.is_object()) error(where, " must be an object");
    auto it = obj.find(key);
    if (it == obj.end()) error(where, " has no '", key, "'");
    return *it;
  }
  const json& array(const json& obj, const char* key, const std::string& where) const {
    const json& a = member(obj, key, where);
    if (!a.is_array()) error(where, ".", key, " must be an array");
    return a;
  }
  std::string str(const json& j, const std::string& where) const {
    if (!j.is_string()) error(where, " must be a string");
    return j.get<std::string>();
  }
  int64_t integer(const json& j, const std::string& where) const {
    if (j.is_number_unsigned()) {
      if (j.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) error(where, " is out of range");
      return static_cast<int64_t>(j.get<uint64_t>());
    }
    if (!j.is_number_integer()) error(where, " must be an integer");
    return j.get<int64_t>();
  }
  int64_t integer_in(const json& j, int64_t lo, int64_t hi, const std::string& where) const {
    int64_t v = integer(j, where);
    if (v < lo || v > hi) error(where, " = ", v, " is outside [", lo, ", ", hi, "]");
    return v;
  }
  double number(const json& j, const std::string& where) const {
    if (j.is_string()) {
      std::string s = j.get<std::string>();
      if (s == "nan") return NAN;
      if (s == "inf") return INFINITY;
      if (s == "-inf") return -INFINITY;
    }
    if (!j.is_number()) error(where, " must be a number");
    return j.get<double>();
  }
  std::vector<int64_t> int_list(const json& j, const std::string& where) const {
    if (!j.is_array()) error(where, " must be an array of integers");
    std::vector<int64_t> v;
    for (size_t i = 0; i < j.size(); ++i)
      v.push_back(integer(j[i], where + "[" + std::to_string(i) + "]"));
    return v;
  }
  DType dtype(const json& j, const std::string& where) const {
    std::string s = str(j, where);
    try {
      return dtype_from_name(s);
    } catch (const Error&) {
      error(where, ": unknown dtype '", s, "'");
    }
  }
  Shape shape(const json& j, bool allow_dynamic, const std::string& where) const {
    std::vector<int64_t> dims = int_list(j, where);
    if (dims.size() > 64) error(where, " has rank ", dims.size(), " (at most 64)");
    for (int64_t d : dims)
      if (d < (allow_dynamic ? -1 : 0) || d > kMaxDim) error(where, " has an invalid dim ", d);
    return Shape(dims);
  }
  TensorType tensor_type(const json& j, const std::string& where) const {
    return {dtype(member(j, "dtype", where), where + ".dtype"),
            shape(member(j, "shape", where), true, where + ".shape")};
  }

  // A tensor reference: dtype, shape, offset and size, all checked against the data section.
  NDArray tensor(const json& j, const std::string& where) const {
    if (j.is_null()) return NDArray();
    DType dt = dtype(member(j, "dtype", where), where + ".dtype");
    Shape sh = shape(member(j, "shape", where), false, where + ".shape");
    int64_t offset = integer(member(j, "offset", where), where + ".offset");
    int64_t nbytes = integer(member(j, "nbytes", where), where + ".nbytes");
    uint64_t numel = 1;
    for (int64_t d : sh) {
      if (d != 0 && numel > static_cast<uint64_t>(kMaxDim) / static_cast<uint64_t>(d))
        error(where, ": shape ", sh.to_string(), " is too large");
      numel *= static_cast<uint64_t>(d);
    }
    if (numel > data_size_ * 2 + 1 && numel > 0)
      error(where, ": shape ", sh.to_string(), " needs more data than the file holds");
    uint64_t want = storage_bytes(dt, static_cast<int64_t>(numel));
    if (nbytes < 0 || static_cast<uint64_t>(nbytes) != want)
      error(where, ": nbytes ", nbytes, " does not match ", dtype_name(dt), sh.to_string(), " (",
            want, " bytes)");
    if (offset < 0 || static_cast<uint64_t>(offset) % kAlign != 0)
      error(where, ": data offset ", offset, " is not a multiple of ", kAlign);
    if (static_cast<uint64_t>(offset) > data_size_ ||
        want > data_size_ - static_cast<uint64_t>(offset))
      error(where, ": data [", offset, ", +", want, ") lies outside the data section (", data_size_,
            " bytes)");
    std::byte* at = map_->data + data_start_ + static_cast<uint64_t>(offset);
    auto storage = Storage::external(at, want, std::static_pointer_cast<void>(map_));
    return NDArray(storage, dt, sh, contiguous_strides(sh), 0);
  }

  AttrValue attr(const json& j, const std::string& where) const {
    if (!j.is_object() || j.size() != 1) error(where, " must be an object with one tag");
    const std::string& tag = j.begin().key();
    const json& v = j.begin().value();
    if (tag == "i") return integer(v, where);
    if (tag == "f") return number(v, where);
    if (tag == "b") {
      if (!v.is_boolean()) error(where, " must be a boolean");
      return v.get<bool>();
    }
    if (tag == "s") return str(v, where);
    if (tag == "iv") return int_list(v, where);
    if (tag == "fv") {
      if (!v.is_array()) error(where, " must be an array of numbers");
      std::vector<double> out;
      for (size_t i = 0; i < v.size(); ++i) out.push_back(number(v[i], where));
      return out;
    }
    if (tag == "t") return tensor(v, where);
    error(where, ": unknown attribute tag '", tag, "'");
  }

  ir::Value value_ref(const json& j, const ir::GraphData& g, size_t before,
                      const std::string& where) const {
    if (!j.is_array() || j.size() != 2) error(where, " must be [node, output]");
    int64_t node = integer(j[0], where + "[0]");
    int64_t index = integer(j[1], where + "[1]");
    if (node < 0 || static_cast<size_t>(node) >= before)
      error(where, " refers to node ", node, ", which is not defined before it");
    if (index < 0 ||
        static_cast<size_t>(index) >= g.nodes[static_cast<size_t>(node)].outputs.size())
      error(where, " refers to output ", index, " of node ", node, ", which has ",
            g.nodes[static_cast<size_t>(node)].outputs.size());
    return {static_cast<int32_t>(node), static_cast<int32_t>(index)};
  }

  void parse(const json& h, Package& pkg) const {
    if (!h.is_object()) error("the header must be a JSON object");
    if (str(member(h, "format", "header"), "format") != "loom-package")
      error("header.format is not 'loom-package'");
    pkg.kind = str(member(h, "kind", "header"), "kind");
    if (pkg.kind != "graph" && pkg.kind != "executable")
      error("kind must be 'graph' or 'executable', got '", pkg.kind, "'");

    const json& opt = member(h, "compile_options", "header");
    const std::string ow = "compile_options";
    try {
      pkg.options.device = Device::parse(str(member(opt, "device", ow), ow + ".device"));
    } catch (const Error& e) {
      error("compile_options.device: ", e.what());
    }
    pkg.options.optimization_level = static_cast<int>(
        integer_in(member(opt, "optimization_level", ow), 0, 1, ow + ".optimization_level"));
    const json& dp = array(opt, "disabled_passes", ow);
    for (const auto& p : dp)
      pkg.options.disabled_passes.push_back(str(p, ow + ".disabled_passes[]"));
    pkg.options.constant_folding_max_elements =
        integer(member(opt, "constant_folding_max_elements", ow), ow);
    pkg.options.plan_cache_capacity = static_cast<size_t>(integer_in(
        member(opt, "plan_cache_capacity", ow), 1, 1 << 20, ow + ".plan_cache_capacity"));
    pkg.options.num_threads = static_cast<int>(
        integer_in(member(opt, "num_threads", ow), 0, 1 << 16, ow + ".num_threads"));

    for (const auto& l : array(h, "pass_log", "header"))
      pkg.pass_log.push_back(str(l, "pass_log[]"));

    const json& gj = member(h, "graph", "header");
    ir::GraphData& g = pkg.graph;
    const json& vars = array(gj, "variables", "graph");
    for (size_t i = 0; i < vars.size(); ++i) {
      std::string w = "graph.variables[" + std::to_string(i) + "]";
      std::string name = str(member(vars[i], "name", w), w + ".name");
      if (name.empty()) error(w, " has an empty name");
      if (g.find_variable(name) >= 0) error(w, ": variable '", name, "' is defined twice");
      NDArray init = tensor(member(vars[i], "data", w), w + ".data");
      if (!init.defined()) error(w, " has no data");
      g.variables.push_back({name, init});
    }

    const auto& reg = ir::OpRegistry::get();
    const json& nodes = array(gj, "nodes", "graph");
    std::set<std::string> placeholder_names;
    for (size_t i = 0; i < nodes.size(); ++i) {
      std::string w = "graph.nodes[" + std::to_string(i) + "]";
      const json& nj = nodes[i];
      std::string op_name = str(member(nj, "op", w), w + ".op");
      if (!reg.contains(op_name)) error(w, ": unknown op '", op_name, "'");
      ir::OpId id = reg.find(op_name);
      w += " (" + op_name + ")";
      std::string name = str(member(nj, "name", w), w + ".name");
      std::vector<ir::Value> inputs;
      const json& ins = array(nj, "inputs", w);
      for (size_t k = 0; k < ins.size(); ++k)
        inputs.push_back(value_ref(ins[k], g, i, w + ".inputs[" + std::to_string(k) + "]"));
      const json& aj = member(nj, "attrs", w);
      if (!aj.is_object()) error(w, ".attrs must be an object");
      AttrFields fields;
      for (auto it = aj.begin(); it != aj.end(); ++it)
        fields.emplace_back(it.key(), attr(it.value(), w + ".attrs." + it.key()));
      auto attrs = reg.info(id).default_attrs()->clone();
      try {
        attrs->set_fields(fields);
      } catch (const Error& e) {
        error(w, ": ", e.what());
      }
      if (id == ir::op::read || id == ir::op::assign) {
        const auto& var = attrs_as<VariableRefAttrs>(*attrs).variable;
        if (g.find_variable(var) < 0) error(w, " refers to unknown variable '", var, "'");
      }
      if (id == ir::op::placeholder) {
        const auto& pname = attrs_as<PlaceholderAttrs>(*attrs).name;
        if (!placeholder_names.insert(pname).second)
          error(w, ": input '", pname, "' is defined twice");
      }
      try {
        ir::add_node(g, id, std::move(inputs), std::move(attrs), name);  // re-runs type inference
      } catch (const Error& e) {
        error(w, ": ", e.what());
      }
      const json& outs = array(nj, "outputs", w);
      const auto& inferred = g.nodes.back().outputs;
      bool same = outs.size() == inferred.size();
      for (size_t k = 0; same && k < outs.size(); ++k)
        same = tensor_type(outs[k], w + ".outputs[" + std::to_string(k) + "]") == inferred[k];
      if (!same) {
        std::string got;
        for (const auto& t : inferred) got += (got.empty() ? "" : ", ") + t.to_string();
        error(w, ": stored output types ", outs.dump(), " differ from the inferred ones (", got,
              ")");
      }
    }
    const json& outs = array(gj, "outputs", "graph");
    for (size_t k = 0; k < outs.size(); ++k)
      pkg.outputs.push_back(
          value_ref(outs[k], g, g.nodes.size(), "graph.outputs[" + std::to_string(k) + "]"));
    parse_callables(h, pkg);
  }

  // Callables (version 2): embedded packages are byte ranges of this one's data section, read
  // in place (their constants stay in the same mapping).
  void parse_callables(const json& h, Package& pkg) const {
    auto it = h.find("callables");
    if (it == h.end()) return;
    if (pkg.version < 2) error("callables need format version 2");
    if (!it->is_array()) error("header.callables must be an array");
    std::set<std::string> seen;
    for (size_t i = 0; i < it->size(); ++i) {
      std::string w = "callables[" + std::to_string(i) + "]";
      const json& c = (*it)[i];
      Package::Callable entry;
      entry.symbol = str(member(c, "symbol", w), w + ".symbol");
      if (entry.symbol.empty()) error(w, " has an empty symbol");
      if (!seen.insert(entry.symbol).second)
        error(w, ": symbol '", entry.symbol, "' is stored twice");
      NDArray bytes = tensor(member(c, "package", w), w + ".package");
      if (bytes.defined()) {
        if (bytes.dtype() != u8 || bytes.rank() != 1) error(w, ".package must be u8 bytes");
        if (depth_ >= 16) error(w, ": callables nest deeper than 16 levels");
        auto sub = std::make_shared<Mapping>();
        sub->data = static_cast<std::byte*>(bytes.data());
        sub->size = static_cast<size_t>(bytes.nbytes());
        sub->parent = map_;
        entry.package = std::make_shared<Package>(
            Reader(name_ + " (callable '" + entry.symbol + "')", sub, depth_ + 1).read());
      }
      pkg.callables.push_back(std::move(entry));
    }
  }

  std::string name_;
  std::shared_ptr<Mapping> map_;
  int depth_ = 0;
  uint64_t data_start_ = 0;
  uint64_t data_size_ = 0;
};

}  // namespace

namespace {
void write_stream(std::ostream& f, const std::string& path, const std::string& kind,
                  const ir::GraphData& g, const std::vector<ir::Value>& outputs,
                  const CompileOptions& options, const std::vector<std::string>& pass_log,
                  const std::vector<CallableEntry>& callables);

// The lowering lines describe one device's kernels; the loader lowers again and logs its own.
std::vector<std::string> saved_log(const ExecutableImpl& e) {
  std::vector<std::string> log;
  for (const auto& l : e.log)
    if (l.rfind("[lower]", 0) != 0) log.push_back(l);
  return log;
}

// An executable's callables to store: each bound callee (embedded, recursively) or unbound.
std::vector<CallableEntry> callable_entries(const ExecutableImpl& e, bool embed) {
  std::vector<CallableEntry> out;
  auto b = e.bindings();
  for (size_t i = 0; i < e.call_symbols.size(); ++i)
    out.push_back({e.call_symbols[i], embed ? Executable(b->callee[i]) : Executable()});
  return out;
}

// A whole package in memory: how a callee is embedded in its caller's data section.
NDArray package_bytes(const Executable& exe, const std::string& path) {
  const ExecutableImpl& e = *exe.impl();
  std::ostringstream os(std::ios::binary);
  write_stream(os, path, "executable", e.graph, e.outputs, e.options, saved_log(e),
               callable_entries(e, true));
  std::string bytes = os.str();
  NDArray a = NDArray::empty(u8, {static_cast<int64_t>(bytes.size())});
  std::memcpy(a.data(), bytes.data(), bytes.size());
  return a;
}
}  // namespace

void write_package(const std::string& path, const std::string& kind, const ir::GraphData& g,
                   const std::vector<ir::Value>& outputs, const CompileOptions& options,
                   const std::vector<std::string>& pass_log,
                   const std::vector<CallableEntry>& callables) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    LOOM_CHECK(f, "[package] ", path, ": cannot open for writing: ", std::strerror(errno));
    write_stream(f, path, kind, g, outputs, options, pass_log, callables);
    f.flush();
    LOOM_CHECK(f, "[package] ", path, ": write failed: ", std::strerror(errno));
  }
  LOOM_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "[package] ", path,
             ": cannot rename the written file into place: ", std::strerror(errno));
}

namespace {
void write_stream(std::ostream& f, const std::string& path, const std::string& kind,
                  const ir::GraphData& g, const std::vector<ir::Value>& outputs,
                  const CompileOptions& options, const std::vector<std::string>& pass_log,
                  const std::vector<CallableEntry>& callables) {
  const auto& reg = ir::OpRegistry::get();
  DataWriter data;
  json vars = json::array();
  for (const auto& v : g.variables)
    vars.push_back({{"name", v.name}, {"data", data.ref(v.initial)}});
  json nodes = json::array();
  for (const auto& n : g.nodes) {
    json ins = json::array();
    for (const auto& v : n.inputs) ins.push_back(value_json(v));
    json attrs = json::object();
    for (const auto& [name, v] : n.attrs->fields()) attrs[name] = attr_json(v, data);
    json outs = json::array();
    for (const auto& t : n.outputs) outs.push_back(type_json(t));
    nodes.push_back({{"op", reg.info(n.op).name},
                     {"name", n.name},
                     {"inputs", ins},
                     {"attrs", attrs},
                     {"outputs", outs}});
  }
  json outs = json::array();
  for (const auto& v : outputs) outs.push_back(value_json(v));
  json header = {{"format", "loom-package"},
                 {"kind", kind},
                 {"compile_options", options_json(options)},
                 {"pass_log", pass_log},
                 {"graph", {{"variables", vars}, {"nodes", nodes}, {"outputs", outs}}}};
  // Version 2 only where needed, so that packages without calls stay readable by older Looms.
  uint32_t version = 1;
  if (!callables.empty()) {
    json cj = json::array();
    for (const auto& c : callables)
      cj.push_back({{"symbol", c.symbol},
                    {"package", c.executable.valid()
                                    ? data.ref(package_bytes(
                                          c.executable, path + " (callable '" + c.symbol + "')"))
                                    : json(nullptr)}});
    header["callables"] = cj;
    version = 2;
  }
  std::string text = header.dump();
  {
    uint64_t header_len = text.size();
    f.write(kMagic, 8);
    f.write(reinterpret_cast<const char*>(&version), 4);
    f.write(reinterpret_cast<const char*>(&header_len), 8);
    f.write(text.data(), static_cast<std::streamsize>(text.size()));
    uint64_t pos = kPrefixBytes + header_len;
    static const char zeros[kAlign] = {};
    auto pad_to = [&](uint64_t target) {
      f.write(zeros, static_cast<std::streamsize>(target - pos));
      pos = target;
    };
    uint64_t data_start = align_up(pos);
    pad_to(data_start);
    for (const auto& a : data.arrays) {
      f.write(static_cast<const char*>(a.data()), static_cast<std::streamsize>(a.nbytes()));
      pos += a.nbytes();
      pad_to(data_start + align_up(pos - data_start));
    }
  }
}
}  // namespace

Package read_package(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("[package] ", path, ": cannot open: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("[package] ", path, ": not a regular file");
  }
  auto map = std::make_shared<Mapping>();
  map->size = static_cast<size_t>(st.st_size);
  if (map->size < kPrefixBytes) {
    ::close(fd);
    fail("[package] ", path, ": file too short (", map->size, " bytes) to be a package");
  }
  // Private, writable mapping: pages are shared with the page cache until written, and a kernel
  // that ever wrote into a constant would copy the page instead of faulting or changing the file.
  void* p = ::mmap(nullptr, map->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  int e = errno;
  ::close(fd);
  if (p == MAP_FAILED) fail("[package] ", path, ": mmap failed: ", std::strerror(e));
  map->data = static_cast<std::byte*>(p);
  map->mapped = true;
  return Reader(path, map).read();
}

Package read_package_bytes(const void* data, size_t size, const std::string& name) {
  auto map = std::make_shared<Mapping>();
  map->size = size;
  map->data =
      static_cast<std::byte*>(std::aligned_alloc(kAlign, align_up(std::max<size_t>(size, 1))));
  LOOM_CHECK(map->data, "[package] ", name, ": out of memory");
  if (size) std::memcpy(map->data, data, size);
  return Reader(name, map).read();
}

}  // namespace loom::io

namespace loom {

namespace {
std::vector<ir::Value> output_values(const Graph& graph, const std::vector<Tensor>& outputs) {
  std::vector<ir::Value> outs;
  for (const auto& t : outputs) {
    LOOM_CHECK(t.defined() && t.graph_data() == graph.data(), "[package] output ", outs.size(),
               " is not a tensor of the graph being saved");
    outs.push_back({t.node(), t.index()});
  }
  return outs;
}
}  // namespace

void save_graph(const Graph& graph, const std::vector<Tensor>& outputs, const std::string& path) {
  io::write_package(path, "graph", *graph.data(), output_values(graph, outputs), CompileOptions{},
                    {});
}

Graph load_graph(const std::string& path, std::vector<Tensor>* outputs) {
  io::Package pkg = io::read_package(path);
  auto data = std::make_shared<ir::GraphData>(std::move(pkg.graph));
  if (outputs) {
    outputs->clear();
    for (const auto& v : pkg.outputs) outputs->emplace_back(data, v.node, v.index);
  }
  return Graph(data);
}

void Executable::save(const std::string& path, bool embed_callables) const {
  LOOM_CHECK(impl_, "[package] ", path, ": cannot save an empty Executable");
  io::write_package(path, "executable", impl_->graph, impl_->outputs, impl_->options,
                    io::saved_log(*impl_), io::callable_entries(*impl_, embed_callables));
}

namespace {
// Loads embedded callees first (same device and threads), unless options.callables binds the
// symbol already; symbols stored unbound must come from options.callables.
Executable load_package(io::Package& pkg, const CompileOptions& options) {
  CompileOptions o = options;
  CompileOptions nested = options;
  nested.callables.clear();
  for (auto& c : pkg.callables)
    if (c.package && !o.callables.count(c.symbol))
      o.callables[c.symbol] = load_package(*c.package, nested);
  // An executable's graph is already optimised for the stored options: lower it only. A plain
  // graph gets the whole pipeline, as Graph::compile would.
  bool optimize = pkg.kind == "graph";
  return compile_graph_data(std::move(pkg.graph), std::move(pkg.outputs), o,
                            std::move(pkg.pass_log), optimize);
}
}  // namespace

Executable Executable::load(const std::string& path, const CompileOptions& options) {
  io::Package pkg = io::read_package(path);
  try {
    return load_package(pkg, options);
  } catch (const Error& e) {
    fail("[package] ", path, ": ", e.what());
  }
}

}  // namespace loom
