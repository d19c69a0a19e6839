#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <sstream>

#include "ir/op_registry.h"
#include "loom/transfer.h"
#include "runtime/executable_impl.h"
#include "runtime/memory_plan.h"

namespace loom {
namespace op = ir::op;

ExecutableImpl::ExecutableImpl(ir::GraphData g, std::vector<ir::Value> outs,
                               const CompileOptions& opts, std::vector<std::string> lg)
    : graph(std::move(g)),
      outputs(std::move(outs)),
      options(opts),
      log(std::move(lg)),
      profile_ns(options.profile ? graph.nodes.size() : 0),
      profile_calls(options.profile ? graph.nodes.size() : 0) {
  backend = &backends::backend_for(options.device, options.num_threads);
  for (const auto& v : graph.variables)
    variables.push_back(backend->on_device() ? to_device(v.initial, options.device)
                                             : v.initial.clone());
  lower();
  // Constants go to the device once, here, not on every run.
  if (backend->on_device()) {
    device_constants.resize(graph.nodes.size());
    for (size_t i = 0; i < graph.nodes.size(); ++i)
      if (graph.nodes[i].op == op::constant)
        device_constants[i] =
            to_device(attrs_as<ConstantAttrs>(*graph.nodes[i].attrs).value, options.device);
  }
  init_calls();  // src/runtime/call.cpp
}

NDArray ExecutableImpl::empty(DType dtype, const Shape& shape) const {
  if (!backend->on_device()) return NDArray::empty(dtype, shape);
  return NDArray(backend->allocate(std::max<size_t>(storage_bytes(dtype, shape.numel()), 1)), dtype,
                 shape, contiguous_strides(shape), 0);
}

NDArray ExecutableImpl::clone(const NDArray& a) const {
  if (!backend->on_device()) return a.clone();
  NDArray out = empty(a.dtype(), a.shape());
  backend->copy(out.data(), options.device, a.data(), a.device(), a.nbytes());
  return out;
}

void ExecutableImpl::lower() {
  const auto& reg = ir::OpRegistry::get();
  size_t n = graph.nodes.size();
  kernels.assign(n, nullptr);
  slot_base.assign(n, 0);
  read_copies.assign(n, false);
  num_slots = 0;
  for (size_t i = 0; i < n; ++i) {
    slot_base[i] = num_slots;
    num_slots += static_cast<int>(graph.nodes[i].outputs.size());
  }
  // Inputs that are constants, seen through views (reshape of a constant weight).
  constant_inputs.assign(n, 0);
  std::vector<bool> is_const(n, false);
  for (size_t i = 0; i < n; ++i) {
    const ir::Node& node = graph.nodes[i];
    is_const[i] = node.op == op::constant || (reg.info(node.op).is_view() && !node.inputs.empty() &&
                                              is_const[static_cast<size_t>(node.inputs[0].node)]);
    for (size_t k = 0; k < node.inputs.size() && k < 64; ++k)
      if (is_const[static_cast<size_t>(node.inputs[k].node)])
        constant_inputs[i] |= uint64_t{1} << k;
  }
  std::map<std::string, int> fallbacks;
  for (size_t i = 0; i < n; ++i) {
    const ir::Node& node = graph.nodes[i];
    const auto& info = reg.info(node.op);
    if (node.op == op::placeholder) placeholders.push_back(static_cast<int>(i));
    if (node.op == op::assign) has_assign = true;
    if (info.is_source() || info.is_view() || info.has_side_effects()) continue;
    if (node.op == op::call) continue;  // the runtime runs the bound executable (call.cpp)
    const KernelFn* k = backend->kernel(node.op);
    if (KernelFn special = backend->specialize(node)) {
      specialized.push_back(std::make_unique<KernelFn>(std::move(special)));
      k = specialized.back().get();
    }
    if (!k && info.host_kernel && options.device.kind != Device::Kind::cuda) k = &info.host_kernel;
    if (!k && options.device.kind == Device::Kind::cpu) {
      k = backends::reference_kernels().find(node.op);
      if (k) ++fallbacks[info.name];
    }
    LOOM_CHECK(k, "[compile] op '", info.name, "' (", node.name, ") has no kernel on ",
               options.device.to_string());
    kernels[i] = k;
  }
  for (const auto& [name, count] : fallbacks)
    log.push_back("[lower] " + std::to_string(count) + " " + name +
                  " op(s) run the reference kernel on " + options.device.to_string());

  // Aliasing: a view's output shares its input's memory.
  root.resize(static_cast<size_t>(num_slots));
  last_use.assign(static_cast<size_t>(num_slots), -1);
  output_root.assign(static_cast<size_t>(num_slots), false);
  for (size_t i = 0; i < n; ++i) {
    const ir::Node& node = graph.nodes[i];
    for (size_t k = 0; k < node.outputs.size(); ++k) {
      int s = slot_base[i] + static_cast<int>(k);
      root[static_cast<size_t>(s)] = s;
      if (const int a = reg.info(node.op).aliased_input(k); a >= 0) {
        const ir::Value& in = node.inputs[static_cast<size_t>(a)];
        root[static_cast<size_t>(s)] =
            root[static_cast<size_t>(slot_base[static_cast<size_t>(in.node)] + in.index)];
      }
    }
    for (const auto& in : node.inputs) {
      int s = root[static_cast<size_t>(slot_base[static_cast<size_t>(in.node)] + in.index)];
      last_use[static_cast<size_t>(s)] =
          std::max(last_use[static_cast<size_t>(s)], static_cast<int>(i));
    }
  }
  for (const auto& v : outputs) {
    int s = root[static_cast<size_t>(slot_base[static_cast<size_t>(v.node)] + v.index)];
    output_root[static_cast<size_t>(s)] = true;
  }
  // A read must copy when its variable is assigned later while the read's *old* value is still
  // used: through views of it, but not through in-place writes (whose result is the new value).
  std::vector<int> value_root(static_cast<size_t>(num_slots));
  std::vector<int> value_last_use(static_cast<size_t>(num_slots), -1);
  std::vector<bool> value_output(static_cast<size_t>(num_slots), false);
  for (size_t i = 0; i < n; ++i) {
    const ir::Node& node = graph.nodes[i];
    for (size_t k = 0; k < node.outputs.size(); ++k) {
      int s = slot_base[i] + static_cast<int>(k);
      value_root[static_cast<size_t>(s)] =
          reg.info(node.op).is_view()
              ? value_root[static_cast<size_t>(slot_base[static_cast<size_t>(node.inputs[0].node)] +
                                               node.inputs[0].index)]
              : s;
    }
    for (const auto& in : node.inputs) {
      int s = value_root[static_cast<size_t>(slot_base[static_cast<size_t>(in.node)] + in.index)];
      value_last_use[static_cast<size_t>(s)] =
          std::max(value_last_use[static_cast<size_t>(s)], static_cast<int>(i));
    }
  }
  for (const auto& v : outputs)
    value_output[static_cast<size_t>(
        value_root[static_cast<size_t>(slot_base[static_cast<size_t>(v.node)] + v.index)])] = true;
  for (size_t i = 0; i < n; ++i) {
    if (graph.nodes[i].op != op::read) continue;
    const auto& var = attrs_as<VariableRefAttrs>(*graph.nodes[i].attrs).variable;
    auto s = static_cast<size_t>(slot_base[i]);
    for (size_t j = i + 1; j < n; ++j)
      if (graph.nodes[j].op == op::assign &&
          attrs_as<VariableRefAttrs>(*graph.nodes[j].attrs).variable == var &&
          (value_last_use[s] >= static_cast<int>(j) || value_output[s]))
        read_copies[i] = true;
  }
}

std::shared_ptr<const Plan> ExecutableImpl::make_plan(const std::vector<Shape>& input_shapes,
                                                      const CallBindings& bindings) {
  const auto& reg = ir::OpRegistry::get();
  auto plan = std::make_shared<Plan>();
  plan->types.resize(static_cast<size_t>(num_slots));
  plan->offset.assign(static_cast<size_t>(num_slots), -1);
  size_t next_input = 0;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const ir::Node& node = graph.nodes[i];
    int base = slot_base[i];
    if (node.op == op::placeholder) {
      plan->types[static_cast<size_t>(base)] = {node.outputs[0].dtype, input_shapes[next_input++]};
      continue;
    }
    std::vector<TensorType> in;
    std::vector<const NDArray*> values;
    for (const auto& v : node.inputs) {
      in.push_back(
          plan->types[static_cast<size_t>(slot_base[static_cast<size_t>(v.node)] + v.index)]);
      const ir::Node& src = graph.node(v);
      values.push_back(src.op == op::constant ? &attrs_as<ConstantAttrs>(*src.attrs).value
                                              : nullptr);
    }
    if (node.op == op::call) {  // output shapes come from the bound executable
      std::vector<TensorType> out = call_types(i, in, bindings);
      for (size_t k = 0; k < out.size(); ++k) plan->types[static_cast<size_t>(base) + k] = out[k];
      continue;
    }
    const auto& info = reg.info(node.op);
    ir::InferContext ctx{info, *node.attrs, in, values};
    std::vector<TensorType> out = info.infer(ctx);
    for (size_t k = 0; k < out.size(); ++k) {
      LOOM_CHECK(out[k].shape.is_static(), "[", info.name, "] (", node.name, ") output shape ",
                 out[k].shape.to_string(), " is not known at run time");
      plan->types[static_cast<size_t>(base) + k] = out[k];
    }
  }
  // Arena buffers: outputs of kernels that are neither handed to the caller nor views.
  std::vector<BufferRequest> req;
  std::vector<int> req_slot;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    if (!kernels[i]) continue;
    for (size_t k = 0; k < graph.nodes[i].outputs.size(); ++k) {
      int s = slot_base[i] + static_cast<int>(k);
      if (output_root[static_cast<size_t>(s)] ||
          reg.info(graph.nodes[i].op).aliased_input(k) >= 0)  // an in-place op's written input
        continue;
      const auto& t = plan->types[static_cast<size_t>(s)];
      int64_t bytes = static_cast<int64_t>(storage_bytes(t.dtype, t.shape.numel()));
      plan->intermediate_bytes += bytes;
      int last = std::max(last_use[static_cast<size_t>(s)], static_cast<int>(i));
      req.push_back({bytes, static_cast<int>(i), last});
      req_slot.push_back(s);
    }
  }
  std::vector<int64_t> offsets;
  plan->arena_bytes = plan_offsets(req, offsets);
  for (size_t r = 0; r < req.size(); ++r)
    plan->offset[static_cast<size_t>(req_slot[r])] = offsets[r];
  plan->bindings_version = bindings.version;
  return plan;
}

