#!/usr/bin/env python3
"""One screen of what a `sfc run` results file says: per site and layer, at the answer position,
the mean error-node AtP, IG and exact patching effect over pairs, and Pearson r of AtP and of IG
against exact patching across pairs x layers. A quick look, not the reduction pass (issue 4).

    /usr/bin/python3 analysis/summarise.py results/gemma2-tiny.h5
"""
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sfc_schema as S  # noqa: E402


def pearson(a, b):
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def main(path):
    with h5py.File(path, "r") as f:
        answer_pos = f[S.pairs_path("answer_pos")][()]  # (N)
        n = len(answer_pos)
        rows = np.arange(n)
        print(f"{path}: {n} pairs, {f.attrs[S.ATTR_N_LAYER]} layers, model {f.attrs[S.ATTR_MODEL]}")
        ld_clean, ld_patch = f[S.pairs_path("ld_clean")][()], f[S.pairs_path("ld_patch")][()]
        print(f"LD clean mean {np.nanmean(ld_clean):+.3f}, LD patch mean {np.nanmean(ld_patch):+.3f}")
        print(f"{'site':6} {'layer':>5} {'AtP':>10} {'IG':>10} {'patch':>10}   (error nodes, answer position, mean over pairs)")
        for site in S.SITES:
            # (N, L) at each pair's answer position
            at_answer = {name: f[S.error_path(site, name)][()][rows, :, answer_pos] for name in ("atp", "ig", "patch_effect")}
            for layer in range(at_answer["atp"].shape[1]):
                print(f"{site:6} {layer:5d} " + " ".join(f"{np.nanmean(at_answer[k][:, layer]):+10.4f}"
                                                         for k in ("atp", "ig", "patch_effect")))
            print(f"{site:6} Pearson r vs exact patching (pairs x layers): AtP {pearson(at_answer['atp'].ravel(), at_answer['patch_effect'].ravel()):+.3f}, "
                  f"IG {pearson(at_answer['ig'].ravel(), at_answer['patch_effect'].ravel()):+.3f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: summarise.py RESULTS.h5")
    main(sys.argv[1])
