#!/usr/bin/env python3
"""Checks an `sfc run` results file: the schema (analysis/sfc_schema.py) and, optionally, the numbers
against the gemma2-tiny reference (Hugging Face).

Usage: check_results.py OUT.h5 [--reference reference.npz ROW:REFROW ...] [--same-sums OTHER.h5]
                               [--full-sums] [--short ROW:LEN ...] [--version V]
  schema          every dataset of the schema exists with its shape, dtype and dims attribute, no
                  other dataset exists, and the root attributes are there.
  ROW:REFROW      row ROW of the file is the reference's pair REFROW: error AtP, IG, Task A metrics,
                  per-position and global patching, raw resid metrics, LDs and the latent top-k match
                  (the reference's metric has the opposite sign: scores are negated, normalised ones
                  not). Tolerance 1e-4 relative to the largest magnitude of the reference array.
  --same-sums F   the latent sums equal F's to 1e-5 of their largest magnitude and the counts exactly
                  (another batching of the same pairs: a BLAS may round a row's matmul differently
                  with a different number of rows, as OpenBLAS does, so not bit for bit).
  --full-sums     (output.latents = full) the sums equal the NaN-ignoring sum of the full latent scores.
  ROW:LEN         (--short) row ROW is a prompt of LEN tokens: ids -1 and scores NaN after it.
  --version V     the root attribute sfc_version is V (CMakeLists.txt's project version).
Exits 1 with one message per problem.
"""
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "analysis"))
import sfc_schema as S  # noqa: E402

REL_TOL = 1e-4
errors = []