std::shared_ptr<const Plan> ExecutableImpl::plan_for(const std::vector<Shape>& shapes,
                                                     const CallBindings* bindings) {
  static const CallBindings kNoCalls;
  std::shared_ptr<const CallBindings> held;
  if (!bindings && call_nodes.empty()) bindings = &kNoCalls;
  if (!bindings) {
    held = this->bindings();
    bindings = held.get();
  }
  std::string key;
  for (const auto& s : shapes) {
    for (int64_t d : s) key += std::to_string(d) + ",";
    key += ";";
  }
  std::shared_ptr<const Plan> found;
  {
    std::lock_guard lock(cache_mutex_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      found = it->second->second;
    }
  }
  // A plan made under other call bindings stays valid while the callees agree on its types.
  if (found && calls_valid(*found, *bindings)) return found;
  auto plan = make_plan(shapes, *bindings);
  std::lock_guard lock(cache_mutex_);
  if (auto it = cache_.find(key); it != cache_.end()) {
    if (it->second->second->bindings_version == bindings->version) return it->second->second;
    it->second->second = plan;  // replaces a plan made under other bindings
    return plan;
  }
  lru_.emplace_front(key, plan);
  cache_[key] = lru_.begin();
  while (lru_.size() > std::max<size_t>(options.plan_cache_capacity, 1)) {
    cache_.erase(lru_.back().first);
    lru_.pop_back();
  }
  return plan;
}

