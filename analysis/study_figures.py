"""The study's figures (a)-(e) of one `sfc run` results file: the numbers each figure plots, computed
from an open h5py file in blocks of pairs (memory independent of N), and the matplotlib drawing of them.
Not a command line (plot_study.py) and not the scaling curves (scaling_figures.py).

Dimension letters as in sfc_schema: N pairs, L layers, T positions. Every mean ignores NaN (not
computed, or past a prompt's end). "Averaged over positions" means over all finite (pair, position)
nodes of a layer, so it includes the positions before the first clean/patch difference (exact zeros
there), as /summary's [L, T] means do; cos is undefined (NaN) where Δ or g is 0, so its average is over
the nodes where it is defined.
"""
import numpy as np
from matplotlib import colormaps
from matplotlib.colors import BoundaryNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator  # no pyplot: no global state, no display needed

import sfc_schema as S

BLOCK_PAIRS = 4096  # pairs read at once: ~ BLOCK_PAIRS * L * T * 4 bytes per dataset
MAX_SCATTER_POINTS = 20000  # (d) draws a fixed random sample of nodes; r and the fit use all of them
MAX_POSITION_COLUMNS = 16  # (e) by position: the first positions only, beyond that the grid is unreadable

METRICS = ("delta_norm", "grad_norm", "cos", "atp")  # (a)-(c): x, y of (a), y of (b), colour
ESTIMATORS = ("atp", "ig", "patch_effect")  # (d), (e)
GLOBAL_PATCH = "patch_effect_global"  # (e): the node patched at all positions at once, [N, L]
LABEL = {"atp": "AtP", "ig": "IG", "patch_effect": "exact patching", "grad_norm": "‖g‖ (gradient)",
         "cos": "cos(g, Δ)"}
DELTA_LABEL = {"error": "‖Δ‖ = ‖e(x′) − e(x)‖ (error-node difference)",
               "resid_post": "‖Δ‖ = ‖x′ − x‖ (activation difference)"}
ENGINE = {"atp": "atp", "ig": "ig", "patch_effect": "patch"}  # run.engines name of each estimator
assert set(METRICS) <= set(S.RESID_POST_DATASETS) and set(ESTIMATORS + (GLOBAL_PATCH,)) <= set(S.ERROR_DATASETS)

# Stable file names (stem; the extension is the format).
FIG_A, FIG_B, FIG_C = "a_error_grad_vs_delta", "b_error_cos_vs_delta", "c_resid_post_metrics"
FIG_D, FIG_E, FIG_E_POS = "d_estimators_vs_patching", "e_layer_lines", "e_layer_lines_by_position"
FIGURES = (FIG_A, FIG_B, FIG_C, FIG_D, FIG_E, FIG_E_POS)


class ResultsError(Exception):
    """A results file that cannot be plotted; the message names the file and the problem."""


# ---- statistics that merge over blocks of pairs ----

class Moments:
    """Count, mean and centred sum of squares, elementwise, NaN ignored. add() folds in a block along
    axis 0 with Chan et al.'s merge, so any block size gives the numbers of one pass."""

    def __init__(self, shape=()):
        self.n = np.zeros(shape, np.int64)
        self._mean = np.zeros(shape)
        self.m2 = np.zeros(shape)

    def add(self, x):  # x: (b, *shape)
        x = np.asarray(x, np.float64)
        ok = np.isfinite(x)
        nb = ok.sum(axis=0)
        mb = np.where(ok, x, 0.0).sum(axis=0) / np.maximum(nb, 1)
        m2b = (np.where(ok, x - mb, 0.0) ** 2).sum(axis=0)
        n = self.n + nb
        delta = mb - self._mean
        w = np.where(n > 0, nb / np.maximum(n, 1), 0.0)
        self._mean = self._mean + delta * w
        self.m2 = self.m2 + m2b + delta ** 2 * self.n * w
        self.n = n

    def mean(self):
        return np.where(self.n > 0, self._mean, np.nan)

    def sem(self):  # standard error of the mean, NaN where n < 2
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n > 1, np.sqrt(self.m2 / (self.n - 1) / self.n), np.nan)