def close(name, actual, expected, tol=REL_TOL, scale=None):
    """|actual - expected| <= tol x scale; scale = the largest magnitude of the whole reference array
    (default: of `expected`)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        errors.append(f"{name}: shape {actual.shape} != expected {expected.shape}")
        return
    if scale is None:
        scale = np.abs(expected).max()
    scale = max(scale, 1e-30)
    err = np.abs(actual - expected).max()
    if not err <= tol * scale:  # also catches NaN
        errors.append(f"{name}: max |diff| {err:.3g} > {tol} x max |expected| {scale:.3g}")


def check_schema(f):
    for attr in S.ROOT_ATTRS:
        if attr not in f.attrs:
            errors.append(f"root attribute '{attr}' missing")
    if errors:
        return
    if str(f.attrs[S.ATTR_SCHEMA_VERSION]) != S.SCHEMA_VERSION:
        errors.append(f"schema_version {f.attrs[S.ATTR_SCHEMA_VERSION]} != {S.SCHEMA_VERSION}")
    for attr in (S.ATTR_N_SKIPPED, S.ATTR_SKIP_REASONS, S.ATTR_SOURCE):
        if attr not in f[S.PAIRS].attrs:
            errors.append(f"/pairs attribute '{attr}' missing")
    expected = S.expected_datasets(f)
    if S.TIMING not in f:
        errors.append(f"{S.TIMING} missing")
    if S.SUMMARY in f:  # the reduction pass's datasets (checked in detail by check_reduce.py)
        expected.update(S.expected_summary_datasets(f))
    for path, (shape, dtype) in expected.items():
        if path not in f:
            errors.append(f"{path} missing")
            continue
        ds = f[path]
        if ds.shape != shape:
            errors.append(f"{path}: shape {ds.shape} != {shape}")
        if ds.dtype != np.dtype(dtype):
            errors.append(f"{path}: dtype {ds.dtype} != {dtype}")
        if S.ATTR_DIMS not in ds.attrs:
            errors.append(f"{path}: no '{S.ATTR_DIMS}' attribute")
    present = []
    f.visititems(lambda name, obj: present.append("/" + name) if isinstance(obj, h5py.Dataset) else None)
    for path in present:
        if path not in expected:
            errors.append(f"{path}: not in the schema")


def check_reference(f, ref, rows):
    n_layer = int(f.attrs[S.ATTR_N_LAYER])
    topk_mode = S.config_value(f, "output.latents") == "sum"
    full_mode = S.config_value(f, "output.latents") == "full"

    def scale_of(key):
        return np.abs(ref[key]).max()
    for spec in rows:
        i, r = (int(x) for x in spec.split(":"))
        n = int(f[S.pairs_path("length")][i])
        tag = f"row {i}"
        if not np.array_equal(f[S.pairs_path("clean_ids")][i, :n], ref["tokens_clean"][r]):
            errors.append(f"{tag}: clean_ids differ from the reference")
        if not np.array_equal(f[S.pairs_path("patch_ids")][i, :n], ref["tokens_patch"][r]):
            errors.append(f"{tag}: patch_ids differ from the reference")
        if f[S.pairs_path("answer_pos")][i] != n - 1:
            errors.append(f"{tag}: answer_pos {f[S.pairs_path('answer_pos')][i]} != {n - 1}")
        if f[S.pairs_path("clean_answer")][i] != ref["correct_id"][r]:
            errors.append(f"{tag}: clean_answer differs")
        if f[S.pairs_path("patch_answer")][i] != ref["wrong_id"][r]:
            errors.append(f"{tag}: patch_answer differs")
        close(f"{tag} ld_clean", f[S.pairs_path("ld_clean")][i], -ref["ld_clean"][r])
        close(f"{tag} ld_patch", f[S.pairs_path("ld_patch")][i], -ref["ld_patch"][r])
        ld_gap = f[S.pairs_path("ld_patch")][i] - f[S.pairs_path("ld_clean")][i]
        for s_index, site in enumerate(S.SITES):
            g = lambda name: f[S.error_path(site, name)][i]  # noqa: E731
            for l in range(n_layer):
                grad = ref[f"st.{site}.L{l}.grad_x"][r].reshape(n, -1)
                de = (ref[f"sae.{site}.L{l}.e_patch"][r] - ref[f"sae.{site}.L{l}.e_clean"][r]).reshape(n, -1)
                t = f"{tag} {site} L{l}"
                for name, key in (("atp", f"atp_st.{site}.L{l}.error"), ("ig", f"ig_st.{site}.L{l}.error")):
                    close(f"{t} {name}", g(name)[l, :n], -ref[key][r], scale=scale_of(key))
                close(f"{t} delta_norm", g("delta_norm")[l, :n], np.linalg.norm(de, axis=-1))
                close(f"{t} grad_norm", g("grad_norm")[l, :n], np.linalg.norm(grad, axis=-1))
                dot = (grad * de).sum(-1)
                denom = np.linalg.norm(grad, axis=-1) * np.linalg.norm(de, axis=-1)
                nonzero = denom > 1e-6 * denom.max()
                # The project's gradient is minus the reference's.
                close(f"{t} cos", g("cos")[l, :n][nonzero], -(dot / np.where(nonzero, denom, 1))[nonzero])
                close(f"{t} patch_effect", g("patch_effect")[l, :n],
                      -ref["patch_error.per_position"][r, s_index, l], scale=scale_of("patch_error.per_position"))
                close(f"{t} patch_effect_global", g("patch_effect_global")[l],
                      -ref["patch_error.global"][r, s_index, l], scale=scale_of("patch_error.global"))
                gap = ld_gap if ld_gap != 0 else 1.0
                close(f"{t} patch_effect_norm", g("patch_effect_norm")[l, :n] * gap, g("patch_effect")[l, :n])
                if topk_mode and int(f.attrs[S.attr_n_latents(site)]) > 0:
                    index = f[S.latents_path(site, "atp_topk_index")][i, l, :n]  # (n, k)
                    value = f[S.latents_path(site, "atp_topk_value")][i, l, :n]
                    latent = -ref[f"atp_st.{site}.L{l}.latent"][r]  # (n, F)
                    kk = min(index.shape[-1], latent.shape[-1])
                    lscale = scale_of(f"atp_st.{site}.L{l}.latent")
                    close(f"{t} atp_topk_value", value[:, :kk], np.take_along_axis(latent, index[:, :kk], -1),
                          scale=lscale)
                    close(f"{t} atp_topk |value| = top-k of |latent AtP|", np.abs(value[:, :kk]),
                          -np.sort(-np.abs(latent), axis=-1)[:, :kk], scale=lscale)
                if full_mode and int(f.attrs[S.attr_n_latents(site)]) > 0:
                    for name, key in (("atp", f"atp_st.{site}.L{l}.latent"), ("ig", f"ig_st.{site}.L{l}.latent")):
                        width = ref[key].shape[-1]
                        close(f"{t} latent {name}", f[S.latents_path(site, name)][i, l, :n, :width], -ref[key][r],
                              scale=scale_of(key))
        for l in range(n_layer):
            grad = ref[f"st.resid.L{l}.grad_x"][r]
            dx = ref[f"patch.L{l}.resid_post"][r] - ref[f"clean.L{l}.resid_post"][r]
            t = f"{tag} resid_post L{l}"
            close(f"{t} atp", f[S.resid_post_path("atp")][i, l, :n], -(grad * dx).sum(-1))
            close(f"{t} delta_norm", f[S.resid_post_path("delta_norm")][i, l, :n], np.linalg.norm(dx, axis=-1))
            close(f"{t} grad_norm", f[S.resid_post_path("grad_norm")][i, l, :n], np.linalg.norm(grad, axis=-1))


def check_short(f, rows):
    for spec in rows:
        i, n = (int(x) for x in spec.split(":"))
        if f[S.pairs_path("length")][i] != n:
            errors.append(f"row {i}: length {f[S.pairs_path('length')][i]} != {n}")
        for name in ("clean_ids", "patch_ids"):
            if not (f[S.pairs_path(name)][i, n:] == -1).all():
                errors.append(f"row {i}: {name} after position {n} not -1")
        for site in S.SITES:
            for name, (dims, _) in S.ERROR_DATASETS.items():
                x = f[S.error_path(site, name)][i]
                if dims == "N,L,T" and not np.isnan(x[:, n:]).all():
                    errors.append(f"row {i}: {S.error_path(site, name)} after position {n} not NaN")
            x = f[S.error_path(site, "atp")][i, :, :n]
            if np.isnan(x).any():
                errors.append(f"row {i}: {S.error_path(site, 'atp')} has NaN inside the prompt")


def latent_sums(f):
    out = {S.latent_count_path(): f[S.latent_count_path()][()]}
    for site in S.SITES:
        if int(f.attrs[S.attr_n_latents(site)]) > 0:
            for name in S.LATENT_SUMS:
                out[S.latents_path(site, name)] = f[S.latents_path(site, name)][()]
    return out


def main():
    args = sys.argv[1:]
    out_file = args.pop(0)
    ref_file, rows, short, other, full_sums, version = None, [], [], None, False, None
    mode = None
    while args:
        a = args.pop(0)
        if a == "--reference":
            ref_file, mode = args.pop(0), "rows"
        elif a == "--short":
            mode = "short"
        elif a == "--same-sums":
            other = args.pop(0)
        elif a == "--full-sums":
            full_sums = True
        elif a == "--version":
            version = args.pop(0)
        elif mode == "rows":
            rows.append(a)
        elif mode == "short":
            short.append(a)
        else:
            sys.exit(f"check_results: unexpected argument {a}")
    with h5py.File(out_file, "r") as f:
        check_schema(f)
        if not errors and version is not None and str(f.attrs[S.ATTR_VERSION]) != version:
            errors.append(f"sfc_version {f.attrs[S.ATTR_VERSION]!r} != {version!r}")
        if not errors and ref_file:
            check_reference(f, np.load(ref_file), rows)
        if not errors:
            check_short(f, short)
        if not errors and other:
            with h5py.File(other, "r") as g:
                mine, theirs = latent_sums(f), latent_sums(g)
                for path, x in mine.items():
                    y = theirs.get(path)
                    if y is None or x.shape != y.shape or not np.array_equal(np.isnan(x), np.isnan(y)):
                        errors.append(f"{path} differs from {other}'s in shape or NaNs (batching changed the sums)")
                        continue
                    scale = float(np.nanmax(np.abs(y))) if np.isfinite(y).any() else 0.0
                    exact = np.issubdtype(x.dtype, np.integer)
                    worst = float(np.nanmax(np.abs(x.astype(np.float64) - y), initial=0.0))
                    if (exact and worst != 0) or worst > 1e-5 * scale:
                        errors.append(f"{path} differs from {other}'s by {worst:.3g} (largest |value| {scale:.3g}): "
                                      "batching changed the sums")
        if not errors and full_sums:
            for site in S.SITES:
                if int(f.attrs[S.attr_n_latents(site)]) == 0:
                    continue
                for full, total in (("atp", "atp_sum"), ("ig", "ig_sum")):
                    x = f[S.latents_path(site, full)][()].astype(np.float64)  # (N, L, T, F)
                    expected = np.where(np.isnan(x).all(0), np.nan, np.nansum(x, 0))
                    got = f[S.latents_path(site, total)][()]
                    if not np.allclose(got, expected, rtol=1e-6, atol=1e-9, equal_nan=True):
                        errors.append(f"{S.latents_path(site, total)} != NaN-ignoring sum of {full}")
    for e in errors:
        print("check_results:", e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