size_t ExecutableImpl::cached_plans() {
  std::lock_guard lock(cache_mutex_);
  return lru_.size();
}

std::shared_ptr<Storage> ExecutableImpl::acquire_arena(int64_t bytes) {
  std::lock_guard lock(arena_mutex_);
  for (size_t i = 0; i < free_arenas_.size(); ++i)
    if (static_cast<int64_t>(free_arenas_[i]->size()) >= bytes) {
      auto a = free_arenas_[i];
      free_arenas_.erase(free_arenas_.begin() + static_cast<long>(i));
      return a;
    }
  return backend->allocate(static_cast<size_t>(std::max<int64_t>(bytes, 64)));
}

void ExecutableImpl::release_arena(std::shared_ptr<Storage> arena) {
  std::lock_guard lock(arena_mutex_);
  if (free_arenas_.size() < 8) free_arenas_.push_back(std::move(arena));
}

std::vector<NDArray> ExecutableImpl::run(const Feeds& feeds) {
  // Match feeds to placeholders.
  std::vector<NDArray> inputs(placeholders.size());
  // On a device, outputs stay there when every input came from there (and there was one).
  bool all_inputs_on_device = !feeds.empty();
  for (const auto& [name, array] : feeds) {
    auto it = std::find_if(placeholders.begin(), placeholders.end(), [&](int p) {
      return attrs_as<PlaceholderAttrs>(*graph.nodes[static_cast<size_t>(p)].attrs).name == name;
    });
    if (it == placeholders.end()) {
      std::string known;
      for (int p : placeholders)
        known += (known.empty() ? "" : ", ") +
                 attrs_as<PlaceholderAttrs>(*graph.nodes[static_cast<size_t>(p)].attrs).name;
      fail("[run] no input named '", name, "' (inputs: ", known.empty() ? "none" : known, ")");
    }
    auto& slot = inputs[static_cast<size_t>(it - placeholders.begin())];
    LOOM_CHECK(!slot.defined(), "[run] input '", name, "' is fed twice");
    LOOM_CHECK(array.defined(), "[run] input '", name, "' is an empty NDArray");
    const auto& want = graph.nodes[static_cast<size_t>(*it)].outputs[0];
    LOOM_CHECK(array.dtype() == want.dtype, "[run] input '", name, "' must be ",
               dtype_name(want.dtype), ", got ", dtype_name(array.dtype()));
    bool fits = array.rank() == want.shape.rank();
    for (int d = 0; fits && d < want.shape.rank(); ++d)
      fits = want.shape[d] == kDynamic || want.shape[d] == array.shape()[d];
    LOOM_CHECK(fits, "[run] input '", name, "' must have shape ", want.shape.to_string(), ", got ",
               array.shape().to_string());
    if (backend->on_device()) {
      // Device arrays are used as they are (zero copy); host arrays are copied in.
      if (array.device() == options.device) {
        LOOM_CHECK(array.is_contiguous(), "[run] input '", name, "' is a strided array on ",
                   options.device.to_string(), "; make it contiguous first");
        slot = array;
      } else {
        LOOM_CHECK(array.device().kind != Device::Kind::cuda, "[run] input '", name, "' lives on ",
                   array.device().to_string(), ", the executable on ", options.device.to_string());
        slot = to_device(array, options.device);
        all_inputs_on_device = false;
      }
      continue;
    }
    LOOM_CHECK(array.device().kind != Device::Kind::cuda, "[run] input '", name, "' lives on ",
               array.device().to_string(), ", the executable on ", options.device.to_string());
    slot = array.contiguous();  // strided inputs are copied once here (documented)
  }
  for (size_t i = 0; i < inputs.size(); ++i)
    LOOM_CHECK(
        inputs[i].defined(), "[run] missing input '",
        attrs_as<PlaceholderAttrs>(*graph.nodes[static_cast<size_t>(placeholders[i])].attrs).name,
        "'");
  std::vector<NDArray> result = execute(std::move(inputs));
  if (backend->on_device() && !all_inputs_on_device)
    for (auto& r : result) r = to_host(r);
  return result;
}

