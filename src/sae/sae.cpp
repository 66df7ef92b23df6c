// JumpReLU SAE arithmetic and loading from Gemma Scope params.npz or a SAELens folder, with every
// tensor's shape checked against the others and against the site width.
#include "sfc/sae/sae.h"

#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "sfc/core/error.h"
#include "sfc/core/shapes.h"
#include "sfc/io/npz.h"
#include "sfc/io/safetensors.h"

namespace sfc::sae {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kParamsNpz = "params.npz";
constexpr const char* kSaeLensCfg = "cfg.json";
constexpr const char* kSaeLensWeights = "sae_weights.safetensors";

void check_width(const torch::Tensor& x, int64_t d_in, const char* what) {
  if (x.dim() < 1 || x.size(-1) != d_in)
    throw Error(std::string("JumpReluSae::") + what + ": input shape " + shape_str(x.sizes().vec()) +
                " does not end in the SAE width " + std::to_string(d_in));
}

// Reads the five tensors through `get` (name → tensor, throwing LoadError naming the file when
// absent) and checks their shapes against each other and the site width.
JumpReluSae assemble(const fs::path& file, int64_t expected_d_in, torch::Dtype dtype, torch::Device device,
                     const std::function<torch::Tensor(const std::string&)>& get) {
  JumpReluSae sae;
  sae.source = file;
  torch::Tensor W_enc = get("W_enc");  // (W, F)
  if (W_enc.dim() != 2) throw LoadError(file, "W_enc should be 2-D [d_in, d_sae], is " + shape_str(W_enc.sizes().vec()));
  const int64_t d_in = W_enc.size(0), d_sae = W_enc.size(1);
  if (d_in != expected_d_in)
    throw LoadError(file, "W_enc has d_in " + std::to_string(d_in) + " but the site needs " +
                              std::to_string(expected_d_in) + " (wrong SAE for this site or model?)");
  auto checked = [&](const std::string& name, std::vector<int64_t> want) {
    torch::Tensor t = get(name);
    if (t.sizes().vec() != want)
      throw LoadError(file, name + " has shape " + shape_str(t.sizes().vec()) + " but W_enc " +
                                shape_str(W_enc.sizes().vec()) + " implies " + shape_str(want));
    return t;
  };
  torch::Tensor W_dec = checked("W_dec", {d_sae, d_in});    // (F, W)
  torch::Tensor b_enc = checked("b_enc", {d_sae});          // (F)
  torch::Tensor b_dec = checked("b_dec", {d_in});           // (W)
  torch::Tensor threshold = checked("threshold", {d_sae});  // (F)
  auto to = [&](const torch::Tensor& t) { return t.to(device, dtype).contiguous(); };
  sae.W_enc = to(W_enc);
  sae.W_dec = to(W_dec);
  sae.b_enc = to(b_enc);
  sae.b_dec = to(b_dec);
  sae.threshold = to(threshold);
  return sae;
}

JumpReluSae load_npz(const fs::path& file, int64_t expected_d_in, torch::Dtype dtype, torch::Device device) {
  io::NpzFile npz(file);
  return assemble(file, expected_d_in, dtype, device, [&](const std::string& name) {
    if (!npz.contains(name)) throw LoadError(file, "missing tensor '" + name + "' (a Gemma Scope params.npz has W_enc, W_dec, b_enc, b_dec, threshold)");
    return npz.load(name);
  });
}

// SAELens: cfg.json describes the SAE, sae_weights.safetensors holds the same five tensors.
JumpReluSae load_saelens(const fs::path& dir, int64_t expected_d_in, torch::Dtype dtype, torch::Device device) {
  const fs::path cfg_path = dir / kSaeLensCfg;
  const fs::path weights_path = dir / kSaeLensWeights;
  std::ifstream in(cfg_path);
  if (!in) throw LoadError(cfg_path, "cannot open");
  json cfg;
  try {
    cfg = json::parse(in);
  } catch (const json::parse_error& e) {
    throw LoadError(cfg_path, std::string("invalid JSON (") + e.what() + ")");
  }
  if (!cfg.is_object()) throw LoadError(cfg_path, "not a JSON object");
  // Only plain JumpReLU SAEs reading the raw activation match our arithmetic; refuse the rest loudly.
  if (cfg.contains("architecture") && cfg["architecture"].is_string() && cfg["architecture"] != "jumprelu")
    throw LoadError(cfg_path, "architecture is '" + cfg["architecture"].get<std::string>() + "', only 'jumprelu' is supported");
  if (cfg.contains("apply_b_dec_to_input") && cfg["apply_b_dec_to_input"].is_boolean() &&
      cfg["apply_b_dec_to_input"].get<bool>())
    throw LoadError(cfg_path, "apply_b_dec_to_input is true; Gemma Scope SAEs (and this code) encode x without subtracting b_dec");
  if (cfg.contains("normalize_activations") && cfg["normalize_activations"].is_string() &&
      cfg["normalize_activations"] != "none")
    throw LoadError(cfg_path, "normalize_activations is '" + cfg["normalize_activations"].get<std::string>() +
                                  "', only 'none' is supported");
  auto int_field = [&](const char* key) -> int64_t {
    if (!cfg.contains(key) || !cfg[key].is_number_integer())
      throw LoadError(cfg_path, std::string("missing integer field '") + key + "'");
    return cfg[key].get<int64_t>();
  };
  const int64_t cfg_d_in = int_field("d_in"), cfg_d_sae = int_field("d_sae");

  io::SafetensorsFile st(weights_path);
  JumpReluSae sae = assemble(weights_path, expected_d_in, dtype, device, [&](const std::string& name) {
    if (!st.contains(name)) throw LoadError(weights_path, "missing tensor '" + name + "' (a JumpReLU SAE has W_enc, W_dec, b_enc, b_dec, threshold)");
    return st.load(name, torch::kFloat32);
  });
  if (sae.d_in() != cfg_d_in || sae.d_sae() != cfg_d_sae)
    throw LoadError(cfg_path, "says d_in " + std::to_string(cfg_d_in) + ", d_sae " + std::to_string(cfg_d_sae) +
                                  " but " + weights_path.filename().string() + " has W_enc " +
                                  shape_str(sae.W_enc.sizes().vec()));
  return sae;
}

}  // namespace

