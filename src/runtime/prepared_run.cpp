// PreparedRun (loom/prepared_run.h): one plan, one arena, outputs and input buffers allocated
// once; kernels bound to their arrays once (a list of steps); on CUDA the steps are captured as a
// CUDA graph on the second run and replayed. Kept apart from executable.cpp: it reuses the
// lowering and the plan of ExecutableImpl and only replaces the per-run loop.
#include "loom/prepared_run.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <span>
#include <sstream>

#include "ir/op_registry.h"
#include "ops/shape_rules.h"
#include "runtime/executable_impl.h"
#include "runtime/memory_plan.h"
#ifdef LOOM_HAS_CUDA
#include "backends/cuda/cuda_graph.h"
#endif

namespace loom {
namespace op = ir::op;

namespace {

// Whether a and b may share bytes: the same storage and, where both are contiguous, intersecting
// byte ranges (strided views: assumed to).
bool may_overlap(const NDArray& a, const NDArray& b) {
  if (!a.defined() || !b.defined() || a.storage() != b.storage()) return false;
  if (!a.is_contiguous() || !b.is_contiguous()) return true;
  const auto* pa = static_cast<const std::byte*>(a.data());
  const auto* pb = static_cast<const std::byte*>(b.data());
  return pa < pb + b.nbytes() && pb < pa + a.nbytes();
}

}  // namespace

struct PreparedRun::Impl {
  std::shared_ptr<ExecutableImpl> exe;
  PrepareOptions options;
  std::shared_ptr<const Plan> plan;
  std::shared_ptr<Storage> arena, input_storage, staging;
  std::vector<std::string> input_names;
  std::vector<NDArray> inputs;       // per placeholder, views of input_storage
  std::vector<size_t> input_offset;  // bytes in input_storage
  struct Step {
    const KernelFn* fn = nullptr;  // a kernel, or
    NDArray dst, src;              // a device copy (read copies, assigns not done in place)
    std::vector<NDArray> ins, outs;
    const Attrs* attrs = nullptr;
    std::string op = "copy";  // op name (profiles)
    uint64_t constant_inputs = 0;
    uint64_t settled_inputs = 0;  // KernelContext::settled_inputs
  };
  std::vector<Step> steps;
  std::vector<NDArray> outputs;
  std::vector<NDArray> keep;  // buffers steps write (read copies, outputs)
#ifdef LOOM_HAS_CUDA
  std::unique_ptr<backends::cuda::CudaGraph> graph;
#endif
  bool graph_failed = false;
  std::string status = "not yet run";
  int64_t runs = 0;
  struct InFlight {  // a pipelined run (enqueue / wait)
    uint64_t ticket = 0;
    std::shared_ptr<Storage> staging, host;  // pinned: its inputs, its reads
    std::vector<NDArray> reads;              // views of host
    std::shared_ptr<void> done;              // device marker after its reads
  };
  InFlight flight[2];
  uint64_t tickets = 0;