// Runs on matched, checked inputs (placeholder order); results stay on the device.
std::vector<NDArray> ExecutableImpl::execute(std::vector<NDArray> inputs) {
  std::vector<Shape> shapes;
  for (const auto& a : inputs) shapes.push_back(a.shape());
  // Calls: one snapshot of the bindings for the whole run (null when the graph has no calls).
  std::shared_ptr<const CallBindings> call_bindings = call_nodes.empty() ? nullptr : bindings();

  std::shared_lock<std::shared_mutex> shared(variables_mutex, std::defer_lock);
  std::unique_lock<std::shared_mutex> exclusive(variables_mutex, std::defer_lock);
  if (has_assign)
    exclusive.lock();
  else
    shared.lock();

  auto plan = plan_for(shapes, call_bindings.get());
  auto arena = acquire_arena(plan->arena_bytes);
  struct ArenaGuard {
    ExecutableImpl* self;
    std::shared_ptr<Storage>& a;
    ~ArenaGuard() { self->release_arena(std::move(a)); }
  } guard{this, arena};

  std::vector<NDArray> slots(static_cast<size_t>(num_slots));
  const auto& reg = ir::OpRegistry::get();
  size_t next_input = 0;
  ThreadPool* pool = backend->pool();
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const ir::Node& node = graph.nodes[i];
    auto base = static_cast<size_t>(slot_base[i]);
    switch (node.op) {
      case op::placeholder:
        slots[base] = inputs[next_input++];
        continue;
      case op::constant:
        slots[base] = device_constants.empty() ? attrs_as<ConstantAttrs>(*node.attrs).value
                                               : device_constants[i];
        continue;
      case op::read: {
        int v = graph.find_variable(attrs_as<VariableRefAttrs>(*node.attrs).variable);
        slots[base] = read_copies[i] ? clone(variables[static_cast<size_t>(v)])
                                     : variables[static_cast<size_t>(v)];
        continue;
      }
      case op::assign: {
        const auto& name = attrs_as<VariableRefAttrs>(*node.attrs).variable;
        NDArray& var = variables[static_cast<size_t>(graph.find_variable(name))];
        const NDArray& val = slots[static_cast<size_t>(
            slot_base[static_cast<size_t>(node.inputs[0].node)] + node.inputs[0].index)];
        LOOM_CHECK(val.shape() == var.shape(), "[assign] variable '", name, "' is ",
                   var.type().to_string(), ", value at run time is ", val.type().to_string());
        if (val.data() != var.data()) {  // in-place updates already wrote into the variable
          backend->copy(var.data(), var.device(), val.data(), val.device(), var.nbytes());
          variable_bytes_copied += static_cast<int64_t>(var.nbytes());
        }
        continue;
      }
      case op::call:
        run_call(i, slots, *plan, *call_bindings);
        continue;
      default:
        break;
    }
    if (reg.info(node.op).is_view()) {
      const NDArray& in = slots[static_cast<size_t>(
          slot_base[static_cast<size_t>(node.inputs[0].node)] + node.inputs[0].index)];
      const Shape& s = plan->types[base].shape;
      slots[base] = NDArray(in.storage(), in.dtype(), s, contiguous_strides(s), in.offset());
      continue;
    }
    std::vector<NDArray> ins;
    ins.reserve(node.inputs.size());
    for (const auto& v : node.inputs)
      ins.push_back(slots[static_cast<size_t>(slot_base[static_cast<size_t>(v.node)] + v.index)]);
    for (size_t k = 0; k < node.outputs.size(); ++k) {
      if (const int a = reg.info(node.op).aliased_input(k); a >= 0) {
        slots[base + k] = ins[static_cast<size_t>(a)];  // the kernel writes into that input
        continue;
      }
      const TensorType& t = plan->types[base + k];
      int64_t off = plan->offset[base + k];
      if (off < 0) {
        slots[base + k] = empty(t.dtype, t.shape);
      } else {
        int64_t elem_off = off * 8 / dtype_bits(t.dtype);
        slots[base + k] = NDArray(arena, t.dtype, t.shape, contiguous_strides(t.shape), elem_off);
      }
    }
    KernelContext ctx{ins, std::span<NDArray>(slots.data() + base, node.outputs.size()),
                      node.attrs.get(), pool, constant_inputs[i]};
    if (options.profile) {
      auto t0 = std::chrono::steady_clock::now();
      (*kernels[i])(ctx);
      profile_ns[i] += std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::steady_clock::now() - t0)
                           .count();
      ++profile_calls[i];
    } else {
      (*kernels[i])(ctx);
    }
  }
  std::vector<NDArray> result;
  for (const auto& v : outputs) {
    int s = slot_base[static_cast<size_t>(v.node)] + v.index;
    NDArray a = slots[static_cast<size_t>(s)];
    // Values the caller must own: never hand out arena memory, variables, constants or inputs.
    const ir::Node& rn = graph.nodes[static_cast<size_t>(
        std::upper_bound(slot_base.begin(), slot_base.end(), root[static_cast<size_t>(s)]) -
        slot_base.begin() - 1)];
    bool source = reg.info(rn.op).is_source();
    result.push_back(source || a.storage() == arena ? clone(a) : a);
  }
  return result;
}