class CoMoments:
    """Count, means, centred sums of squares and cross products of (x, y) over the nodes where both are
    finite: Pearson r and the least-squares line without holding the nodes."""

    def __init__(self):
        self.n, self.mx, self.my, self.sxx, self.syy, self.sxy = 0, 0.0, 0.0, 0.0, 0.0, 0.0

    def add(self, x, y):
        x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
        ok = np.isfinite(x) & np.isfinite(y)
        x, y = x[ok], y[ok]
        nb = len(x)
        if nb == 0:
            return
        mxb, myb = x.mean(), y.mean()
        dx, dy = x - mxb, y - myb
        n = self.n + nb
        ex, ey = mxb - self.mx, myb - self.my
        f = self.n * nb / n
        self.sxx += (dx * dx).sum() + ex * ex * f
        self.syy += (dy * dy).sum() + ey * ey * f
        self.sxy += (dx * dy).sum() + ex * ey * f
        self.mx += ex * nb / n
        self.my += ey * nb / n
        self.n = n

    def pearson(self):  # NaN where n < 3 or a variance is 0 (as /summary)
        if self.n < 3 or self.sxx == 0 or self.syy == 0:
            return float("nan")
        return float(np.clip(self.sxy / np.sqrt(self.sxx * self.syy), -1.0, 1.0))

    def fit(self):  # (slope, intercept) of y on x
        if self.n < 2 or self.sxx == 0:
            return float("nan"), float("nan")
        slope = self.sxy / self.sxx
        return float(slope), float(self.my - slope * self.mx)


# ---- reading ----

def check_file(f):
    """Raises ResultsError unless f is a results file of this schema with every dataset plotted here."""
    name = f.filename
    version = f.attrs.get(S.ATTR_SCHEMA_VERSION)
    if version is None:
        raise ResultsError(f"{name}: no root attribute {S.ATTR_SCHEMA_VERSION}: not an `sfc run` results file")
    if str(version) != S.SCHEMA_VERSION:
        raise ResultsError(f"{name}: schema version {version}, this analysis/ reads {S.SCHEMA_VERSION}")
    needed = [S.pairs_path("answer_pos")] + [S.resid_post_path(m) for m in METRICS]
    needed += [S.error_path(site, m) for site in S.SITES for m in dict.fromkeys(METRICS + ESTIMATORS + (GLOBAL_PATCH,))]
    missing = [p for p in needed if p not in f]
    if missing:
        raise ResultsError(f"{name}: {len(missing)} dataset(s) missing, first {missing[0]}: "
                           "not a complete results file")


def blocks(n, size):
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def at_answer(x, answer_pos):  # x (b, L, T) -> (b, L), each pair at its own answer position
    return x[np.arange(x.shape[0]), :, answer_pos]


def position_sum(x):  # (b, L, T) -> (b, L): sum over the finite positions, NaN where none is
    x = np.asarray(x, np.float64)  # the file's float32 would round the sum
    ok = np.isfinite(x)
    return np.where(ok.any(axis=2), np.where(ok, x, 0.0).sum(axis=2), np.nan)


class Scan:
    """One pass over the node datasets a figure set needs. For each (N, L, T) path: moments over pairs at
    the answer position [L], over all (pair, position) nodes [L], per position [L, T], and of the
    per-pair sum over positions [L]; for each (N, L) path: moments [L]; for each (x, y) couple of paths:
    co-moments over all nodes and over the answer-position nodes, and a fixed random sample of nodes."""

    def __init__(self, f, node_paths, global_paths=(), couples=(), block=BLOCK_PAIRS, sample=MAX_SCATTER_POINTS):
        answer_pos = f[S.pairs_path("answer_pos")]
        n = answer_pos.shape[0]
        n_layer, n_tokens = (int(f.attrs[a]) for a in (S.ATTR_N_LAYER, S.ATTR_N_TOKENS))
        self.n_pairs, self.n_layer, self.n_tokens = n, n_layer, n_tokens
        self.answer = {p: Moments(n_layer) for p in node_paths}
        self.nodes = {p: Moments(n_layer) for p in node_paths}
        self.by_position = {p: Moments((n_layer, n_tokens)) for p in node_paths}
        self.pos_sum = {p: Moments(n_layer) for p in node_paths}
        self.per_pair = {p: Moments(n_layer) for p in global_paths}
        self.co = {c: CoMoments() for c in couples}
        self.co_answer = {c: CoMoments() for c in couples}
        # The scatter sample: each node kept with probability sample / (N L T), the same nodes for every couple.
        keep = min(1.0, sample / max(1, n * n_layer * n_tokens))
        rng = np.random.default_rng(0)
        self.points = {c: ([], [], []) for c in couples}  # x, y, layer
        for sl in blocks(n, block):
            pos = answer_pos[sl]  # (b)
            data = {p: f[p][sl] for p in set(node_paths) | {q for c in couples for q in c}}  # (b, L, T)
            for p in node_paths:
                x = data[p]
                self.answer[p].add(at_answer(x, pos))
                self.nodes[p].add(np.moveaxis(x, 1, 2).reshape(-1, n_layer))
                self.by_position[p].add(x)
                self.pos_sum[p].add(position_sum(x))
            for p in global_paths:
                self.per_pair[p].add(f[p][sl])  # (b, L)
            mask = rng.random(data[couples[0][0]].shape) < keep if couples else None
            layer = np.broadcast_to(np.arange(n_layer)[None, :, None], mask.shape) if couples else None
            for c in couples:
                x, y = data[c[0]], data[c[1]]
                self.co[c].add(x, y)
                self.co_answer[c].add(at_answer(x, pos), at_answer(y, pos))
                m = mask & np.isfinite(x) & np.isfinite(y)
                for dst, src in zip(self.points[c], (x, y, layer)):
                    dst.append(src[m])

    def sample(self, couple):  # (x, y, layer) 1-d arrays of the drawn nodes
        return tuple(np.concatenate(a) if a else np.zeros(0) for a in self.points[couple])