  size_t input_index(const std::string& name) const {
    auto it = std::find(input_names.begin(), input_names.end(), name);
    LOOM_CHECK(it != input_names.end(), "[prepared run] no input named '", name, "'");
    return static_cast<size_t>(it - input_names.begin());
  }
  // set_inputs through `stage` (pinned, device backends); async: no wait for the device.
  void stage_inputs(const Feeds& feeds, Storage* stage, bool async) {
    backends::Backend& b = *exe->backend;
    auto copy = [&](void* dst, const Device& dd, const void* src, const Device& sd, size_t n) {
      async ? b.copy_async(dst, dd, src, sd, n) : b.copy(dst, dd, src, sd, n);
    };
    std::vector<bool> staged(inputs.size(), false);
    for (const auto& [name, array] : feeds) {
      const size_t i = input_index(name);
      const NDArray& dst = inputs[i];
      LOOM_CHECK(array.defined() && array.dtype() == dst.dtype() && array.shape() == dst.shape(),
                 "[prepared run] input '", name, "' must be ", dst.type().to_string(),
                 " (as prepared)",
                 array.defined() ? ", got " + array.type().to_string() : std::string());
      if (array.device().kind == Device::Kind::cuda) {
        LOOM_CHECK(array.device() == dst.device() && array.is_contiguous(),
                   "[prepared run] input '", name, "' must be contiguous on ",
                   dst.device().to_string());
        copy(dst.data(), dst.device(), array.data(), array.device(), dst.nbytes());
        continue;
      }
      NDArray c = array.contiguous();
      if (!b.on_device()) {
        std::memcpy(dst.data(), c.data(), dst.nbytes());
        continue;
      }
      std::memcpy(stage->data() + input_offset[i], c.data(), dst.nbytes());
      staged[i] = true;
    }
    // One copy per run of staged inputs that are neighbours in input_storage (all of them, when
    // every input is fed): an input left out, e.g. one written on the device (feedback), is
    // never overwritten with the staging buffer's stale bytes.
    std::vector<size_t> order(inputs.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return input_offset[a] < input_offset[b]; });
    size_t lo = 0, hi = 0;  // the run being gathered: [lo, hi) bytes
    auto flush = [&] {
      if (hi > lo)
        copy(input_storage->data() + lo, exe->options.device, stage->data() + lo, Device::cpu(),
             hi - lo);
      lo = hi = 0;
    };
    for (size_t i : order) {
      if (!staged[i]) {
        flush();
        continue;
      }
      if (hi == lo) lo = input_offset[i];
      hi = input_offset[i] + inputs[i].nbytes();
    }
    flush();
  }

  void issue_step(Step& s) {
    backends::Backend& b = *exe->backend;
    if (s.fn) {
      KernelContext ctx{s.ins,    std::span<NDArray>(s.outs), s.attrs,
                        b.pool(), s.constant_inputs,          s.settled_inputs};
      (*s.fn)(ctx);
    } else {
      b.copy(s.dst.data(), s.dst.device(), s.src.data(), s.src.device(), s.dst.nbytes());
    }
  }
  void issue() {
    for (auto& s : steps) issue_step(s);
  }
  // KernelContext::settled_inputs of each kernel step: its inputs that the step before it does
  // not write (its outputs, or a copy's destination). The first step has none: the previous
  // run's last kernel may still be running.
  void mark_settled_inputs() {
    for (size_t i = 1; i < steps.size(); ++i) {
      Step& s = steps[i];
      const Step& prev = steps[i - 1];
      if (!s.fn) continue;
      const std::span<const NDArray> written =
          prev.fn ? std::span<const NDArray>(prev.outs) : std::span<const NDArray>(&prev.dst, 1);
      for (size_t k = 0; k < s.ins.size() && k < 64; ++k)
        if (std::none_of(written.begin(), written.end(),
                         [&](const NDArray& w) { return may_overlap(s.ins[k], w); }))
          s.settled_inputs |= uint64_t{1} << k;
    }
  }
};

