"""Names of the `sfc run` results file: the Python mirror of include/sfc/output/results_schema.h.

Change both (and docs/results-schema.md) together, and bump SCHEMA_VERSION. Dimension letters:
N pairs, L layers, T longest prompt (tokens), F widest SAE of a site, k = output.topk.
Floats are NaN where not computed; int ids are -1 where absent.

    import h5py, sfc_schema as S
    with h5py.File(path, "r") as f:
        atp = f[S.error_path("resid", "atp")][()]   # (N, L, T)
"""

SCHEMA_VERSION = "1"

SITES = ("resid", "mlp", "attn")

# name -> (dims, numpy dtype name)
PAIRS = "/pairs"
PAIRS_DATASETS = {
    "clean_ids": ("N,T", "int32"),  # pad -1 after the prompt
    "patch_ids": ("N,T", "int32"),
    "length": ("N", "int32"),
    "answer_pos": ("N", "int32"),  # length - 1
    "clean_answer": ("N", "int32"),
    "patch_answer": ("N", "int32"),  # the first patch answer
    "ld_clean": ("N", "float32"),  # LD = logit(patch answer) - logit(clean answer)
    "ld_patch": ("N", "float32"),
}
ATTR_N_SKIPPED = "n_skipped"  # /pairs attribute, decimal text
ATTR_SKIP_REASONS = "skip_reasons"  # /pairs attribute, one "<file>:<line>: <problem>" per line
ATTR_SOURCE = "source"  # /pairs attribute, the pairs file

ERROR = "/error"  # /error/<site>/<name>
ERROR_DATASETS = {
    "atp": ("N,L,T", "float32"),
    "ig": ("N,L,T", "float32"),
    "delta_norm": ("N,L,T", "float32"),
    "grad_norm": ("N,L,T", "float32"),
    "cos": ("N,L,T", "float32"),
    "patch_effect": ("N,L,T", "float32"),
    "patch_effect_norm": ("N,L,T", "float32"),
    "patch_effect_global": ("N,L", "float32"),
    "patch_effect_global_norm": ("N,L", "float32"),
}

RESID_POST = "/resid_post"
RESID_POST_DATASETS = {name: ERROR_DATASETS[name] for name in ("atp", "delta_norm", "grad_norm", "cos")}

LATENTS = "/latents"  # /latents/<site>/<name>, only for sites with SAEs (root attr n_latents_<site> > 0)
LATENT_COUNT = ("count", "T", "int64")  # /latents/count: pairs having position t
LATENT_SUMS = {
    "atp_sum": ("L,T,F", "float64"),
    "ig_sum": ("L,T,F", "float64"),
}
LATENT_TOPK = {  # output.latents = sum
    "atp_topk_index": ("N,L,T,k", "int32"),
    "atp_topk_value": ("N,L,T,k", "float32"),
}
LATENT_FULL = {  # output.latents = full
    "atp": ("N,L,T,F", "float32"),
    "ig": ("N,L,T,F", "float32"),
}

ATTR_DIMS = "dims"  # on every dataset
# Root attributes (all text).
ATTR_SCHEMA_VERSION = "schema_version"
ATTR_CONFIG = "config"
ATTR_MODEL = "model"
ATTR_SAE = "sae"
ATTR_VERSION = "sfc_version"
ATTR_COMMAND_LINE = "command_line"
ATTR_N_PAIRS = "n_pairs"
ATTR_N_LAYER = "n_layer"
ATTR_N_TOKENS = "n_tokens"
ROOT_ATTRS = (ATTR_SCHEMA_VERSION, ATTR_CONFIG, ATTR_MODEL, ATTR_SAE, ATTR_VERSION, ATTR_COMMAND_LINE,
              ATTR_N_PAIRS, ATTR_N_LAYER, ATTR_N_TOKENS)


def attr_n_latents(site):
    return "n_latents_" + site


def pairs_path(name):
    return f"{PAIRS}/{name}"


def error_path(site, name):
    return f"{ERROR}/{site}/{name}"


def resid_post_path(name):
    return f"{RESID_POST}/{name}"


def latents_path(site, name):
    return f"{LATENTS}/{site}/{name}"


def latent_count_path():
    return f"{LATENTS}/{LATENT_COUNT[0]}"


def config_value(f, key):
    """Value of 'section.key' in the resolved config stored in the file's root attributes."""
    section, name = key.split(".", 1)
    current = None
    for line in str(f.attrs[ATTR_CONFIG]).splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
        elif "=" in line and current == section:
            k, v = (x.strip() for x in line.split("=", 1))
            if k == name:
                return v
    raise KeyError(key)


def expected_datasets(f):
    """Every dataset path the file must hold -> (shape, dtype name), from its root attributes and
    the resolved config (output.latents, output.topk)."""
    n, l, t = (int(f.attrs[a]) for a in (ATTR_N_PAIRS, ATTR_N_LAYER, ATTR_N_TOKENS))
    sizes = {"N": n, "L": l, "T": t, "k": int(config_value(f, "output.topk"))}

    def shape(dims, width=None):
        return tuple(width if d == "F" else sizes[d] for d in dims.split(","))

    out = {}
    for name, (dims, dtype) in PAIRS_DATASETS.items():
        out[pairs_path(name)] = (shape(dims), dtype)
    for site in SITES:
        for name, (dims, dtype) in ERROR_DATASETS.items():
            out[error_path(site, name)] = (shape(dims), dtype)
    for name, (dims, dtype) in RESID_POST_DATASETS.items():
        out[resid_post_path(name)] = (shape(dims), dtype)
    out[latent_count_path()] = (shape(LATENT_COUNT[1]), LATENT_COUNT[2])
    mode = config_value(f, "output.latents")
    for site in SITES:
        width = int(f.attrs[attr_n_latents(site)])
        if width == 0:
            continue
        extra = LATENT_TOPK if mode == "sum" else LATENT_FULL if mode == "full" else {}
        for name, (dims, dtype) in {**LATENT_SUMS, **extra}.items():
            out[latents_path(site, name)] = (shape(dims, width), dtype)
    return out
