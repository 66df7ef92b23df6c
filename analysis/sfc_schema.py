"""Names of the `sfc run` results file: the Python mirror of include/sfc/schema/results_schema.h.

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

TIMING = "/timing"  # written by sfc run: per MPI rank (W) and phase
TIMING_PHASES = ("load", "forward", "backward", "sae", "ig", "patch", "comm", "io")
TIMING_DATASETS = {
    "seconds": ("W,P", "float64"),
    "batches": ("W", "int64"),
    "pairs": ("W", "int64"),
    "peak_rss_bytes": ("W", "int64"),
}
# /timing attributes (text)
ATTR_TIMING_PHASES = "phases"  # comma list, TIMING_PHASES
ATTR_WORLD_SIZE = "world_size"  # W
ATTR_DATA_GROUPS = "data_groups"
ATTR_SITE_GROUPS = "site_groups"  # /timing/pairs counts each pair once per site group
ATTR_WALL_SECONDS = "wall_seconds"  # rank 0, start to end of the compute phase
ATTR_DEVICE = "device"
ATTR_THREADS = "threads"  # torch threads per rank
TIMING_ATTRS = (ATTR_TIMING_PHASES, ATTR_WORLD_SIZE, ATTR_DATA_GROUPS, ATTR_SITE_GROUPS, ATTR_WALL_SECONDS,
                ATTR_DEVICE, ATTR_THREADS)
# Optional (files written before it existed lack it): rank 0's CPU BLAS and kernels, e.g.
# "OpenBLAS 0.3.21, SkylakeX kernels".
ATTR_CPU_BLAS = "cpu_blas"

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


def timing_path(name):
    return f"{TIMING}/{name}"


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
    if TIMING in f:
        sizes["W"], sizes["P"] = int(f[TIMING].attrs[ATTR_WORLD_SIZE]), len(TIMING_PHASES)
        for name, (dims, dtype) in TIMING_DATASETS.items():
            out[timing_path(name)] = (shape(dims), dtype)
    return out


# ---- /summary: the reduction pass (`sfc reduce`; docs/results-schema.md "/summary") ----
# Floats are float64, NaN where undefined. K = the pass's topk (attribute of /summary), not output.topk;
# it comes first so that a rerun with another topk can resize the datasets.
SUMMARY = "/summary"
SUMMARY_ERROR_METRICS = ("atp", "ig", "delta_norm", "grad_norm", "cos", "patch_effect", "patch_effect_norm")
SUMMARY_RESID_POST_METRICS = tuple(RESID_POST_DATASETS)  # atp, delta_norm, grad_norm, cos
# /summary/error/<site>/<metric>/<stat> and /summary/resid_post/<metric>/<stat>: over pairs, NaN ignored
SUMMARY_METRIC_STATS = {
    "count": ("L,T", "int64"),  # finite values
    "mean": ("L,T", "float64"),
    "std": ("L,T", "float64"),  # sample std (n - 1), NaN where count < 2
    "answer_count": ("L", "int64"),  # the same at each pair's answer_pos
    "answer_mean": ("L", "float64"),
    "answer_std": ("L", "float64"),
}
# /summary/corr/<site>/<grouping>/<name>: AtP, IG, patch_effect over the nodes where all three are finite
CORR = "corr"
CORR_GROUPINGS = {  # name -> dims of its datasets
    "layer": "L",  # (pair, position) nodes of a layer
    "position": "T",  # (pair, layer) nodes at a position
    "answer_layer": "L",  # pairs at (layer, answer_pos)
    "answer": "1",  # (pair, layer) nodes at answer_pos
    "layer_means": "1",  # across layers, of answer_layer's means (the seed's Task B r)
}
CORR_COUNT = "count"  # int64: nodes (layers, for layer_means)
CORR_STATS = ("pearson_atp_patch", "pearson_ig_patch", "pearson_atp_ig",
              "spearman_atp_patch", "spearman_ig_patch", "spearman_atp_ig")  # float64
CORR_MEANS = ("mean_atp", "mean_ig", "mean_patch")  # answer_layer only, float64 [L]
# /summary/latents/<site>/<name>, sites with SAEs only
SUMMARY_LATENTS = {
    "atp_mean": ("L,T,F", "float64"),  # atp_sum / count[t]
    "ig_mean": ("L,T,F", "float64"),
    "topk_index": ("K,L", "int32"),  # row i: the i-th largest score; -1 pad
    "topk_atp": ("K,L", "float64"),  # score: sum over t of |atp_mean| (NaN skipped)
    "topk_ig": ("K,L", "float64"),  # sum over t of |ig_mean| of the same latents
}
ATTR_SUMMARY_TOPK = "topk"  # /summary attributes (text), with n_pairs, n_layer, n_tokens
ATTR_SUMMARY_LEAF_ROWS = "leaf_rows"
SUMMARY_CSV_SUFFIX = ".summary.csv"
SUMMARY_CSV_COLUMNS = ("site", "layer", "position", "quantity", "statistic", "value", "n")


def summary_metric_path(site, metric, stat):
    """site: resid, mlp, attn or resid_post."""
    if site == "resid_post":
        return f"{SUMMARY}{RESID_POST}/{metric}/{stat}"
    return f"{SUMMARY}{ERROR}/{site}/{metric}/{stat}"


def summary_corr_path(site, grouping, name):
    return f"{SUMMARY}/{CORR}/{site}/{grouping}/{name}"


def summary_latents_path(site, name):
    return f"{SUMMARY}{LATENTS}/{site}/{name}"


def summary_csv_path(path):
    """<dir>/<stem>.summary.csv for <dir>/<stem>.h5."""
    import pathlib
    p = pathlib.Path(path)
    return str(p.with_name(p.stem + SUMMARY_CSV_SUFFIX))


def expected_summary_datasets(f):
    """Every /summary dataset path -> (shape, dtype name), from the root attributes and /summary's topk."""
    l, t = (int(f.attrs[a]) for a in (ATTR_N_LAYER, ATTR_N_TOKENS))
    sizes = {"L": l, "T": t, "K": int(f[SUMMARY].attrs[ATTR_SUMMARY_TOPK]), "1": 1}

    def shape(dims, width=None):
        return tuple(width if d == "F" else sizes[d] for d in dims.split(","))

    out = {}
    for site in SITES + ("resid_post",):
        for metric in SUMMARY_RESID_POST_METRICS if site == "resid_post" else SUMMARY_ERROR_METRICS:
            for stat, (dims, dtype) in SUMMARY_METRIC_STATS.items():
                out[summary_metric_path(site, metric, stat)] = (shape(dims), dtype)
    for site in SITES:
        for grouping, dims in CORR_GROUPINGS.items():
            names = [(CORR_COUNT, "int64")] + [(s, "float64") for s in CORR_STATS]
            if grouping == "answer_layer":
                names += [(m, "float64") for m in CORR_MEANS]
            for name, dtype in names:
                out[summary_corr_path(site, grouping, name)] = (shape(dims), dtype)
        width = int(f.attrs[attr_n_latents(site)])
        if width:
            for name, (dims, dtype) in SUMMARY_LATENTS.items():
                out[summary_latents_path(site, name)] = (shape(dims, width), dtype)
    return out