PreparedRun::PreparedRun(const Executable& executable,
                         const std::vector<std::pair<std::string, Shape>>& shapes,
                         const PrepareOptions& options) {
  LOOM_CHECK(executable.valid(), "[prepare] executable is empty");
  auto im = std::make_shared<Impl>();
  im->exe = executable.impl();
  im->options = options;
  ExecutableImpl& x = *im->exe;
  LOOM_CHECK(x.call_nodes.empty(),
             "[prepare] executables with call sites are not supported (callees plan per run)");
  const auto& reg = ir::OpRegistry::get();
  // Inputs in placeholder order, checked like Executable::run.
  std::vector<Shape> ordered;
  for (const auto& [name, shape] : shapes)
    LOOM_CHECK(std::any_of(x.placeholders.begin(), x.placeholders.end(),
                           [&](int p) {
                             return attrs_as<PlaceholderAttrs>(
                                        *x.graph.nodes[static_cast<size_t>(p)].attrs)
                                        .name == name;
                           }),
               "[prepare] no input named '", name, "'");
  size_t total = 0;
  for (int p : x.placeholders) {
    const ir::Node& n = x.graph.nodes[static_cast<size_t>(p)];
    const auto& name = attrs_as<PlaceholderAttrs>(*n.attrs).name;
    auto it =
        std::find_if(shapes.begin(), shapes.end(), [&](const auto& s) { return s.first == name; });
    LOOM_CHECK(it != shapes.end(), "[prepare] missing shape for input '", name, "'");
    const Shape& want = n.outputs[0].shape;
    bool fits = it->second.rank() == want.rank() && it->second.is_static();
    for (int d = 0; fits && d < want.rank(); ++d)
      fits = want[d] == kDynamic || want[d] == it->second[d];
    LOOM_CHECK(fits, "[prepare] input '", name, "' must have shape ", want.to_string(), ", got ",
               it->second.to_string());
    ordered.push_back(it->second);
    im->input_names.push_back(name);
    im->input_offset.push_back(total);
    total += (storage_bytes(n.outputs[0].dtype, it->second.numel()) + 255) / 256 * 256;
  }
  im->plan = x.plan_for(ordered);
  const Plan& plan = *im->plan;
  backends::Backend& b = *x.backend;
  const size_t nn = x.graph.nodes.size();
  auto slot_index = [&](const ir::Value& v) {
    return static_cast<size_t>(x.slot_base[static_cast<size_t>(v.node)] + v.index);
  };
  // At fixed shapes some copies keep memory order: a transpose that only moves size-1 dims (a
  // decode step's [1,1,H,D] -> [1,H,1,D]), a dynamic_slice of the whole array, or a unit-step
  // slice whose result is one contiguous range of its input (dims before the last cut one of
  // size 1 in the result: the q / k / v slices of a one-token step after
  // merge_parallel_matmuls). They become views (no kernel) at an element offset into their
  // input, and the arena is planned again with them as views (their input must then live as
  // long as their users). Only for inputs made by kernels (never variables or constants).
  std::vector<bool> as_view(nn, false);
  std::vector<int64_t> view_offset(nn, 0);  // elements past the input's start
  std::vector<int> root(static_cast<size_t>(x.num_slots));
  std::vector<bool> kernel_made(static_cast<size_t>(x.num_slots), false);
  for (size_t i = 0; i < nn; ++i) {
    const ir::Node& node = x.graph.nodes[i];
    const auto& info = reg.info(node.op);
    bool view = info.is_view();  // output 0 shares input 0's memory (also as_view below)
    if (x.kernels[i] && !info.is_inplace() && node.outputs.size() == 1 && !node.inputs.empty() &&
        kernel_made[static_cast<size_t>(root[slot_index(node.inputs[0])])] &&
        !x.output_root[static_cast<size_t>(x.slot_base[i])]) {
      const Shape& in = plan.types[slot_index(node.inputs[0])].shape;
      const Shape& out = plan.types[static_cast<size_t>(x.slot_base[i])].shape;
      if (node.op == op::transpose) {
        int64_t last = -1;
        bool order = true;
        for (int64_t p : attrs_as<PermuteAttrs>(*node.attrs).perm) {
          int64_t a = p < 0 ? p + in.rank() : p;
          if (in[static_cast<int>(a)] == 1) continue;
          order = order && a > last;
          last = a;
        }
        as_view[i] = order;
      } else if (node.op == op::dynamic_slice) {
        as_view[i] = in == out;
      } else if (node.op == op::slice && in.is_static() && in.rank() > 0) {
        const auto r = ops::resolve_slice(in, attrs_as<SliceAttrs>(*node.attrs));
        int cut = -1;  // the last dim the slice cuts; those after it are whole
        bool range = true;
        for (int d = 0; d < in.rank(); ++d) {
          range = range && r.steps[static_cast<size_t>(d)] == 1;
          if (r.out[d] != in[d]) cut = d;
        }
        for (int d = 0; d < cut; ++d) range = range && r.out[d] == 1;
        if (range && r.out == out) {
          const auto strides = contiguous_strides(in);
          int64_t off = 0;
          for (int d = 0; d < in.rank(); ++d)
            off += r.starts[static_cast<size_t>(d)] * strides[static_cast<size_t>(d)];
          // Kernels may load 16 bytes at a time (arena buffers are aligned): keep views at
          // 16-byte offsets (q / k / v of whole heads always are); sub-byte dtypes included.
          as_view[i] = off * dtype_bits(plan.types[slot_index(node.inputs[0])].dtype) % 128 == 0;
          view_offset[i] = off;
        }
      }
      view = view || as_view[i];
    }
    for (size_t k = 0; k < node.outputs.size(); ++k) {
      size_t sl = static_cast<size_t>(x.slot_base[i]) + k;
      const int a = view ? 0 : info.aliased_input(k);
      root[sl] =
          a >= 0 ? root[slot_index(node.inputs[static_cast<size_t>(a)])] : static_cast<int>(sl);
      kernel_made[sl] = a >= 0 ? kernel_made[static_cast<size_t>(root[sl])]
                               : (x.kernels[i] != nullptr && !info.is_source());
    }
  }
  std::vector<int> last_use(static_cast<size_t>(x.num_slots), -1);
  for (size_t i = 0; i < nn; ++i)
    for (const auto& in : x.graph.nodes[i].inputs) {
      auto r = static_cast<size_t>(root[slot_index(in)]);
      last_use[r] = std::max(last_use[r], static_cast<int>(i));
    }
  std::vector<BufferRequest> req;
  std::vector<size_t> req_slot;
  for (size_t i = 0; i < nn; ++i) {
    if (!x.kernels[i] || as_view[i]) continue;
    for (size_t k = 0; k < x.graph.nodes[i].outputs.size(); ++k) {
      size_t sl = static_cast<size_t>(x.slot_base[i]) + k;
      if (x.output_root[sl] || reg.info(x.graph.nodes[i].op).aliased_input(k) >= 0) continue;
      const auto& t = plan.types[sl];
      req.push_back({static_cast<int64_t>(storage_bytes(t.dtype, t.shape.numel())),
                     static_cast<int>(i), std::max(last_use[sl], static_cast<int>(i))});
      req_slot.push_back(sl);
    }
  }
  std::vector<int64_t> planned;
  int64_t arena_bytes = plan_offsets(req, planned);
  std::vector<int64_t> offset(static_cast<size_t>(x.num_slots), -1);
  for (size_t r = 0; r < req.size(); ++r) offset[req_slot[r]] = planned[r];
  // All inputs in one buffer (one upload per run), all intermediates in one arena of our own.
  im->input_storage = b.allocate(std::max<size_t>(total, 64));
  if (b.on_device()) im->staging = Storage::allocate(std::max<size_t>(total, 64), true);
  im->arena = b.allocate(static_cast<size_t>(std::max<int64_t>(arena_bytes, 64)));
  for (size_t i = 0; i < x.placeholders.size(); ++i) {
    DType t = x.graph.nodes[static_cast<size_t>(x.placeholders[i])].outputs[0].dtype;
    im->inputs.emplace_back(im->input_storage, t, ordered[i], contiguous_strides(ordered[i]),
                            static_cast<int64_t>(im->input_offset[i] * 8 / dtype_bits(t)));
  }

  std::vector<NDArray> slots(static_cast<size_t>(x.num_slots));
  auto slot_of = [&](const ir::Value& v) -> NDArray& {
    return slots[static_cast<size_t>(x.slot_base[static_cast<size_t>(v.node)] + v.index)];
  };
  size_t next_input = 0;
  for (size_t i = 0; i < x.graph.nodes.size(); ++i) {
    const ir::Node& node = x.graph.nodes[i];
    auto base = static_cast<size_t>(x.slot_base[i]);
    switch (node.op) {
      case op::placeholder:
        slots[base] = im->inputs[next_input++];
        continue;
      case op::constant:
        slots[base] = x.device_constants.empty() ? attrs_as<ConstantAttrs>(*node.attrs).value
                                                 : x.device_constants[i];
        continue;
      case op::read: {
        int v = x.graph.find_variable(attrs_as<VariableRefAttrs>(*node.attrs).variable);
        const NDArray& var = x.variables[static_cast<size_t>(v)];
        if (x.read_copies[i]) {
          NDArray c = x.empty(var.dtype(), var.shape());
          im->steps.push_back({nullptr, c, var, {}, {}, nullptr});
          im->keep.push_back(c);
          slots[base] = c;
        } else {
          slots[base] = var;
        }
        continue;
      }
      case op::assign: {
        const auto& name = attrs_as<VariableRefAttrs>(*node.attrs).variable;
        const NDArray& var = x.variables[static_cast<size_t>(x.graph.find_variable(name))];
        const NDArray& val = slot_of(node.inputs[0]);
        LOOM_CHECK(val.shape() == var.shape(), "[assign] variable '", name, "' is ",
                   var.type().to_string(), ", value at run time is ", val.type().to_string());
        if (val.data() != var.data()) im->steps.push_back({nullptr, var, val, {}, {}, nullptr});
        continue;
      }
      case op::call:
        fail("[prepare] call sites are not supported");
      default:
        break;
    }
    if (reg.info(node.op).is_view() || as_view[i]) {
      const NDArray& in = slot_of(node.inputs[0]);
      const Shape& s = plan.types[base].shape;
      slots[base] =
          NDArray(in.storage(), in.dtype(), s, contiguous_strides(s), in.offset() + view_offset[i]);
      continue;
    }
    Impl::Step st;
    st.fn = x.kernels[i];
    st.attrs = node.attrs.get();
    st.constant_inputs = x.constant_inputs[i];
    st.op = reg.info(node.op).name;
    for (const auto& v : node.inputs) st.ins.push_back(slot_of(v));
    for (size_t k = 0; k < node.outputs.size(); ++k) {
      if (const int a = reg.info(node.op).aliased_input(k); a >= 0) {
        slots[base + k] = st.ins[static_cast<size_t>(a)];  // written in place
        continue;
      }
      const TensorType& t = plan.types[base + k];
      int64_t off = offset[base + k];
      slots[base + k] = off < 0 ? x.empty(t.dtype, t.shape)
                                : NDArray(im->arena, t.dtype, t.shape, contiguous_strides(t.shape),
                                          off * 8 / dtype_bits(t.dtype));
    }
    st.outs.assign(slots.begin() + static_cast<long>(base),
                   slots.begin() + static_cast<long>(base + node.outputs.size()));
    im->steps.push_back(std::move(st));
  }
  // Outputs: the buffers kernels write; values that are sources (constants, inputs, variables)
  // or arena memory get a buffer of their own and a copy step.
  for (const auto& v : x.outputs) {
    int s = x.slot_base[static_cast<size_t>(v.node)] + v.index;
    NDArray a = slots[static_cast<size_t>(s)];
    const ir::Node& rn = x.graph.nodes[static_cast<size_t>(
        std::upper_bound(x.slot_base.begin(), x.slot_base.end(), x.root[static_cast<size_t>(s)]) -
        x.slot_base.begin() - 1)];
    if (reg.info(rn.op).is_source() || a.storage() == im->arena || !a.is_contiguous()) {
      NDArray c = x.empty(a.dtype(), a.shape());
      im->steps.push_back({nullptr, c, a, {}, {}, nullptr});
      im->keep.push_back(c);
      a = c;
    }
    im->outputs.push_back(a);
  }
  im->mark_settled_inputs();
  impl_ = std::move(im);
}