torch::Dtype JumpReluSae::compute_dtype(const torch::Tensor& x) const {
  return torch::promote_types(torch::promote_types(x.scalar_type(), W_enc.scalar_type()), torch::kFloat32);
}

// Every .to(dtype) below is a no-op (no copy) when the SAE is held in fp32 and x is already fp32,
// as the engines arrange; a bf16 input or a bf16-held SAE is upcast here rather than computed in bf16.
torch::Tensor JumpReluSae::encode(const torch::Tensor& x) const {
  check_width(x, d_in(), "encode");
  const auto dtype = compute_dtype(x);
  torch::Tensor pre = torch::matmul(x.to(dtype), W_enc.to(dtype)) + b_enc.to(dtype);  // (..., F)
  // relu and the gate together: a latent fires only above both 0 and its threshold.
  return torch::relu(pre) * (pre > threshold.to(dtype)).to(dtype);  // (..., F)
}

torch::Tensor JumpReluSae::decode(const torch::Tensor& f) const {
  check_width(f, d_sae(), "decode");
  const auto dtype = compute_dtype(f);
  return torch::matmul(f.to(dtype), W_dec.to(dtype)) + b_dec.to(dtype);  // (..., W)
}

torch::Tensor JumpReluSae::error(const torch::Tensor& x) const {
  // e = x − x̂ cancels most of x (‖x‖ in the hundreds for Gemma-2, ‖e‖ a few): never in bf16.
  return x.to(compute_dtype(x)) - decode(encode(x));  // (..., W)
}

torch::Tensor JumpReluSae::latent_grad(const torch::Tensor& g) const {
  check_width(g, d_in(), "latent_grad");
  const auto dtype = compute_dtype(g);
  return torch::matmul(g.to(dtype), W_dec.to(dtype).t());  // (..., F)
}

JumpReluSae load_sae(const fs::path& file_or_dir, int64_t expected_d_in, torch::Dtype dtype, torch::Device device) {
  if (fs::is_directory(file_or_dir)) {
    if (fs::exists(file_or_dir / kParamsNpz)) return load_npz(file_or_dir / kParamsNpz, expected_d_in, dtype, device);
    if (fs::exists(file_or_dir / kSaeLensCfg) && fs::exists(file_or_dir / kSaeLensWeights))
      return load_saelens(file_or_dir, expected_d_in, dtype, device);
    throw LoadError(file_or_dir, std::string("no SAE here: looked for ") + kParamsNpz + " (Gemma Scope) and " +
                                     kSaeLensCfg + " + " + kSaeLensWeights + " (SAELens)");
  }
  if (!fs::exists(file_or_dir)) throw LoadError(file_or_dir, "SAE file or folder not found");
  const std::string fname = file_or_dir.filename().string();
  if (file_or_dir.extension() == ".npz") return load_npz(file_or_dir, expected_d_in, dtype, device);
  // A SAELens file names its folder, which must hold the other half of the pair.
  if (fname == kSaeLensCfg || fname == kSaeLensWeights)
    return load_saelens(file_or_dir.parent_path(), expected_d_in, dtype, device);
  throw LoadError(file_or_dir, std::string("not an SAE file: expected a .npz (Gemma Scope), ") + kSaeLensCfg +
                                   " or " + kSaeLensWeights + " (SAELens), or a folder holding them");
}

}  // namespace sfc::sae