// --- Executable (public) --------------------------------------------------------------------
std::vector<NDArray> Executable::run(const Feeds& inputs) const {
  LOOM_CHECK(impl_, "[run] executable is empty");
  return impl_->run(inputs);
}

std::vector<NDArray> Executable::run(const Feeds& inputs, const RunOptions& options) const {
  LOOM_CHECK(impl_, "[run] executable is empty");
  if (!options.cuda_stream) return impl_->run(inputs);
  LOOM_CHECK(impl_->backend->on_device(), "[run] RunOptions::cuda_stream is for CUDA executables; ",
             "this one runs on ", impl_->options.device.to_string());
  impl_->backend->wait_for_stream(options.cuda_stream);
  std::vector<NDArray> out = impl_->run(inputs);
  impl_->backend->signal_stream(options.cuda_stream);
  return out;
}

std::vector<Executable::Signature> Executable::inputs() const {
  std::vector<Signature> s;
  for (int p : impl_->placeholders) {
    const auto& n = impl_->graph.nodes[static_cast<size_t>(p)];
    s.push_back({attrs_as<PlaceholderAttrs>(*n.attrs).name, n.outputs[0]});
  }
  return s;
}

std::vector<Executable::Signature> Executable::outputs() const {
  std::vector<Signature> s;
  for (const auto& v : impl_->outputs)
    s.push_back({impl_->graph.node(v).name, impl_->graph.type(v)});
  return s;
}

