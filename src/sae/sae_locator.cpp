// Finds the SAE of a (site, layer) in a Gemma Scope release tree, resolving release, width and L0
// from SaeSelection and canonical.json; every ambiguity is an error that lists the choices.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sfc/core/error.h"
#include "sfc/sae/sae.h"

namespace sfc::sae {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kCanonical = "canonical";
constexpr const char* kL0Prefix = "average_l0_";

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

// Names of the sub-folders of `dir` starting with `prefix`, sorted (directory order is arbitrary).
std::vector<std::string> subdirs(const fs::path& dir, const std::string& prefix) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_directory() && starts_with(it->path().filename().string(), prefix))
      out.push_back(it->path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out.empty() ? "none" : out;
}

// True when the folder holds an SAE in either layout.
bool holds_sae(const fs::path& dir) {
  return fs::exists(dir / "params.npz") || (fs::exists(dir / "cfg.json") && fs::exists(dir / "sae_weights.safetensors"));
}

// "average_l0_105" → 105; false for anything else.
bool parse_l0(const std::string& folder, double* out) {
  if (!starts_with(folder, kL0Prefix)) return false;
  const std::string num = folder.substr(std::string(kL0Prefix).size());
  char* end = nullptr;
  const double v = std::strtod(num.c_str(), &end);
  if (num.empty() || *end != '\0') return false;
  *out = v;
  return true;
}

// canonical.json's entry for one release folder and layer/width key, or "" when it has none.
std::string canonical_entry(const fs::path& file, const std::string& release_folder, const std::string& key) {
  std::ifstream in(file);
  if (!in) throw LoadError(file, "cannot open");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::parse_error& e) {
    throw LoadError(file, std::string("invalid JSON (") + e.what() + ")");
  }
  const std::string release_key = release_folder + "-" + kCanonical;
  if (!j.is_object() || !j.contains(release_key) || !j[release_key].is_object()) return "";
  const json& rel = j[release_key];
  if (!rel.contains(key)) return "";
  if (!rel[key].is_string()) throw LoadError(file, release_key + " / " + key + " is not a folder name");
  return rel[key].get<std::string>();
}

}  // namespace

SaeLocator::SaeLocator(fs::path root, SaeSelection selection)
    : root_(std::move(root)), selection_(std::move(selection)) {
  if (!fs::is_directory(root_)) throw LoadError(root_, "SAE root folder not found");
}

fs::path SaeLocator::release_dir(Site site) const {
  const std::string suffix = std::string("-") + gemma_scope_suffix(site);
  if (!selection_.release.empty()) {
    const fs::path dir = root_ / (selection_.release + suffix);
    if (!fs::is_directory(dir)) {
      std::vector<std::string> found;
      for (const auto& d : subdirs(root_, ""))
        if (ends_with(d, suffix)) found.push_back(d);
      throw LoadError(dir, std::string("no such release folder for site ") + site_name(site) +
                               " (folders ending in " + suffix + " under the root: " + join(found) + ")");
    }
    return dir;
  }
  std::vector<std::string> found;
  for (const auto& d : subdirs(root_, ""))
    if (ends_with(d, suffix)) found.push_back(d);
  if (found.empty())
    throw LoadError(root_, std::string("no Gemma Scope release folder '<release>") + suffix + "' for site " +
                               site_name(site));
  if (found.size() > 1) {
    std::vector<std::string> releases;
    for (const auto& d : found) releases.push_back(d.substr(0, d.size() - suffix.size()));
    throw LoadError(root_, std::string("several releases for site ") + site_name(site) + ": " + join(releases) +
                               "; choose one with the SAE release option");
  }
  return root_ / found.front();
}

