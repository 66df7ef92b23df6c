#!/usr/bin/env python3
"""Checks the /summary group and the CSV that `sfc reduce` wrote, against an independent numpy
implementation of docs/results-schema.md "/summary" (no scipy: average ranks by hand).

    check_reduce.py RESULTS.h5 [--same-as OTHER.h5] [--no-csv]

Floats must match within 1e-9 relative (plus 1e-12 times the data's scale, for values that cancel to
about 0); counts, top-latent indices and the set of datasets exactly. --same-as: OTHER's /summary
(and CSV) must be bit-for-bit identical to this one's (e.g. 1 rank against 3). Exit 1 listing the
problems.
"""
import argparse
import csv
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "analysis"))
import sfc_schema as S  # noqa: E402

RTOL = 1e-9
ATOL = 1e-12
PAIRS = (("atp", "patch"), ("ig", "patch"), ("atp", "ig"))  # the order of S.CORR_STATS
problems = []


def problem(text):
    problems.append(text)


# ---- reference statistics ----

def moments(x, axis=0):
    """count, mean, sample std over `axis`, NaN ignored."""
    ok = np.isfinite(x)
    count = ok.sum(axis=axis)
    total = np.where(ok, x, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        dev = np.where(ok, x - np.expand_dims(mean, axis), 0.0)
        var = (dev ** 2).sum(axis=axis) / (count - 1)
    std = np.where(count > 1, np.sqrt(np.where(count > 1, var, 0.0)), np.nan)
    return count, mean, std


def rankdata(x):
    """Average ranks 1..n, ties sharing their mean rank."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    bounds = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1], True])  # group starts, then n
    starts, ends = bounds[:-1], bounds[1:]
    ranks = np.empty(len(x))
    ranks[order] = np.repeat((starts + 1 + ends) / 2.0, ends - starts)
    return ranks


def pearson(x, y):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < 3:
        return np.nan
    dx, dy = x - x.mean(), y - y.mean()
    sxx, syy = (dx * dx).sum(), (dy * dy).sum()
    if sxx == 0 or syy == 0:
        return np.nan
    return float(np.clip((dx * dy).sum() / np.sqrt(sxx * syy), -1, 1))


def spearman(x, y):
    return np.nan if len(x) < 3 else pearson(rankdata(x), rankdata(y))


def correlations(triple):
    """triple: dict atp/ig/patch -> 1-d arrays of complete nodes -> {count, pearson_*, spearman_*}."""
    out = {S.CORR_COUNT: len(triple["atp"])}
    for a, b in PAIRS:
        out[f"pearson_{a}_{b}"] = pearson(triple[a], triple[b])
        out[f"spearman_{a}_{b}"] = spearman(triple[a], triple[b])
    return out


def expected_summary(f):
    """Path -> expected array, for every /summary dataset (latents included)."""
    n, L, T = (int(f.attrs[a]) for a in (S.ATTR_N_PAIRS, S.ATTR_N_LAYER, S.ATTR_N_TOKENS))
    ap = f[S.pairs_path("answer_pos")][()].astype(np.int64)
    rows = np.arange(n)
    exp, scale = {}, {}
    for site in S.SITES + ("resid_post",):
        metrics = S.SUMMARY_RESID_POST_METRICS if site == "resid_post" else S.SUMMARY_ERROR_METRICS
        for metric in metrics:
            src = S.resid_post_path(metric) if site == "resid_post" else S.error_path(site, metric)
            x = f[src][()].astype(np.float64)  # (N, L, T)
            at_answer = x[rows, :, ap]  # (N, L)
            path = lambda stat: S.summary_metric_path(site, metric, stat)  # noqa: E731
            values = (*moments(x), *moments(at_answer))
            finite = x[np.isfinite(x)]
            for stat, value in zip(("count", "mean", "std", "answer_count", "answer_mean", "answer_std"), values):
                exp[path(stat)] = np.asarray(value)
                scale[path(stat)] = float(np.abs(finite).max()) if finite.size else 1.0

    for site in S.SITES:
        est = {k: f[S.error_path(site, name)][()].astype(np.float64)
               for k, name in (("atp", "atp"), ("ig", "ig"), ("patch", "patch_effect"))}
        complete = np.isfinite(est["atp"]) & np.isfinite(est["ig"]) & np.isfinite(est["patch"])  # (N, L, T)
        groups = {"layer": [correlations({k: v[:, l, :][complete[:, l, :]] for k, v in est.items()}) for l in range(L)],
                  "position": [correlations({k: v[:, :, t][complete[:, :, t]] for k, v in est.items()}) for t in range(T)]}
        ans = {k: v[rows, :, ap] for k, v in est.items()}  # (N, L)
        ans_ok = complete[rows, :, ap]
        groups["answer_layer"] = [correlations({k: v[:, l][ans_ok[:, l]] for k, v in ans.items()}) for l in range(L)]
        groups["answer"] = [correlations({k: v[ans_ok] for k, v in ans.items()})]
        means = {k: np.array([v[:, l][ans_ok[:, l]].mean() if ans_ok[:, l].any() else np.nan for l in range(L)])
                 for k, v in ans.items()}
        have = np.isfinite(means["atp"])
        groups["layer_means"] = [correlations({k: v[have] for k, v in means.items()})]
        for grouping, entries in groups.items():
            for name in [S.CORR_COUNT] + list(S.CORR_STATS):
                exp[S.summary_corr_path(site, grouping, name)] = np.array([e[name] for e in entries])
        for k, name in zip(("atp", "ig", "patch"), S.CORR_MEANS):
            exp[S.summary_corr_path(site, "answer_layer", name)] = means[k]

        width = int(f.attrs[S.attr_n_latents(site)])
        if not width:
            continue
        topk = int(f[S.SUMMARY].attrs[S.ATTR_SUMMARY_TOPK])
        count = f[S.latent_count_path()][()]  # (T)
        mean = {}
        for k in ("atp", "ig"):
            total = f[S.latents_path(site, k + "_sum")][()]  # (L, T, F)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean[k] = np.where(count[None, :, None] > 0, total / count[None, :, None].astype(np.float64), np.nan)
            exp[S.summary_latents_path(site, k + "_mean")] = mean[k]

        def score(m):  # (L, T, F) -> (L, F): sum over t in order of |m|, NaN skipped; NaN if none finite
            total, any_ = np.zeros((L, m.shape[2])), np.zeros((L, m.shape[2]), bool)
            for t in range(T):
                ok = np.isfinite(m[:, t, :])
                total = total + np.where(ok, np.abs(m[:, t, :]), 0.0)
                any_ |= ok
            return np.where(any_, total, np.nan)

        s_atp, s_ig = score(mean["atp"]), score(mean["ig"])
        index = np.full((topk, L), -1, np.int64)  # (K, L)
        top_atp, top_ig = np.full((topk, L), np.nan), np.full((topk, L), np.nan)
        for l in range(L):
            cand = np.flatnonzero(np.isfinite(s_atp[l]))
            order = cand[np.lexsort((cand, -s_atp[l, cand]))][:topk]
            index[:len(order), l] = order
            top_atp[:len(order), l] = s_atp[l, order]
            top_ig[:len(order), l] = s_ig[l, order]
        exp[S.summary_latents_path(site, "topk_index")] = index
        exp[S.summary_latents_path(site, "topk_atp")] = top_atp
        exp[S.summary_latents_path(site, "topk_ig")] = top_ig
    return exp, scale


def compare(path, actual, expected, scale=1.0):
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        problem(f"{path}: shape {actual.shape}, expected {expected.shape}")
        return
    if actual.dtype.kind in "iu" or expected.dtype.kind in "iu":
        if not np.array_equal(actual, expected):
            problem(f"{path}: {actual.ravel()[:8]} ..., expected {expected.ravel()[:8]} ...")
        return
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    nan_a, nan_e = np.isnan(a), np.isnan(e)
    if not np.array_equal(nan_a, nan_e):
        i = np.argwhere(nan_a != nan_e)[0]
        problem(f"{path}: NaN pattern differs, first at {tuple(i)}: {a[tuple(i)]} vs expected {e[tuple(i)]}")
        return
    ok = ~nan_e
    err = np.abs(a[ok] - e[ok])
    bound = RTOL * np.abs(e[ok]) + ATOL * scale
    if (err > bound).any():
        j = int(np.argmax(err - bound))
        problem(f"{path}: {a[ok][j]!r} vs expected {e[ok][j]!r} (|diff| {err[j]:.3g})")


# ---- the CSV ----

def expected_csv_rows(f, exp):
    """The CSV's rows, values taken from `exp` (path -> array)."""
    L = int(f.attrs[S.ATTR_N_LAYER])
    rows = []
    for site in S.SITES + ("resid_post",):
        for metric in S.SUMMARY_RESID_POST_METRICS if site == "resid_post" else S.SUMMARY_ERROR_METRICS:
            p = lambda stat: exp[S.summary_metric_path(site, metric, stat)]  # noqa: E731
            for l in range(L):
                n = int(p("answer_count")[l])
                rows.append((site, str(l), "answer", metric, "mean", p("answer_mean")[l], n))
                rows.append((site, str(l), "answer", metric, "std", p("answer_std")[l], n))
    for site in S.SITES:
        def corr(grouping, i, layer, position, suffix=""):
            g = lambda name: exp[S.summary_corr_path(site, grouping, name)][i]  # noqa: E731
            for kind in ("pearson", "spearman"):
                for a, b in PAIRS:
                    rows.append((site, layer, position, f"{a}_vs_{b}", kind + suffix, g(f"{kind}_{a}_{b}"),
                                 int(g(S.CORR_COUNT))))
        for l in range(L):
            corr("layer", l, str(l), "all")
        for l in range(L):
            corr("answer_layer", l, str(l), "answer")
        corr("answer", 0, "all", "answer")
        corr("layer_means", 0, "all", "answer", "_of_layer_means")
    return rows


def check_csv(f, path, stored):
    """The CSV must hold exactly (17 significant digits round-trip) the values of /summary."""
    csv_path = S.summary_csv_path(path)
    if not os.path.exists(csv_path):
        problem(f"{csv_path}: missing")
        return
    with open(csv_path, newline="") as fh:
        table = list(csv.reader(fh))
    if tuple(table[0]) != S.SUMMARY_CSV_COLUMNS:
        problem(f"{csv_path}: header {table[0]}, expected {S.SUMMARY_CSV_COLUMNS}")
    want = expected_csv_rows(f, stored)
    got = table[1:]
    if len(got) != len(want):
        problem(f"{csv_path}: {len(got)} rows, expected {len(want)}")
        return
    for i, (g, w) in enumerate(zip(got, want)):
        key_g, key_w = tuple(g[:5]), tuple(w[:5])
        if key_g != key_w or int(g[6]) != w[6]:
            problem(f"{csv_path}:{i + 2}: {g}, expected {w}")
            continue
        value = float(g[5])
        if not (value == w[5] or (np.isnan(value) and np.isnan(w[5]))):
            problem(f"{csv_path}:{i + 2}: value {g[5]}, /summary holds {w[5]!r}")


def check_identical(path, other):
    with h5py.File(path, "r") as a, h5py.File(other, "r") as b:
        names_a, names_b = [], []
        a[S.SUMMARY].visit(names_a.append)
        b[S.SUMMARY].visit(names_b.append)
        if sorted(names_a) != sorted(names_b):
            problem(f"{other}: /summary holds other objects than {path}'s")
            return
        for name in names_a:
            x, y = a[S.SUMMARY][name], b[S.SUMMARY][name]
            if isinstance(x, h5py.Dataset) and not (x.dtype == y.dtype and
                                                    np.array_equal(x[()], y[()], equal_nan=x.dtype.kind == "f")):
                problem(f"{other}: /summary/{name} differs from {path}'s")
        if dict(a[S.SUMMARY].attrs) != dict(b[S.SUMMARY].attrs):
            problem(f"{other}: /summary attributes differ: {dict(a[S.SUMMARY].attrs)} vs {dict(b[S.SUMMARY].attrs)}")
    ca, cb = S.summary_csv_path(path), S.summary_csv_path(other)
    if os.path.exists(ca) and os.path.exists(cb) and open(ca).read() != open(cb).read():
        problem(f"{cb} differs from {ca}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--same-as", help="another reduced copy whose /summary must be bit-identical")
    parser.add_argument("--no-csv", action="store_true", help="do not check the CSV")
    args = parser.parse_args()
    with h5py.File(args.file, "r") as f:
        if S.SUMMARY not in f:
            sys.exit(f"{args.file}: no {S.SUMMARY}")
        for attr in (S.ATTR_N_PAIRS, S.ATTR_N_LAYER, S.ATTR_N_TOKENS):
            if f[S.SUMMARY].attrs[attr] != f.attrs[attr]:
                problem(f"/summary attribute {attr} = {f[S.SUMMARY].attrs[attr]}, root has {f.attrs[attr]}")
        want = S.expected_summary_datasets(f)
        have = []
        f[S.SUMMARY].visititems(lambda name, obj: have.append(S.SUMMARY + "/" + name)
                                if isinstance(obj, h5py.Dataset) else None)
        for p in sorted(set(want) ^ set(have)):
            problem(f"{p}: {'missing' if p in want else 'not in the schema'}")
        exp, scale = expected_summary(f)
        if set(exp) != set(want):
            problem(f"checker and schema disagree on: {sorted(set(exp) ^ set(want))}")
        for p in sorted(set(want) & set(have)):
            d = f[p]
            shape, dtype = want[p]
            if d.shape != shape or d.dtype != np.dtype(dtype):
                problem(f"{p}: {d.shape} {d.dtype}, expected {shape} {dtype}")
            if S.ATTR_DIMS not in d.attrs:
                problem(f"{p}: no {S.ATTR_DIMS} attribute")
            if p in exp:
                compare(p, d[()], exp[p], scale.get(p, 1.0))
        if not args.no_csv:
            check_csv(f, args.file, {p: f[p][()] for p in have})
    if args.same_as:
        check_identical(args.file, args.same_as)
    if problems:
        print(f"{args.file}: {len(problems)} problem(s)", file=sys.stderr)
        for p in problems[:40]:
            print("  " + p, file=sys.stderr)
        sys.exit(1)
    print(f"{args.file}: /summary matches numpy ({len(want)} datasets)")


if __name__ == "__main__":
    main()