Device Executable::device() const { return impl_->options.device; }

NDArray Executable::variable(const std::string& name) const {
  int i = impl_->graph.find_variable(name);
  LOOM_CHECK(i >= 0, "[variable] no variable named '", name, "'");
  std::shared_lock lock(impl_->variables_mutex);
  const NDArray& v = impl_->variables[static_cast<size_t>(i)];
  return impl_->backend->on_device() ? to_host(v) : v.clone();
}

void Executable::set_variable(const std::string& name, const NDArray& value) {
  int i = impl_->graph.find_variable(name);
  LOOM_CHECK(i >= 0, "[variable] no variable named '", name, "'");
  std::unique_lock lock(impl_->variables_mutex);
  NDArray& var = impl_->variables[static_cast<size_t>(i)];
  LOOM_CHECK(value.type() == var.type(), "[variable] '", name, "' is ", var.type().to_string(),
             ", got ", value.type().to_string());
  NDArray c = value.device() == var.device() ? value : to_host(value).contiguous();
  LOOM_CHECK(c.is_contiguous(), "[variable] '", name, "': strided device arrays are not supported");
  impl_->backend->copy(var.data(), var.device(), c.data(), c.device(), var.nbytes());
}

void Executable::reset_variables() {
  std::unique_lock lock(impl_->variables_mutex);
  for (size_t i = 0; i < impl_->variables.size(); ++i) {
    const NDArray& init = impl_->graph.variables[i].initial;
    impl_->backend->copy(impl_->variables[i].data(), impl_->variables[i].device(), init.data(),
                         init.device(), init.nbytes());
  }
}

