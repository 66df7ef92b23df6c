"""Strong and weak scaling curves (figure f) from the /timing group of several `sfc run` results files:
which runs form which curve, their speed-up and efficiency, and the drawing. Not a command line
(plot_scaling.py); the science figures are in study_figures.py.

A run is one file: W ranks (/timing attribute world_size), N pairs, T = wall_seconds (rank 0, start to
end of the compute phase). Runs compare only when they did the same work per pair (same model, SAEs,
engines, IG steps, patching, dtype, batch size, device, threads per rank, CPU BLAS kernels and site
groups: the setup).
- strong scaling: the same setup and N at several W. Speed-up S(W) = W0 · T(W0) / T(W) from the
  smallest W0 (= T(1) / T(W) when W0 = 1), efficiency S(W) / W; ideal S = W.
- weak scaling: the same setup and N / W at several W. Efficiency T(W0) / T(W); ideal 1.
Several runs at the same point: the fastest counts (the others measured noise from the machine).
"""
import fractions
from dataclasses import dataclass, field

import h5py
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

import sfc_schema as S

STRONG, WEAK = "strong", "weak"
FIG_STRONG, FIG_WEAK = "f_strong_scaling", "f_weak_scaling"
FIGURE_OF = {STRONG: FIG_STRONG, WEAK: FIG_WEAK}
# Config keys (section.key) that change the work per pair: runs differing in one never share a curve.
SETUP_KEYS = ("run.engines", "ig.steps", "patch.positions", "patch.mode", "patch.max_rows", "model.dtype",
              "sae.sites", "sae.layers", "data.batch_size", "output.latents", "output.topk")


class ScalingError(Exception):
    """A file or a set of runs that gives no scaling point; the message names the file and the problem."""


@dataclass
class Run:
    path: str
    world_size: int
    site_groups: int
    n_pairs: int
    seconds: float  # wall_seconds
    phase_seconds: dict  # phase -> max over ranks
    setup: tuple  # ((name, value), ...)


def read_run(path):
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ScalingError(f"{path}: cannot read as HDF5 ({e})") from None
    with f:
        if S.ATTR_SCHEMA_VERSION not in f.attrs:
            raise ScalingError(f"{path}: no root attribute {S.ATTR_SCHEMA_VERSION}: not an `sfc run` results file")
        if S.TIMING not in f:
            raise ScalingError(f"{path}: no {S.TIMING} group: no timings to plot (written by `sfc run` since schema 1; "
                               "a file from another tool or an older build?)")
        timing = f[S.TIMING]
        missing = [a for a in S.TIMING_ATTRS if a not in timing.attrs]
        missing += [S.timing_path(d) for d in S.TIMING_DATASETS if S.timing_path(d) not in f]
        if missing:
            raise ScalingError(f"{path}: {S.TIMING} lacks {', '.join(missing)}")
        world = int(timing.attrs[S.ATTR_WORLD_SIZE])
        groups = int(timing.attrs[S.ATTR_SITE_GROUPS])
        n_pairs = int(f.attrs[S.ATTR_N_PAIRS])
        wall = float(timing.attrs[S.ATTR_WALL_SECONDS])
        seconds = f[S.timing_path("seconds")][()]  # (W, P)
        computed = int(f[S.timing_path("pairs")][()].sum()) // max(1, groups)  # each pair once per site group
        phases = str(timing.attrs[S.ATTR_TIMING_PHASES]).split(",")
        if seconds.shape != (world, len(phases)):
            raise ScalingError(f"{path}: {S.timing_path('seconds')} has shape {seconds.shape}, expected "
                               f"({world}, {len(phases)}) from world_size and phases")
        if computed != n_pairs:
            raise ScalingError(f"{path}: {S.TIMING} covers {computed} of {n_pairs} pairs (a resumed run times only "
                               "what it computed): not a scaling point")
        if not np.isfinite(wall) or wall <= 0:
            raise ScalingError(f"{path}: {S.TIMING} attribute {S.ATTR_WALL_SECONDS} = {wall}: not a duration")
        setup = [("model", str(f.attrs[S.ATTR_MODEL])), ("sae", str(f.attrs[S.ATTR_SAE])),
                 ("device", str(timing.attrs[S.ATTR_DEVICE])), ("threads", str(timing.attrs[S.ATTR_THREADS])),
                 ("cpu_blas", str(timing.attrs.get(S.ATTR_CPU_BLAS, ""))),
                 ("site_groups", str(groups))]
        for key in SETUP_KEYS:
            try:
                setup.append((key, S.config_value(f, key)))
            except KeyError:
                setup.append((key, ""))
    return Run(path, world, groups, n_pairs, wall, dict(zip(phases, seconds.max(axis=0))), tuple(setup))


@dataclass
class Curve:
    kind: str  # STRONG or WEAK
    runs: list  # the fastest run at each world size, by world size
    label: str = ""
    repeats: list = field(default_factory=list)  # runs at each point

    @property
    def world_size(self):
        return np.array([r.world_size for r in self.runs])

    @property
    def seconds(self):
        return np.array([r.seconds for r in self.runs])

    @property
    def speedup(self):  # strong: W0 T0 / T; weak: W T0 / T (W times the efficiency)
        w, t = self.world_size, self.seconds
        return w[0] * t[0] / t if self.kind == STRONG else w * t[0] / t

    @property
    def efficiency(self):
        return self.speedup / self.world_size if self.kind == STRONG else self.seconds[0] / self.seconds


