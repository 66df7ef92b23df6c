#!/usr/bin/env python3
"""Checks the file written by tests/mpi/test_h5_parallel.cpp (DisjointRowsWithAnEmptyRank...) with h5py.

Usage: check_h5_parallel.py OUT.h5 ROWS_OF_RANK_0 ROWS_OF_RANK_1 ...
Ranks wrote consecutive blocks of rows in rank order; the one row after them was written by nobody.
resid[i, l, d] = 100 i + 10 l + d + 0.25 (also in resid_deflate), tokens[i, t] = 10 i + t;
unwritten rows hold the fill values NaN and -1. Exits 1 with one message per mismatch.
"""
import sys

import h5py
import numpy as np

L, D, T = 2, 3, 4


def main():
    out_file, counts = sys.argv[1], [int(c) for c in sys.argv[2:]]
    written = sum(counts)
    n = written + 1
    i, l, d = np.meshgrid(np.arange(n), np.arange(L), np.arange(D), indexing="ij")
    resid = (100 * i + 10 * l + d + 0.25).astype(np.float32)
    resid[written:] = np.nan
    it, t = np.meshgrid(np.arange(n), np.arange(T), indexing="ij")
    tokens = (10 * it + t).astype(np.int32)
    tokens[written:] = -1

    errors = []
    with h5py.File(out_file, "r") as f:
        if f.attrs.get("model") != "tiny":
            errors.append(f"root attribute model = {f.attrs.get('model')!r}, expected 'tiny'")
        for name in ("sites/resid", "sites/resid_deflate"):
            ds = f[name]
            if ds.dtype != np.float32 or ds.shape != resid.shape:
                errors.append(f"{name}: {ds.dtype} {ds.shape}, expected float32 {resid.shape}")
            elif not np.array_equal(ds[()], resid, equal_nan=True):
                errors.append(f"{name}: values differ at rows {sorted(set(np.argwhere(ds[()] != resid)[:, 0]))}")
        ds = f["tokens"]
        if ds.dtype != np.int32 or ds.shape != tokens.shape:
            errors.append(f"tokens: {ds.dtype} {ds.shape}, expected int32 {tokens.shape}")
        elif not np.array_equal(ds[()], tokens):
            errors.append(f"tokens: values differ at rows {sorted(set(np.argwhere(ds[()] != tokens)[:, 0]))}")
    for e in errors:
        print(e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