void PreparedRun::set_inputs(const Feeds& feeds) {
  LOOM_CHECK(impl_, "[prepared run] empty");
  impl_->stage_inputs(feeds, impl_->staging.get(), false);
}

uint64_t PreparedRun::enqueue(const Feeds& feeds, const std::vector<Feedback>& feedback,
                              const std::vector<int>& read) {
  LOOM_CHECK(impl_, "[prepared run] empty");
  Impl& im = *impl_;
  backends::Backend& b = *im.exe->backend;
  for (int o : read)
    LOOM_CHECK(o >= 0 && static_cast<size_t>(o) < im.outputs.size(), "[prepared run] output ", o,
               " to read does not exist (", im.outputs.size(), " outputs)");
  std::vector<std::pair<const NDArray*, const NDArray*>> links;  // (output, input)
  for (const auto& f : feedback) {
    LOOM_CHECK(f.output >= 0 && static_cast<size_t>(f.output) < im.outputs.size(),
               "[prepared run] feedback output ", f.output, " does not exist (", im.outputs.size(),
               " outputs)");
    const NDArray& out = im.outputs[static_cast<size_t>(f.output)];
    const NDArray& in = im.inputs[im.input_index(f.input)];
    LOOM_CHECK(out.type() == in.type() && out.is_contiguous(), "[prepared run] feedback of output ",
               f.output, " (", out.type().to_string(), ") into input '", f.input, "' (",
               in.type().to_string(), "): the types differ");
    links.emplace_back(&out, &in);
  }
  const uint64_t t = ++im.tickets;
  Impl::InFlight& f = im.flight[t % 2];
  b.wait_marker(f.done);  // the run two back: its staging and host buffers are reused here
  f.ticket = t;
  f.done.reset();
  if (b.on_device() && !f.staging) f.staging = b.allocate_host(im.staging->size());
  im.stage_inputs(feeds, f.staging.get(), true);
  run();
  for (const auto& [out, in] : links)
    b.copy_async(in->data(), in->device(), out->data(), out->device(), in->nbytes());
  size_t bytes = 0;
  for (int o : read) bytes += (im.outputs[static_cast<size_t>(o)].nbytes() + 7) / 8 * 8;
  if (!f.host || f.host->size() < bytes) f.host = b.allocate_host(std::max<size_t>(bytes, 64));
  f.reads.clear();
  size_t at = 0;
  for (int o : read) {
    const NDArray& out = im.outputs[static_cast<size_t>(o)];
    NDArray h(f.host, out.dtype(), out.shape(), contiguous_strides(out.shape()),
              static_cast<int64_t>(at * 8 / dtype_bits(out.dtype())));
    b.copy_async(h.data(), Device::cpu(), out.data(), out.device(), out.nbytes());
    f.reads.push_back(h);
    at += (out.nbytes() + 7) / 8 * 8;  // 8-byte aligned views
  }
  f.done = b.marker();
  return t;
}

