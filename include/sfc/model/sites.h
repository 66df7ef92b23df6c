// Named site calls written into the Gemma-2 forward (docs/style.md §3): what a forward does at each
// (site, layer) — record the activation, add or substitute an intervention, expose it to autograd.
// The default does nothing and costs one branch.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "sfc/core/site.h"

namespace sfc::model {

class SiteCalls {
 public:
  explicit SiteCalls(int64_t n_layer = 0);

  // --- set-up, before the forward -------------------------------------------------------------
  // Keep the activation seen downstream (after any intervention). With `grad`, also make it part of
  // the autograd graph so that gradients() returns d(scalar)/d(activation) for it.
  void record(Site site, int64_t layer, bool grad = false);
  void record_all(bool grad = false);  // every site of every layer
  // Add `delta` (B, T, W) to the activation (zero rows/positions leave it unchanged).
  void add(Site site, int64_t layer, torch::Tensor delta);
  // Replace the activation by `value` (B, T, W) where `mask` (B, T) is true.
  void replace(Site site, int64_t layer, torch::Tensor value, torch::Tensor mask);
  // Apply `fn` (B, T, W) -> (B, T, W) to the activation, e.g. splice an SAE in. Runs before add/replace.
  void transform(Site site, int64_t layer, std::function<torch::Tensor(const torch::Tensor&)> fn);
  void clear();

  // --- the call written into the forward ------------------------------------------------------
  // x: (B, T, W). Returns the activation the rest of the forward must use.
  torch::Tensor at(Site site, int64_t layer, torch::Tensor x);

  // --- after the forward ----------------------------------------------------------------------
  bool wants_grad() const { return n_grad_ > 0; }
  bool is_recorded(Site site, int64_t layer) const;
  const torch::Tensor& recorded(Site site, int64_t layer) const;  // (B, T, W); throws if absent
  // One autograd call: gradients of `scalar` at every site recorded with grad, stored for
  // gradient(). Frees the graph.
  void backward(const torch::Tensor& scalar);
  const torch::Tensor& gradient(Site site, int64_t layer) const;  // (B, T, W); throws if absent

  int64_t n_layer() const { return n_layer_; }

 private:
  struct Slot {
    bool active = false;
    bool record = false;
    bool grad = false;
    std::function<torch::Tensor(const torch::Tensor&)> transform;
    torch::Tensor add;           // (B, T, W) or undefined
    torch::Tensor replace;       // (B, T, W) or undefined
    torch::Tensor replace_mask;  // (B, T) bool
    torch::Tensor value;         // (B, T, W) what the forward saw, when recorded
    torch::Tensor grad_value;    // (B, T, W) after backward()
  };
  Slot& slot(Site site, int64_t layer);
  Slot& activate(Site site, int64_t layer);  // slot(), counting it as active
  const Slot& slot(Site site, int64_t layer) const;

  int64_t n_layer_;
  int n_active_ = 0;  // slots with any action: a forward with none skips the lookup entirely
  int n_grad_ = 0;
  std::vector<Slot> slots_;  // [layer * kNumSites + site]
};

}  // namespace sfc::model
