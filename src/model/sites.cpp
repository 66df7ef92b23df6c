// Site calls: the only place where a forward is observed or changed.
#include "sfc/model/sites.h"

#include <torch/autograd.h>

#include "sfc/core/error.h"

namespace sfc::model {

SiteCalls::SiteCalls(int64_t n_layer) : n_layer_(n_layer), slots_(n_layer * kNumSites) {}

SiteCalls::Slot& SiteCalls::slot(Site site, int64_t layer) {
  if (layer < 0 || layer >= n_layer_)
    throw Error("site " + std::string(site_name(site)) + " at layer " + std::to_string(layer) +
                " is outside the model's " + std::to_string(n_layer_) + " layers");
  return slots_[layer * kNumSites + static_cast<int>(site)];
}

const SiteCalls::Slot& SiteCalls::slot(Site site, int64_t layer) const {
  return const_cast<SiteCalls*>(this)->slot(site, layer);
}

SiteCalls::Slot& SiteCalls::activate(Site site, int64_t layer) {
  Slot& s = slot(site, layer);
  if (!s.active) ++n_active_;
  s.active = true;
  return s;
}

void SiteCalls::record(Site site, int64_t layer, bool grad) {
  Slot& s = activate(site, layer);
  if (grad && !s.grad) ++n_grad_;
  s.record = true;
  s.grad = s.grad || grad;
}

void SiteCalls::record_all(bool grad) {
  for (int64_t layer = 0; layer < n_layer_; ++layer)
    for (Site site : kAllSites) record(site, layer, grad);
}

void SiteCalls::add(Site site, int64_t layer, torch::Tensor delta) {
  Slot& s = activate(site, layer);
  s.add = s.add.defined() ? s.add + delta : std::move(delta);
}

void SiteCalls::replace(Site site, int64_t layer, torch::Tensor value, torch::Tensor mask) {
  Slot& s = activate(site, layer);
  s.replace = std::move(value);
  s.replace_mask = std::move(mask);
}

void SiteCalls::transform(Site site, int64_t layer, std::function<torch::Tensor(const torch::Tensor&)> fn) {
  activate(site, layer).transform = std::move(fn);
}

void SiteCalls::clear() {
  slots_.assign(slots_.size(), Slot{});
  n_active_ = 0;
  n_grad_ = 0;
}

torch::Tensor SiteCalls::at(Site site, int64_t layer, torch::Tensor x) {
  if (n_active_ == 0) return x;
  Slot& s = slot(site, layer);
  if (!s.active) return x;
  if (s.transform) x = s.transform(x);
  if (s.replace.defined()) {
    // mask (B, T) -> (B, T, 1) broadcasts over the width.
    x = torch::where(s.replace_mask.unsqueeze(-1), s.replace.to(x.dtype()), x);
  }
  if (s.add.defined()) x = x + s.add.to(x.dtype());
  if (s.grad && !x.requires_grad()) {
    // The earliest grad site roots the graph: nothing before it needs a gradient, and weights
    // never require one. Later sites are non-leaf tensors of the same graph.
    x = x.detach().requires_grad_(true);
  }
  if (s.record) s.value = x;
  return x;
}

bool SiteCalls::is_recorded(Site site, int64_t layer) const { return slot(site, layer).value.defined(); }

const torch::Tensor& SiteCalls::recorded(Site site, int64_t layer) const {
  const Slot& s = slot(site, layer);
  if (!s.value.defined())
    throw Error(std::string("site ") + site_name(site) + " at layer " + std::to_string(layer) +
                " was not recorded in this forward");
  return s.value;
}

void SiteCalls::backward(const torch::Tensor& scalar) {
  std::vector<torch::Tensor> inputs;
  std::vector<Slot*> targets;
  for (Slot& s : slots_) {
    if (!s.grad) continue;
    if (!s.value.defined() || !s.value.requires_grad())
      throw Error("a gradient site was not reached by the forward (did the forward stop early?)");
    inputs.push_back(s.value);
    targets.push_back(&s);
  }
  if (inputs.empty()) throw Error("backward() called but no site was recorded with grad");
  auto grads = torch::autograd::grad({scalar}, inputs, /*grad_outputs=*/{}, /*retain_graph=*/false,
                                     /*create_graph=*/false, /*allow_unused=*/true);
  for (size_t i = 0; i < targets.size(); ++i) {
    // A site that does not influence the scalar (allow_unused) has gradient zero.
    targets[i]->grad_value = grads[i].defined() ? grads[i] : torch::zeros_like(inputs[i]);
    targets[i]->value = targets[i]->value.detach();
  }
}

const torch::Tensor& SiteCalls::gradient(Site site, int64_t layer) const {
  const Slot& s = slot(site, layer);
  if (!s.grad_value.defined())
    throw Error(std::string("no gradient at site ") + site_name(site) + " layer " + std::to_string(layer) +
                " (record it with grad=true and call backward())");
  return s.grad_value;
}

}  // namespace sfc::model