fs::path SaeLocator::locate(Site site, int64_t layer) const {
  const fs::path release = release_dir(site);
  const std::string layer_name = "layer_" + std::to_string(layer);
  const fs::path layer_dir = release / layer_name;
  if (!fs::is_directory(layer_dir))
    throw LoadError(layer_dir, std::string("no SAE for ") + site_name(site) + " layer " + std::to_string(layer) +
                                   " (layers present: " + join(subdirs(release, "layer_")) + ")");

  // Width: the one asked for, else the only one present.
  std::string width_name;
  if (!selection_.width.empty()) {
    width_name = "width_" + selection_.width;
    if (!fs::is_directory(layer_dir / width_name))
      throw LoadError(layer_dir / width_name, "no such width (present: " + join(subdirs(layer_dir, "width_")) + ")");
  } else {
    const auto widths = subdirs(layer_dir, "width_");
    if (widths.empty()) throw LoadError(layer_dir, "no width_* folder");
    if (widths.size() > 1)
      throw LoadError(layer_dir, "several widths: " + join(widths) + "; choose one with the SAE width option");
    width_name = widths.front();
  }
  const fs::path width_dir = layer_dir / width_name;

  // L0: canonical.json, the nearest number, or the only folder present.
  const fs::path canonical_file = root_ / "canonical.json";
  const std::string key = layer_name + "/" + width_name + "/" + kCanonical;
  const std::string release_folder = release.filename().string();
  fs::path leaf;
  const std::string& l0 = selection_.l0;
  if (l0 == kCanonical || (l0.empty() && fs::exists(canonical_file))) {
    std::string entry;
    if (fs::exists(canonical_file)) entry = canonical_entry(canonical_file, release_folder, key);
    if (!entry.empty()) {
      leaf = release / entry;
    } else if (l0 == kCanonical) {
      throw LoadError(canonical_file,
                      fs::exists(canonical_file)
                          ? "no entry " + release_folder + "-canonical / " + key
                          : "not found, but the SAE l0 option is 'canonical'");
    }
  }
  if (leaf.empty()) {
    std::vector<std::string> l0_dirs = subdirs(width_dir, kL0Prefix);
    if (l0_dirs.empty()) throw LoadError(width_dir, "no average_l0_* folder");
    if (!l0.empty() && l0 != kCanonical) {
      char* end = nullptr;
      const double want = std::strtod(l0.c_str(), &end);
      if (*end != '\0') throw ConfigError("SAE l0 option '" + l0 + "' is neither 'canonical' nor a number");
      // Nearest L0; a tie between two folders is ambiguous rather than silently broken.
      double best = INFINITY;
      std::vector<std::string> best_dirs;
      for (const auto& d : l0_dirs) {
        double v;
        if (!parse_l0(d, &v)) continue;
        const double dist = std::fabs(v - want);
        if (dist < best) {
          best = dist;
          best_dirs = {d};
        } else if (dist == best) {
          best_dirs.push_back(d);
        }
      }
      if (best_dirs.empty()) throw LoadError(width_dir, "no average_l0_<number> folder (present: " + join(l0_dirs) + ")");
      if (best_dirs.size() > 1)
        throw LoadError(width_dir, "L0 " + l0 + " is equally near " + join(best_dirs) + "; choose one of them");
      leaf = width_dir / best_dirs.front();
    } else if (l0_dirs.size() == 1) {
      leaf = width_dir / l0_dirs.front();
    } else {
      throw LoadError(width_dir, "several L0 folders: " + join(l0_dirs) + " and no canonical.json entry" +
                                     " (set the SAE l0 option to a number or 'canonical')");
    }
  }
  if (!fs::is_directory(leaf)) throw LoadError(leaf, "SAE folder not found (named by " + canonical_file.string() + ")");
  if (fs::exists(leaf / "params.npz")) return leaf / "params.npz";
  if (holds_sae(leaf)) return leaf;  // SAELens layout: load_sae takes the folder
  throw LoadError(leaf, "no SAE here: looked for params.npz (Gemma Scope) and cfg.json + sae_weights.safetensors (SAELens)");
}

}  // namespace sfc::sae