def curves(runs):
    """-> {STRONG: [Curve], WEAK: [Curve]}; a group of runs makes a curve when it has >= 2 world sizes."""
    out = {STRONG: [], WEAK: []}
    for kind, point in ((STRONG, lambda r: r.n_pairs), (WEAK, lambda r: fractions.Fraction(r.n_pairs, r.world_size))):
        groups = {}
        for r in runs:
            groups.setdefault((r.setup, point(r)), []).append(r)
        for key in sorted(groups, key=lambda k: (str(k[0]), k[1])):
            by_w = {}
            for r in groups[key]:
                by_w.setdefault(r.world_size, []).append(r)
            if len(by_w) < 2:
                continue
            fastest = [min(by_w[w], key=lambda r: r.seconds) for w in sorted(by_w)]
            out[kind].append(Curve(kind, fastest, repeats=[len(by_w[w]) for w in sorted(by_w)]))
        label_curves(out[kind])
    return out


def label_curves(cs):
    """'16 pairs' (strong) or '8 pairs/rank' (weak), plus the setup entries that differ between curves."""
    differing = [i for i in range(len(cs[0].runs[0].setup)) if len({c.runs[0].setup[i] for c in cs}) > 1] if cs else []
    for c in cs:
        r = c.runs[0]
        base = f"{r.n_pairs} pairs" if c.kind == STRONG else f"{r.n_pairs / r.world_size:g} pairs/rank"
        c.label = "; ".join([base] + [f"{r.setup[i][0]}={r.setup[i][1]}" for i in differing])


def no_curve_message(runs):
    listed = ", ".join(f"{r.path} (W={r.world_size}, {r.n_pairs} pairs)" for r in runs)
    return ("these runs form no scaling curve: strong scaling needs >= 2 runs with the same setup and pairs at "
            "different rank counts, weak scaling >= 2 with the same pairs per rank; got " + listed)


def rank_axis(ax, ws):
    ws = sorted(set(int(w) for w in ws))
    if ws[-1] / ws[0] >= 8:
        ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(ws))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([str(w) for w in ws])
    ax.set_xlabel("MPI ranks W")


def draw_phases(ax, curve):
    """Stacked bars: per point of the curve, the slowest rank's seconds in each phase."""
    bottom = np.zeros(len(curve.runs))
    xs = np.arange(len(curve.runs))
    for phase in S.TIMING_PHASES:
        v = np.array([r.phase_seconds.get(phase, 0.0) for r in curve.runs])
        if v.any():
            ax.bar(xs, v, bottom=bottom, label=phase, width=0.6)
            bottom += v
    ax.set_xticks(xs, [str(r.world_size) for r in curve.runs])
    ax.set_xlabel("MPI ranks W")
    ax.set_ylabel("seconds (slowest rank per phase)")
    ax.set_title(f"where the time goes ({curve.label})", fontsize=10)
    ax.legend(fontsize=7)


def figure(kind, cs):
    fig = Figure(figsize=(15, 4.6), layout="constrained")
    axes = fig.subplots(1, 3)
    ws = np.concatenate([c.world_size for c in cs])
    grid = np.array(sorted(set(ws.tolist())), float)
    for c in cs:
        if kind == STRONG:
            axes[0].plot(c.world_size, c.speedup, marker="o", label=c.label)
        else:
            axes[0].plot(c.world_size, c.seconds, marker="o", label=c.label)
        axes[1].plot(c.world_size, c.efficiency, marker="o", label=c.label)
    if kind == STRONG:
        axes[0].plot(grid, grid, color="0.5", ls="--", label="ideal (S = W)")
        axes[0].set_ylabel("speed-up S(W) = W0·T(W0) / T(W)")
        axes[0].set_title("strong scaling: speed-up (same pairs)", fontsize=10)
    else:
        axes[0].set_ylabel("wall seconds T(W)")
        axes[0].set_title("weak scaling: wall time (same pairs per rank)", fontsize=10)
        axes[0].set_ylim(bottom=0)
    axes[1].axhline(1.0, color="0.5", ls="--", label="ideal")
    axes[1].set_ylim(0, max(1.1, float(np.nanmax(np.concatenate([c.efficiency for c in cs]))) * 1.1))
    axes[1].set_ylabel("parallel efficiency")
    axes[1].set_title("efficiency " + ("S(W) / W" if kind == STRONG else "T(W0) / T(W)"), fontsize=10)
    for ax in axes[:2]:
        rank_axis(ax, ws)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    draw_phases(axes[2], max(cs, key=lambda c: (len(c.runs), c.runs[0].n_pairs)))
    fig.suptitle(f"(f) {kind} scaling of sfc run (from /timing; fastest run at each point)")
    return fig


def numbers(cs_by_kind):
    return {kind: [{"label": c.label, "files": [r.path for r in c.runs], "repeats": c.repeats,
                    "world_size": c.world_size.tolist(), "n_pairs": [r.n_pairs for r in c.runs],
                    "seconds": c.seconds.tolist(), "speedup": c.speedup.tolist(), "efficiency": c.efficiency.tolist()}
                   for c in cs] for kind, cs in cs_by_kind.items()}