std::vector<NDArray> PreparedRun::wait(uint64_t ticket) {
  LOOM_CHECK(impl_, "[prepared run] empty");
  Impl& im = *impl_;
  Impl::InFlight& f = im.flight[ticket % 2];
  LOOM_CHECK(ticket > 0 && f.ticket == ticket, "[prepared run] run ", ticket,
             " is not in flight (only the last two enqueued runs can be waited for)");
  im.exe->backend->wait_marker(f.done);
  std::vector<NDArray> out;
  for (const auto& r : f.reads) out.push_back(r.clone());  // the buffers serve a later run
  return out;
}

NDArray PreparedRun::input(const std::string& name) const {
  LOOM_CHECK(impl_, "[prepared run] empty");
  auto it = std::find(impl_->input_names.begin(), impl_->input_names.end(), name);
  LOOM_CHECK(it != impl_->input_names.end(), "[prepared run] no input named '", name, "'");
  return impl_->inputs[static_cast<size_t>(it - impl_->input_names.begin())];
}

void PreparedRun::run() {
  LOOM_CHECK(impl_, "[prepared run] empty");
  Impl& im = *impl_;
  ExecutableImpl& x = *im.exe;
  std::shared_lock<std::shared_mutex> shared(x.variables_mutex, std::defer_lock);
  std::unique_lock<std::shared_mutex> exclusive(x.variables_mutex, std::defer_lock);
  if (x.has_assign)
    exclusive.lock();
  else
    shared.lock();
  ++im.runs;
#ifdef LOOM_HAS_CUDA
  bool cuda = x.options.device.kind == Device::Kind::cuda;
  if (cuda && im.options.cuda_graph && !im.graph_failed) {
    // The first run is eager: it creates what kernels make lazily (cuBLASLt state, cached
    // scratch blocks) so that the capture allocates as little as possible.
    if (im.runs == 1) {
      im.issue();
      im.status = "eager (first run; captured on the next)";
      return;
    }
    if (!im.graph) {
      try {
        im.graph = backends::cuda::CudaGraph::capture(x.options.device.index, [&] { im.issue(); });
        im.status = "captured: " + std::to_string(im.graph->nodes()) + " graph nodes for " +
                    std::to_string(im.steps.size()) + " steps";
      } catch (const Error& e) {
        im.graph_failed = true;
        im.status = std::string("eager (capture failed: ") + e.what() + ")";
        im.issue();
        return;
      }
    }
    im.graph->replay();
    return;
  }
  if (im.runs == 1) im.status = cuda ? "eager (cuda_graph off)" : "eager (not on CUDA)";
#else
  if (im.runs == 1) im.status = "eager (not on CUDA)";
#endif
  im.issue();
}