std::vector<std::string> Executable::variable_names() const {
  std::vector<std::string> n;
  for (const auto& v : impl_->graph.variables) n.push_back(v.name);
  return n;
}

std::vector<std::string> Executable::pass_log() const { return impl_->log; }

std::string Executable::to_text() const { return ir::print_graph(impl_->graph, impl_->outputs); }

PlanStats Executable::plan_stats(const std::vector<std::pair<std::string, Shape>>& shapes) const {
  std::vector<Shape> ordered;
  for (int p : impl_->placeholders) {
    const auto& name =
        attrs_as<PlaceholderAttrs>(*impl_->graph.nodes[static_cast<size_t>(p)].attrs).name;
    auto it =
        std::find_if(shapes.begin(), shapes.end(), [&](const auto& s) { return s.first == name; });
    LOOM_CHECK(it != shapes.end(), "[plan_stats] missing shape for input '", name, "'");
    ordered.push_back(it->second);
  }
  auto plan = impl_->plan_for(ordered);
  int steps = 0;
  for (auto* k : impl_->kernels) steps += k != nullptr;
  return {plan->arena_bytes, plan->intermediate_bytes, steps};
}

size_t Executable::cached_plans() const { return impl_->cached_plans(); }

int64_t Executable::constant_bytes() const {
  int64_t total = 0;
  for (const auto& n : impl_->graph.nodes)
    if (n.op == ir::op::constant)
      total += static_cast<int64_t>(attrs_as<ConstantAttrs>(*n.attrs).value.nbytes());
  return total;
}

std::string Executable::profile_report() const {
  LOOM_CHECK(impl_->options.profile, "[profile] compile with CompileOptions::profile = true");
  const auto& reg = ir::OpRegistry::get();
  std::map<std::string, std::pair<int64_t, int64_t>> by_op;  // ns, calls
  int64_t total = 0;
  for (size_t i = 0; i < impl_->graph.nodes.size(); ++i) {
    auto& e = by_op[reg.info(impl_->graph.nodes[i].op).name];
    e.first += impl_->profile_ns[i].load();
    e.second += impl_->profile_calls[i].load();
    total += impl_->profile_ns[i].load();
  }
  std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> rows(by_op.begin(), by_op.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  std::ostringstream os;
  os << "op                      time ms   share   calls   us/call\n";
  for (const auto& [name, v] : rows) {
    if (!v.second) continue;
    char line[160];
    std::snprintf(line, sizeof line, "%-22s %9.3f  %5.1f%%  %6lld  %8.2f\n", name.c_str(),
                  v.first / 1e6,
                  total ? 100.0 * static_cast<double>(v.first) / static_cast<double>(total) : 0.0,
                  static_cast<long long>(v.second), v.first / 1e3 / static_cast<double>(v.second));
    os << line;
  }
  return os.str();
}

int64_t Executable::variable_bytes_copied() const { return impl_->variable_bytes_copied.load(); }

}  // namespace loom
