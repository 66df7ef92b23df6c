#!/usr/bin/env python3
"""Writes a random Gemma Scope-style JumpReLU SAE as params.npz (np.savez: stored members, W_enc and
W_dec in Fortran order as in the released files), for load benchmarks. NumPy only.

    python3 bench/make_gemma_scope_sae.py --out /tmp/sae16k --d-in 2304 --width 16384
"""
import argparse
import os

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder to write params.npz into (created)")
    ap.add_argument("--d-in", type=int, default=2304, help="site width (Gemma-2-2B: 2304; attn: 2048)")
    ap.add_argument("--width", type=int, default=16384, help="latents F")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    d, f = args.d_in, args.width
    w_dec = rng.standard_normal((f, d), dtype=np.float32) / np.sqrt(d)
    params = {
        "W_enc": np.asfortranarray(w_dec.T * 0.5),  # (d_in, F)
        "W_dec": np.asfortranarray(w_dec),          # (F, d_in)
        "b_enc": rng.standard_normal(f, dtype=np.float32) * 0.01,
        "b_dec": rng.standard_normal(d, dtype=np.float32) * 0.01,
        "threshold": np.abs(rng.standard_normal(f, dtype=np.float32)) * 0.1,
    }
    os.makedirs(args.out, exist_ok=True)
    np.savez(os.path.join(args.out, "params.npz"), **params)
    size = os.path.getsize(os.path.join(args.out, "params.npz"))
    print(f"{args.out}/params.npz: d_in {d}, width {f}, {size / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
