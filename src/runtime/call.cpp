// The runtime side of `call` (src/ops/call.cpp): bindings of symbols to executables, signature
// and recursion checks, output shapes from the callee's plan, and running a call site.
//
// Bindings are an immutable snapshot (CallBindings) replaced as a whole by bind/unbind: a run
// takes one snapshot and uses it throughout, so rebinding while runs are in flight is safe and
// costs one small vector copy (microseconds) — no recompile, no new plan. Plans remember the
// bindings version they were checked under; after a rebind each cached plan is re-checked once
// (the new callees' output types for the plan's shapes, from their own cached plans) and only
// remade if a callee disagrees.
#include "ops/call.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>

#include "ir/op_registry.h"
#include "loom/transfer.h"
#include "runtime/executable_impl.h"

namespace loom {
namespace op = ir::op;
namespace {

std::atomic<uint64_t> g_next_bindings_version{1};

// Serialises binds across all executables, so that two concurrent binds cannot close a cycle
// that neither would see alone. Binds are rare; runs never take it.
std::mutex& bind_mutex() {
  static std::mutex m;
  return m;
}

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

// Whether `from` reaches `target` through its current bindings; the symbols on the way in path.
bool reaches(const ExecutableImpl& from, const ExecutableImpl* target,
             std::vector<std::string>& path) {
  auto b = from.bindings();
  for (size_t s = 0; s < b->callee.size(); ++s) {
    const auto& c = b->callee[s];
    if (!c) continue;
    path.push_back("'" + from.call_symbols[s] + "'");
    if (c.get() == target || reaches(*c, target, path)) return true;
    path.pop_back();
  }
  return false;
}

const std::string& placeholder_name(const ExecutableImpl& e, size_t k) {
  return attrs_as<PlaceholderAttrs>(*e.graph.nodes[static_cast<size_t>(e.placeholders[k])].attrs)
      .name;
}

bool shape_fits(const Shape& want, const Shape& got) {
  if (want.rank() != got.rank()) return false;
  for (int d = 0; d < want.rank(); ++d)
    if (want[d] != kDynamic && want[d] != got[d]) return false;
  return true;
}

}  // namespace

void ExecutableImpl::init_calls() {
  call_symbol.assign(graph.nodes.size(), -1);
  for (size_t i = 0; i < graph.nodes.size(); ++i)
    if (graph.nodes[i].op == op::call)
      call_symbols.push_back(attrs_as<CallAttrs>(*graph.nodes[i].attrs).symbol);
  std::sort(call_symbols.begin(), call_symbols.end());
  call_symbols.erase(std::unique(call_symbols.begin(), call_symbols.end()), call_symbols.end());
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    if (graph.nodes[i].op != op::call) continue;
    const auto& sym = attrs_as<CallAttrs>(*graph.nodes[i].attrs).symbol;
    call_symbol[i] = static_cast<int>(
        std::lower_bound(call_symbols.begin(), call_symbols.end(), sym) - call_symbols.begin());
    call_nodes.push_back(static_cast<int>(i));
  }
  auto b = std::make_shared<CallBindings>();
  b->callee.resize(call_symbols.size());
  b->version = g_next_bindings_version++;
  bindings_ = std::move(b);
  // The executable keeps its callees through its bindings only (rebinding must release them).
  auto callables = std::move(options.callables);
  options.callables.clear();
  for (const auto& [symbol, exe] : callables) {
    LOOM_CHECK(exe.valid(), "[call] '", symbol,
               "': CompileOptions::callables holds an empty Executable");
    bind(symbol, exe.impl());
  }
  for (int i : call_nodes) {
    const auto& a = attrs_as<CallAttrs>(*graph.nodes[static_cast<size_t>(i)].attrs);
    LOOM_CHECK(
        a.optional || bindings_->callee[static_cast<size_t>(call_symbol[static_cast<size_t>(i)])],
        "[call] '", a.symbol,
        "': no executable is bound to this symbol (add it to "
        "CompileOptions::callables, or make the call site optional)");
  }
}

std::shared_ptr<const CallBindings> ExecutableImpl::bindings() const {
  std::lock_guard lock(bindings_mutex_);
  return bindings_;
}

