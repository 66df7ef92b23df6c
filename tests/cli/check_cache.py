#!/usr/bin/env python3
"""Checks an `sfc cache` file against the gemma2-tiny reference (Hugging Face outputs).

Usage: check_cache.py OUT.h5 reference.npz H5ROW:REFROW:LEN [...]
Each row of the cache file must hold the first LEN positions of the reference's clean prompt REFROW
(a causal model's prefix outputs equal the full prompt's), padded with -1 / NaN after them.
Tolerance: 1e-4 relative to the largest magnitude of the reference array (fixture README).
Exits 1 with one message per mismatch.
"""
import sys

import h5py
import numpy as np

REL_TOL = 1e-4


def main():
    out_file, ref_file, rows = sys.argv[1], sys.argv[2], sys.argv[3:]
    ref = np.load(ref_file)
    errors = []

    def close(name, actual, expected):
        scale = np.abs(expected).max()
        err = np.abs(actual.astype(np.float64) - expected).max()
        if not err <= REL_TOL * scale:  # also catches NaN
            errors.append(f"{name}: max |diff| {err:.3g} > {REL_TOL} x max |expected| {scale:.3g}")

    with h5py.File(out_file, "r") as f:
        for attr in ("sfc_version", "command_line", "model", "dtype", "device"):
            if attr not in f.attrs:
                errors.append(f"root attribute '{attr}' missing")
        tokens, lengths, logits = f["tokens"][()], f["lengths"][()], f["logits"][()]
        sites = {s: f["sites"][s][()] for s in ("resid", "mlp", "attn")}
        n_layer = sites["resid"].shape[1]
        T = tokens.shape[1]
        for spec in rows:
            i, r, n = (int(x) for x in spec.split(":"))
            if lengths[i] != n:
                errors.append(f"row {i}: length {lengths[i]} != {n}")
            if not np.array_equal(tokens[i, :n], ref["tokens_clean"][r, :n]):
                errors.append(f"row {i}: tokens {tokens[i, :n]} != reference {ref['tokens_clean'][r, :n]}")
            if not (tokens[i, n:] == -1).all():
                errors.append(f"row {i}: tokens after position {n} are not -1: {tokens[i]}")
            close(f"row {i} logits", logits[i, :n], ref["logits_clean"][r, :n])
            if not np.isnan(logits[i, n:]).all():
                errors.append(f"row {i}: logits after position {n} are not NaN")
            for l in range(n_layer):
                close(f"row {i} resid L{l}", sites["resid"][i, l, :n], ref[f"clean.L{l}.resid_post"][r, :n])
                close(f"row {i} mlp L{l}", sites["mlp"][i, l, :n], ref[f"clean.L{l}.mlp_out"][r, :n])
                z = ref[f"clean.L{l}.z"][r, :n]  # (P, H, Dh) -> (P, H*Dh), head-major
                close(f"row {i} attn L{l}", sites["attn"][i, l, :n], z.reshape(z.shape[0], -1))
                for s, x in sites.items():
                    if not np.isnan(x[i, l, n:T]).all():
                        errors.append(f"row {i}: {s} L{l} after position {n} is not NaN")
    for e in errors:
        print("check_cache:", e, file=sys.stderr)
    if errors:
        sys.exit(1)
    print(f"check_cache: {len(rows)} rows match {ref_file}")


if __name__ == "__main__":
    main()