def engines_missing(scan, site):
    """Estimators of a site with no finite value anywhere (engine not run, or site not requested)."""
    return [e for e in ESTIMATORS if not scan.nodes[S.error_path(site, e)].n.any()]


def jsonable(a):
    """numpy -> JSON-ready lists, NaN -> None."""
    a = np.asarray(a, np.float64)
    return [None if not np.isfinite(v) else float(v) for v in a.ravel()] if a.ndim else (
        None if not np.isfinite(a) else float(a))


# ---- the numbers of each figure ----

def metric_points(scan, group):
    """(a)-(c): per layer, mean over pairs of delta_norm, grad_norm, cos and AtP. group: a site or
    'resid_post'. -> {'answer': {metric: [L]}, 'positions': {metric: [L]}}"""
    path = S.resid_post_path if group == "resid_post" else (lambda m: S.error_path(group, m))
    return {"answer": {m: scan.answer[path(m)].mean() for m in METRICS},
            "positions": {m: scan.nodes[path(m)].mean() for m in METRICS}}


def agreement(scan, site, estimator):
    """(d): estimator (atp or ig) against exact patching over every node of the site where both are
    finite. -> n, pearson, slope, intercept, and the same r over the answer-position nodes."""
    c = (S.error_path(site, estimator), S.error_path(site, "patch_effect"))
    slope, intercept = scan.co[c].fit()
    return {"n": scan.co[c].n, "pearson": scan.co[c].pearson(), "slope": slope, "intercept": intercept,
            "n_answer": scan.co_answer[c].n, "pearson_answer": scan.co_answer[c].pearson()}


def layer_lines(scan, site):
    """(e): per layer, mean over pairs (and its standard error) of AtP, IG and patching at the answer
    position [L], per position [L, T], and summed over positions [L] next to the global patching
    effect [L] (the node patched at every position at once; by linearity the sums estimate it)."""
    out = {"answer": {}, "answer_sem": {}, "position": {}, "position_sem": {}, "all_positions": {},
           "all_positions_sem": {}}
    for e in ESTIMATORS:
        p = S.error_path(site, e)
        out["answer"][e], out["answer_sem"][e] = scan.answer[p].mean(), scan.answer[p].sem()
        out["position"][e], out["position_sem"][e] = scan.by_position[p].mean(), scan.by_position[p].sem()
        if e != "patch_effect":
            out["all_positions"][e], out["all_positions_sem"][e] = scan.pos_sum[p].mean(), scan.pos_sum[p].sem()
    g = S.error_path(site, GLOBAL_PATCH)
    out["all_positions"][GLOBAL_PATCH] = scan.per_pair[g].mean()
    out["all_positions_sem"][GLOBAL_PATCH] = scan.per_pair[g].sem()
    return out


def scan_file(f, block=BLOCK_PAIRS):
    """Reads what figures (a)-(e) need in one pass."""
    node = [S.resid_post_path(m) for m in METRICS]
    node += [S.error_path(site, m) for site in S.SITES for m in METRICS + ESTIMATORS[1:]]
    couples = [(S.error_path(site, e), S.error_path(site, "patch_effect")) for site in S.SITES for e in ("atp", "ig")]
    return Scan(f, node, [S.error_path(site, GLOBAL_PATCH) for site in S.SITES], couples, block=block)