void ExecutableImpl::check_callee(const std::string& symbol, const ExecutableImpl& callee) const {
  LOOM_CHECK(callee.options.device == options.device, "[call] '", symbol, "': the callee runs on ",
             callee.options.device.to_string(), ", the caller on ", options.device.to_string(),
             " (callables run on the caller's device)");
  std::vector<TensorType> outs;
  for (const auto& v : callee.outputs) outs.push_back(callee.graph.type(v));
  for (int i : call_nodes) {
    const ir::Node& n = graph.nodes[static_cast<size_t>(i)];
    if (attrs_as<CallAttrs>(*n.attrs).symbol != symbol) continue;
    LOOM_CHECK(n.inputs.size() == callee.placeholders.size(), "[call] '", symbol,
               "': the call site passes ", n.inputs.size(), " input(s), the callee takes ",
               callee.placeholders.size());
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      const TensorType& want =
          callee.graph.nodes[static_cast<size_t>(callee.placeholders[k])].outputs[0];
      const TensorType& got = graph.type(n.inputs[k]);
      LOOM_CHECK(ops::types_compatible(want, got), "[call] '", symbol, "': input ", k, " is ",
                 got.to_string(), ", the callee's input '", placeholder_name(callee, k), "' is ",
                 want.to_string());
    }
    LOOM_CHECK(n.outputs.size() == outs.size(), "[call] '", symbol, "': the call site declares ",
               n.outputs.size(), " output(s), the callee returns ", outs.size());
    for (size_t k = 0; k < outs.size(); ++k)
      LOOM_CHECK(ops::types_compatible(n.outputs[k], outs[k]), "[call] '", symbol, "': output ", k,
                 " is declared ", n.outputs[k].to_string(), ", the callee returns ",
                 outs[k].to_string());
  }
}

void ExecutableImpl::bind(const std::string& symbol, std::shared_ptr<ExecutableImpl> callee) {
  auto it = std::lower_bound(call_symbols.begin(), call_symbols.end(), symbol);
  LOOM_CHECK(
      it != call_symbols.end() && *it == symbol, "[call] '", symbol,
      "': no call site calls this symbol (",
      call_symbols.empty() ? "the graph has no calls" : "symbols: " + join(call_symbols, ", "),
      ")");
  auto index = static_cast<size_t>(it - call_symbols.begin());
  if (callee) check_callee(symbol, *callee);
  std::lock_guard bind_lock(bind_mutex());
  if (callee) {
    std::vector<std::string> path{"'" + symbol + "'"};
    LOOM_CHECK(callee.get() != this && !reaches(*callee, this, path), "[call] '", symbol,
               "': binding it would make a recursive call (", join(path, " -> "),
               " -> back to this executable)");
  }
  std::lock_guard lock(bindings_mutex_);
  auto b = std::make_shared<CallBindings>(*bindings_);
  b->callee[index] = std::move(callee);
  b->version = g_next_bindings_version++;
  bindings_ = std::move(b);
}

std::vector<TensorType> ExecutableImpl::output_types(const std::vector<Shape>& shapes,
                                                     const std::string& symbol) {
  LOOM_CHECK(shapes.size() == placeholders.size(), "[call] '", symbol, "': ", shapes.size(),
             " input(s) for a callee that takes ", placeholders.size());
  for (size_t k = 0; k < shapes.size(); ++k) {
    const TensorType& want = graph.nodes[static_cast<size_t>(placeholders[k])].outputs[0];
    LOOM_CHECK(shape_fits(want.shape, shapes[k]), "[call] '", symbol, "': input ", k, " has shape ",
               shapes[k].to_string(), ", the callee's input '", placeholder_name(*this, k), "' is ",
               want.to_string());
  }
  auto plan = plan_for(shapes);
  std::vector<TensorType> types;
  for (const auto& v : outputs)
    types.push_back(
        plan->types[static_cast<size_t>(slot_base[static_cast<size_t>(v.node)] + v.index)]);
  return types;
}

std::vector<TensorType> ExecutableImpl::call_types(size_t node, const std::vector<TensorType>& in,
                                                   const CallBindings& b) {
  const ir::Node& n = graph.nodes[node];
  const auto& a = attrs_as<CallAttrs>(*n.attrs);
  const auto& callee = b.callee[static_cast<size_t>(call_symbol[node])];
  std::vector<TensorType> out;
  if (!callee) {
    LOOM_CHECK(a.optional, "[call] '", a.symbol,
               "': no executable is bound to this symbol "
               "(Executable::bind one, or make the call site optional)");
    for (TensorType t : n.outputs) {  // zeros; dynamic dims from input 0 (checked when built)
      std::vector<int64_t> dims = t.shape.dims();
      for (size_t d = 0; d < dims.size(); ++d)
        if (dims[d] == kDynamic) dims[d] = in[0].shape[static_cast<int>(d)];
      out.push_back({t.dtype, Shape(dims)});
    }
    return out;
  }
  std::vector<Shape> shapes;
  for (const auto& t : in) shapes.push_back(t.shape);
  out = callee->output_types(shapes, a.symbol);
  LOOM_CHECK(out.size() == n.outputs.size(), "[call] '", a.symbol, "': the callee returns ",
             out.size(), " output(s), the call site declares ", n.outputs.size());
  for (size_t k = 0; k < out.size(); ++k)
    LOOM_CHECK(ops::types_compatible(n.outputs[k], out[k]), "[call] '", a.symbol,
               "': for inputs of these shapes the callee returns ", out[k].to_string(),
               " as output ", k, ", declared ", n.outputs[k].to_string());
  return out;
}

