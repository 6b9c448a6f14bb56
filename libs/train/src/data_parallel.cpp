// Gradient all-reduce and state broadcast of data-parallel training. See daug/train/data_parallel.h.
#include <daug/train/data_parallel.h>

#include <daug/error.h>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <map>
#include <sstream>

namespace daug::train {

at::Tensor all_reduce_gradients(const std::vector<at::Tensor>& params, at::Tensor& values, Communicator& comm,
                                const std::string& phase, int64_t bucket_bytes) {
  DAUG_CHECK(values.defined() && values.dim() == 1 && values.scalar_type() == at::kDouble,
             "all_reduce_gradients: values must be a 1-d float64 tensor");
  struct Bucket {
    std::vector<size_t> members;  // indices into params
    int64_t bytes = 0;
  };
  std::vector<Bucket> buckets;
  std::map<at::ScalarType, size_t> open;  // the bucket being filled, per dtype
  std::vector<double> present(params.size(), 0.0);
  for (size_t i = 0; i < params.size(); ++i) {
    const at::Tensor& p = params[i];
    present[i] = p.grad().defined() ? 1.0 : 0.0;
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    auto it = open.find(p.scalar_type());
    if (it == open.end() || (buckets[it->second].bytes > 0 && buckets[it->second].bytes + bytes > bucket_bytes)) {
      buckets.emplace_back();
      it = open.insert_or_assign(p.scalar_type(), buckets.size() - 1).first;
    }
    buckets[it->second].members.push_back(i);
    buckets[it->second].bytes += bytes;
  }
  std::vector<at::Tensor> flat;
  flat.reserve(buckets.size() + 1);
  for (const Bucket& b : buckets) {
    std::vector<at::Tensor> pieces;
    for (size_t i : b.members) {
      const at::Tensor& p = params[i];
      pieces.push_back(p.grad().defined() ? p.grad().reshape({-1}) : at::zeros({p.numel()}, p.options()));
    }
    flat.push_back(at::cat(pieces));
  }
  // The presence flags ride with the values: one collective for everything.
  const int64_t nv = values.numel();
  at::Tensor flags = at::tensor(present, at::kDouble);
  // A pageable host-to-device copy would wait for the device: pinned and non-blocking, no host sync per step.
  flags = values.is_cuda() ? flags.pin_memory().to(values.device(), /*non_blocking=*/true) : flags.to(values.device());
  flat.push_back(at::cat({values, flags}));
  comm.all_reduce_sum(flat, phase);
  at::NoGradGuard no_grad;
  for (size_t k = 0; k < buckets.size(); ++k) {
    int64_t offset = 0;
    for (size_t i : buckets[k].members) {
      const at::Tensor& p = params[i];
      if (p.grad().defined()) p.grad().copy_(flat[k].narrow(0, offset, p.numel()).view_as(p.grad()));
      offset += p.numel();
    }
  }
  const at::Tensor& meta = flat.back();
  values.copy_(meta.narrow(0, 0, nv));
  if (params.empty()) return at::zeros({}, values.options());
  const at::Tensor counts = meta.narrow(0, nv, static_cast<int64_t>(params.size()));
  const double world = comm.world_size();
  return ((counts > 0) & (counts < world)).sum().to(at::kDouble);
}

NamedTensors broadcast_named(const NamedTensors& tensors, int root, Communicator& comm, const std::string& phase,
                             const c10::Device& device) {
  // Header: one line per tensor, "<dtype> <dim> <sizes...> <name>" (names may hold spaces: they come last).
  std::string header;
  if (comm.rank() == root) {
    std::ostringstream h;
    for (const auto& [name, t] : tensors) {
      DAUG_CHECK(name.find('\n') == std::string::npos, "broadcast_named: tensor name with a newline");
      h << static_cast<int>(t.scalar_type()) << ' ' << t.dim();
      for (int64_t s : t.sizes()) h << ' ' << s;
      h << ' ' << name << '\n';
    }
    header = h.str();
  }
  const std::vector<std::string> headers = comm.all_gather_bytes(header, phase + " (names and shapes)");
  DAUG_CHECK(root >= 0 && static_cast<size_t>(root) < headers.size(), "broadcast_named: root ", root, " of ",
             headers.size(), " ranks");
  struct Entry {
    std::string name;
    at::ScalarType dtype;
    std::vector<int64_t> shape;
    int64_t numel = 1, offset = 0;
  };
  std::vector<Entry> entries;
  std::map<at::ScalarType, int64_t> totals;
  std::istringstream in(headers[static_cast<size_t>(root)]);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    Entry e;
    int dtype = 0, dim = 0;
    ls >> dtype >> dim;
    DAUG_CHECK(!ls.fail() && dim >= 0, "broadcast_named: malformed header line '", line, "'");
    e.dtype = static_cast<at::ScalarType>(dtype);
    for (int d = 0; d < dim; ++d) {
      int64_t s = 0;
      ls >> s;
      DAUG_CHECK(!ls.fail() && s >= 0, "broadcast_named: malformed header line '", line, "'");
      e.shape.push_back(s);
      e.numel *= s;
    }
    ls.get();  // the space before the name
    std::getline(ls, e.name);
    e.offset = totals[e.dtype];
    totals[e.dtype] += e.numel;
    entries.push_back(std::move(e));
  }
  // One flat buffer per dtype; root fills them from its tensors.
  std::vector<at::ScalarType> order;
  std::vector<at::Tensor> flat;
  std::map<at::ScalarType, size_t> slot;
  for (const auto& [dtype, total] : totals) {
    slot[dtype] = flat.size();
    order.push_back(dtype);
    if (comm.rank() == root) {
      std::vector<at::Tensor> pieces;
      for (size_t i = 0; i < entries.size(); ++i)
        if (entries[i].dtype == dtype) pieces.push_back(tensors[i].second.detach().reshape({-1}).to(device));
      flat.push_back(at::cat(pieces));
    } else {
      flat.push_back(at::empty({total}, at::TensorOptions().dtype(dtype).device(device)));
    }
  }
  comm.broadcast(flat, root, phase);
  NamedTensors out;
  out.reserve(entries.size());
  for (const Entry& e : entries)
    out.emplace_back(e.name, flat[slot[e.dtype]].narrow(0, e.offset, e.numel).view(e.shape).to(at::kCPU).clone());
  return out;
}

}  // namespace daug::train