def study_numbers(scan):
    """Everything the figures plot, as JSON-ready dicts (written next to the figures)."""
    out = {FIG_A: {}, FIG_C: {}, FIG_D: {}, FIG_E: {}}
    for site in S.SITES:
        out[FIG_A][site] = {k: {m: jsonable(v) for m, v in d.items()} for k, d in metric_points(scan, site).items()}
        out[FIG_D][site] = {e: {k: jsonable(v) for k, v in agreement(scan, site, e).items()} for e in ("atp", "ig")}
        out[FIG_E][site] = {k: {m: jsonable(v) for m, v in d.items()} for k, d in layer_lines(scan, site).items()}
    out[FIG_C] = {k: {m: jsonable(v) for m, v in d.items()} for k, d in metric_points(scan, "resid_post").items()}
    out[FIG_B] = {"same numbers as": FIG_A}
    out[FIG_E_POS] = {"same numbers as": FIG_E + " (position, position_sem)"}
    return out


# ---- drawing ----

ROWS = (("answer", "at the answer position"), ("positions", "averaged over positions"))
COLOUR = {"atp": "tab:blue", "ig": "tab:orange", "patch_effect": "tab:green", GLOBAL_PATCH: "tab:green"}


def note(ax, text):
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes, color="0.3")
    ax.set_xticks([])
    ax.set_yticks([])


def spans_decades(v):
    v = v[np.isfinite(v)]
    return len(v) > 1 and (v > 0).all() and v.max() / v.min() > 20