const std::vector<NDArray>& PreparedRun::outputs() const {
  LOOM_CHECK(impl_, "[prepared run] empty");
  return impl_->outputs;
}

std::string PreparedRun::profile(int repeats) {
  LOOM_CHECK(impl_, "[prepared run] empty");
  Impl& im = *impl_;
  ExecutableImpl& x = *im.exe;
  std::unique_lock<std::shared_mutex> lock(x.variables_mutex);
  std::map<std::string, std::pair<double, int64_t>> by_op;  // ms, steps per run
  double total = 0;
  for (int r = 0; r < std::max(repeats, 1); ++r) {
    std::vector<double> ms;
#ifdef LOOM_HAS_CUDA
    if (x.options.device.kind == Device::Kind::cuda)
      ms = backends::cuda::time_pieces(x.options.device.index, im.steps.size(),
                                       [&](size_t i) { im.issue_step(im.steps[i]); });
#endif
    if (ms.empty())
      for (auto& s : im.steps) {
        auto t0 = std::chrono::steady_clock::now();
        im.issue_step(s);
        ms.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count());
      }
    for (size_t i = 0; i < ms.size(); ++i) {
      auto& e = by_op[im.steps[i].op];
      e.first += ms[i];
      if (r == 0) ++e.second;
      total += ms[i];
    }
  }
  std::vector<std::pair<std::string, std::pair<double, int64_t>>> rows(by_op.begin(), by_op.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  double n = std::max(repeats, 1);
  std::ostringstream os;
  char line[160];
  std::snprintf(line, sizeof line, "%-20s %9s %7s %6s %9s\n", "op", "ms/run", "share", "steps",
                "us/step");
  os << line;
  for (const auto& [name, v] : rows) {
    std::snprintf(line, sizeof line, "%-20s %9.3f %6.1f%% %6lld %9.2f\n", name.c_str(), v.first / n,
                  100 * v.first / std::max(total, 1e-12), static_cast<long long>(v.second),
                  1e3 * v.first / n / std::max<double>(v.second, 1));
    os << line;
  }
  std::snprintf(line, sizeof line, "%-20s %9.3f  (sum of step times, one run)\n", "total",
                total / n);
  os << line;
  return os.str();
}

bool PreparedRun::graph_captured() const {
#ifdef LOOM_HAS_CUDA
  return impl_ && impl_->graph != nullptr;
#else
  return false;
#endif
}

std::string PreparedRun::graph_status() const { return impl_ ? impl_->status : "empty"; }

int64_t PreparedRun::runs() const { return impl_ ? impl_->runs : 0; }

}  // namespace loom