bool ExecutableImpl::calls_valid(const Plan& plan, const CallBindings& b) {
  if (call_nodes.empty() || plan.bindings_version.load(std::memory_order_acquire) == b.version)
    return true;
  for (int i : call_nodes) {
    const ir::Node& n = graph.nodes[static_cast<size_t>(i)];
    std::vector<TensorType> in;
    for (const auto& v : n.inputs)
      in.push_back(
          plan.types[static_cast<size_t>(slot_base[static_cast<size_t>(v.node)] + v.index)]);
    std::vector<TensorType> out;
    try {
      out = call_types(static_cast<size_t>(i), in, b);
    } catch (const Error&) {
      return false;  // make_plan reports it
    }
    for (size_t k = 0; k < out.size(); ++k)
      if (!(out[k] == plan.types[static_cast<size_t>(slot_base[static_cast<size_t>(i)]) + k]))
        return false;
  }
  plan.bindings_version.store(b.version, std::memory_order_release);
  return true;
}

std::vector<NDArray> ExecutableImpl::run_inputs(std::vector<NDArray> inputs,
                                                const std::string& symbol) {
  LOOM_CHECK(inputs.size() == placeholders.size(), "[call] '", symbol, "': ", inputs.size(),
             " input(s) for a callee that takes ", placeholders.size());
  for (size_t k = 0; k < inputs.size(); ++k) {
    const TensorType& want = graph.nodes[static_cast<size_t>(placeholders[k])].outputs[0];
    NDArray& a = inputs[k];
    LOOM_CHECK(a.dtype() == want.dtype && shape_fits(want.shape, a.shape()), "[call] '", symbol,
               "': input ", k, " is ", a.type().to_string(), ", the callee's input '",
               placeholder_name(*this, k), "' is ", want.to_string());
    LOOM_CHECK(a.device() == options.device ||
                   (!backend->on_device() && a.device().kind != Device::Kind::cuda),
               "[call] '", symbol, "': input ", k, " lives on ", a.device().to_string(),
               ", the callee on ", options.device.to_string());
    if (!a.is_contiguous()) a = backend->on_device() ? clone(a) : a.contiguous();
  }
  return execute(std::move(inputs));
}

void ExecutableImpl::run_call(size_t node, std::vector<NDArray>& slots, const Plan& plan,
                              const CallBindings& b) {
  const ir::Node& n = graph.nodes[node];
  const auto& a = attrs_as<CallAttrs>(*n.attrs);
  auto base = static_cast<size_t>(slot_base[node]);
  const auto& callee = b.callee[static_cast<size_t>(call_symbol[node])];
  auto t0 =
      options.profile ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
  std::vector<NDArray> outs;
  if (callee) {
    std::vector<NDArray> ins;
    ins.reserve(n.inputs.size());
    for (const auto& v : n.inputs)
      ins.push_back(slots[static_cast<size_t>(slot_base[static_cast<size_t>(v.node)] + v.index)]);
    outs = callee->run_inputs(std::move(ins), a.symbol);  // the caller's values, no copies
  } else {
    LOOM_CHECK(a.optional, "[call] '", a.symbol, "': no executable is bound to this symbol");
    for (size_t k = 0; k < n.outputs.size(); ++k) {
      const TensorType& t = plan.types[base + k];
      NDArray z = zeros(t.shape, t.dtype);
      outs.push_back(backend->on_device() ? to_device(z, options.device) : z);
    }
  }
  LOOM_CHECK(outs.size() == n.outputs.size(), "[call] '", a.symbol, "': the callee returned ",
             outs.size(), " output(s), expected ", n.outputs.size());
  for (size_t k = 0; k < outs.size(); ++k) {
    LOOM_CHECK(outs[k].type() == plan.types[base + k], "[call] '", a.symbol, "': output ", k,
               " is ", outs[k].type().to_string(), ", planned ", plan.types[base + k].to_string());
    slots[base + k] = std::move(outs[k]);
  }
  if (options.profile) {
    profile_ns[node] +=
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    ++profile_calls[node];
  }
}

// --- Executable (public) --------------------------------------------------------------------
std::vector<std::string> Executable::call_symbols() const {
  LOOM_CHECK(impl_, "[call] executable is empty");
  return impl_->call_symbols;
}

Executable Executable::callable(const std::string& symbol) const {
  LOOM_CHECK(impl_, "[call] executable is empty");
  const auto& s = impl_->call_symbols;
  auto it = std::lower_bound(s.begin(), s.end(), symbol);
  LOOM_CHECK(it != s.end() && *it == symbol, "[call] '", symbol,
             "': no call site calls this symbol");
  return Executable(impl_->bindings()->callee[static_cast<size_t>(it - s.begin())]);
}

void Executable::bind(const std::string& symbol, const Executable& callee) {
  LOOM_CHECK(impl_, "[call] executable is empty");
  LOOM_CHECK(callee.valid(), "[call] '", symbol, "': cannot bind an empty Executable (use unbind)");
  impl_->bind(symbol, callee.impl());
}

void Executable::unbind(const std::string& symbol) {
  LOOM_CHECK(impl_, "[call] executable is empty");
  impl_->bind(symbol, nullptr);
}

}  // namespace loom