def draw_points(ax, x, y, c, norm, y_is_cos):
    """One point per layer, joined in layer order, labelled with its layer, coloured by AtP."""
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        note(ax, "not computed")
        return None
    layers = np.flatnonzero(ok)
    ax.plot(x[ok], y[ok], color="0.75", lw=0.8, zorder=1)
    sc = ax.scatter(x[ok], y[ok], c=np.where(np.isfinite(c[ok]), c[ok], 0.0), cmap="coolwarm", norm=norm,
                    s=60, edgecolors="k", linewidths=0.5, zorder=2)
    step = max(1, len(layers) // 14)  # label at most ~14 layers
    for i in layers[::step]:
        ax.annotate(str(i), (x[i], y[i]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if spans_decades(x):
        ax.set_xscale("log")
    if y_is_cos:
        ax.axhline(0, color="0.6", lw=0.6, ls=":")
    elif spans_decades(y):
        ax.set_yscale("log")
    return sc


def symmetric_norm(values):
    v = np.concatenate([np.ravel(a) for a in values])
    top = np.nanmax(np.abs(v)) if np.isfinite(v).any() else 1.0
    return Normalize(-top if top > 0 else -1.0, top if top > 0 else 1.0)


def metrics_figure(points, columns, y_metric_of, title, x_label):
    """(a)-(c). points: column name -> metric_points(); y_metric_of: column -> 'grad_norm' or 'cos'."""
    fig = Figure(figsize=(4.2 * len(columns) + 1.0, 7.6), layout="constrained")
    axes = fig.subplots(2, len(columns), squeeze=False)
    for r, (row, row_title) in enumerate(ROWS):
        norm = symmetric_norm([points[c][row]["atp"] for c in columns])
        sc = None
        for k, col in enumerate(columns):
            ax, d, y = axes[r, k], points[col][row], y_metric_of[col]
            sc = draw_points(ax, d["delta_norm"], d[y], d["atp"], norm, y == "cos") or sc
            ax.set_title(f"{col}: {row_title}", fontsize=10)
            ax.set_xlabel(x_label, fontsize=9)
            ax.set_ylabel(LABEL[y])
        if sc is not None:
            fig.colorbar(sc, ax=list(axes[r]), label="mean AtP (colour)", shrink=0.9)
    fig.suptitle(title + " (one point per layer, numbered; mean over pairs)")
    return fig


def figure_a(scan):
    points = {site: metric_points(scan, site) for site in S.SITES}
    return metrics_figure(points, S.SITES, {s: "grad_norm" for s in S.SITES},
                          "(a) error nodes: gradient norm vs error-difference norm, colour = AtP", DELTA_LABEL["error"])


def figure_b(scan):
    points = {site: metric_points(scan, site) for site in S.SITES}
    return metrics_figure(points, S.SITES, {s: "cos" for s in S.SITES},
                          "(b) error nodes: cos(gradient, error difference) vs its norm, colour = AtP",
                          DELTA_LABEL["error"])


def figure_c(scan):
    p = metric_points(scan, "resid_post")
    cols = ("resid_post: ‖g‖", "resid_post: cos")
    return metrics_figure({cols[0]: p, cols[1]: p}, cols, {cols[0]: "grad_norm", cols[1]: "cos"},
                          "(c) raw residual stream (no SAE), colour = AtP", DELTA_LABEL["resid_post"])


def figure_d(scan):
    fig = Figure(figsize=(13.5, 8.4), layout="constrained")
    axes = fig.subplots(2, len(S.SITES), squeeze=False)
    # One colour per layer: boundaries at half-integers.
    cmap = colormaps["viridis"].resampled(scan.n_layer)
    norm = BoundaryNorm(np.arange(scan.n_layer + 1) - 0.5, scan.n_layer)
    sc = None
    for r, e in enumerate(("atp", "ig")):
        for k, site in enumerate(S.SITES):
            ax = axes[r, k]
            ax.set_title(f"{site}: {LABEL[e]} vs exact patching", fontsize=10)
            a = agreement(scan, site, e)
            missing = engines_missing(scan, site)
            if a["n"] == 0:
                note(ax, "not computed: " + ", ".join(LABEL[m] for m in missing) if missing else "no nodes")
                continue
            x, y, layer = scan.sample((S.error_path(site, e), S.error_path(site, "patch_effect")))
            sc = ax.scatter(x, y, c=layer, cmap=cmap, norm=norm, s=8, alpha=0.6, linewidths=0, rasterized=True)
            lo, hi = np.nanmin(np.r_[x, y, 0.0]), np.nanmax(np.r_[x, y, 0.0])
            ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8, ls="--", label="y = x")
            if np.isfinite(a["slope"]):
                xs = np.array([np.nanmin(x), np.nanmax(x)])
                ax.plot(xs, a["slope"] * xs + a["intercept"], color="crimson", lw=1.2,
                        label=f"fit: y = {a['slope']:.3g} x {a['intercept']:+.3g}")
            text = (f"Pearson r = {a['pearson']:.3f} (n = {a['n']})\n"
                    f"answer position: r = {a['pearson_answer']:.3f} (n = {a['n_answer']})")
            if len(x) < a["n"]:
                text += f"\nshowing {len(x)} of {a['n']} nodes"
            ax.text(0.03, 0.97, text, transform=ax.transAxes, va="top", fontsize=8,
                    bbox=dict(facecolor="white", alpha=0.8, edgecolor="0.8"))
            ax.legend(loc="lower right", fontsize=7)
            ax.set_xlabel(f"{LABEL[e]} (LD units)")
            ax.set_ylabel("exact patching effect (LD units)")
    if sc is not None:
        ticks = np.arange(scan.n_layer)[::max(1, scan.n_layer // 13)]
        fig.colorbar(sc, ax=axes.ravel().tolist(), label="layer", shrink=0.6, ticks=ticks)
    fig.suptitle("(d) error-node estimators vs exact patching, every (pair, layer, position) node")
    return fig


def draw_lines(ax, layers, means, sems, labels):
    drawn = False
    for key, label in labels:
        m, s = means.get(key), sems.get(key)
        if m is None or not np.isfinite(m).any():
            continue
        ax.plot(layers, m, marker="o", ms=3, color=COLOUR[key], label=label)
        ok = np.isfinite(s)
        ax.fill_between(layers[ok], (m - s)[ok], (m + s)[ok], color=COLOUR[key], alpha=0.2, lw=0)
        drawn = True
    ax.axhline(0, color="0.6", lw=0.6, ls=":")
    return drawn


def missing_note(scan, site):
    missing = engines_missing(scan, site)
    return ("not computed: " + ", ".join(LABEL[m] for m in missing)) if missing else ""


def figure_e(scan):
    fig = Figure(figsize=(11, 3.2 * len(S.SITES) + 0.6), layout="constrained")
    axes = fig.subplots(len(S.SITES), 2, squeeze=False)
    layers = np.arange(scan.n_layer)
    for r, site in enumerate(S.SITES):
        d = layer_lines(scan, site)
        extra = missing_note(scan, site)
        ax = axes[r, 0]
        if not draw_lines(ax, layers, d["answer"], d["answer_sem"], [(e, LABEL[e]) for e in ESTIMATORS]):
            note(ax, extra or "no data")
        ax.set_title(f"{site}: at the answer position" + (f"\n({extra})" if extra else ""), fontsize=10)
        ax = axes[r, 1]
        labels = [("atp", "Σ_t AtP"), ("ig", "Σ_t IG"), (GLOBAL_PATCH, "patching all positions")]
        if not draw_lines(ax, layers, d["all_positions"], d["all_positions_sem"], labels):
            note(ax, extra or "no data")
        ax.set_title(f"{site}: all positions at once", fontsize=10)
        for ax in axes[r]:
            ax.set_xlabel("layer")
            ax.set_ylabel("mean effect on LD")
            ax.set_xticks(layers if len(layers) <= 16 else layers[::max(1, len(layers) // 13)])
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    fig.suptitle("(e) error nodes per layer: AtP, IG and exact patching (mean over pairs ± standard error)")
    return fig


def figure_e_by_position(scan):
    shown = [t for t in range(scan.n_tokens)
             if any(scan.by_position[S.error_path(s, "atp")].n[:, t].any() or
                    scan.by_position[S.error_path(s, "patch_effect")].n[:, t].any() for s in S.SITES)]
    shown = shown[:MAX_POSITION_COLUMNS]
    cols = max(1, len(shown))
    fig = Figure(figsize=(2.3 * cols + 0.8, 2.4 * len(S.SITES) + 0.8), layout="constrained")
    axes = fig.subplots(len(S.SITES), cols, squeeze=False, sharex=True, sharey="row")
    layers = np.arange(scan.n_layer)
    for r, site in enumerate(S.SITES):
        d = layer_lines(scan, site)
        for k, t in enumerate(shown):
            ax = axes[r, k]
            means = {e: d["position"][e][:, t] for e in ESTIMATORS}
            sems = {e: d["position_sem"][e][:, t] for e in ESTIMATORS}
            draw_lines(ax, layers, means, sems, [(e, LABEL[e]) for e in ESTIMATORS])
            n = scan.by_position[S.error_path(site, "atp")].n[:, t].max()
            ax.set_title(f"{site}, position {t}" + (f" ({n} pairs)" if n else ""), fontsize=8)
            ax.tick_params(labelsize=7)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if r == len(S.SITES) - 1:
                ax.set_xlabel("layer", fontsize=8)
        axes[r, 0].set_ylabel("mean effect on LD", fontsize=8)
    if axes[0, 0].get_legend_handles_labels()[0]:
        axes[0, 0].legend(fontsize=6)
    more = f"; first {MAX_POSITION_COLUMNS} positions" if len(shown) == MAX_POSITION_COLUMNS < scan.n_tokens else ""
    fig.suptitle(f"(e) error nodes per layer and position (mean over the pairs that have the position{more})")
    return fig


DRAW = {FIG_A: figure_a, FIG_B: figure_b, FIG_C: figure_c, FIG_D: figure_d, FIG_E: figure_e,
        FIG_E_POS: figure_e_by_position}


def figure_notes(scan):
    """Figures to skip entirely (name -> why) and panel notes, for the engines a file lacks."""
    skip, notes = {}, []
    if not any(scan.nodes[S.error_path(s, "atp")].n.any() for s in S.SITES):
        for name in (FIG_A, FIG_B):
            skip[name] = "AtP was not computed (run.engines lacks atp)"
    if not scan.nodes[S.resid_post_path("atp")].n.any():
        skip[FIG_C] = "AtP was not computed (run.engines lacks atp)"
    if not any(scan.nodes[S.error_path(s, "patch_effect")].n.any() for s in S.SITES):
        skip[FIG_D] = "exact patching was not computed (run.engines lacks patch)"
    if not any(scan.nodes[S.error_path(s, e)].n.any() for s in S.SITES for e in ESTIMATORS):
        skip[FIG_E] = skip[FIG_E_POS] = "no estimator was computed"
    for e in ESTIMATORS:
        sites = [site for site in S.SITES if e in engines_missing(scan, site)]
        if sites:
            notes.append(f"{LABEL[e]} not computed at {', '.join(sites)} (engine {ENGINE[e]} not run, or site "
                         "not requested): its panels and lines are left out")
    return skip, notes
