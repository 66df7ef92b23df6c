#!/usr/bin/env python3
"""Distributed `sfc run` benchmark (not a test): strong scaling from 1 to 2 MPI ranks, and peak
memory per rank for a small and a 20x larger dataset (memory must grow with the batch, not with
the dataset). Numbers come from the results files' /timing, measured in this one invocation.

    /usr/bin/python3 bench/bench_distributed.py [--sfc build/dev/src/sfc] [--pairs 48]

Uses the Hugging Face fixture model and SAEs (tests/fixtures/gemma2-tiny, 4 layers, d_model 64)
with generated pre-tokenised pairs; every rank runs 1 torch thread.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

import h5py

SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(SOURCE, "tests", "fixtures", "gemma2-tiny")
MPIRUN = ["mpirun", "--oversubscribe", "--allow-run-as-root"]


def write_pairs(path, n, seed=1):
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            length = rng.randint(8, 12)
            clean = [2] + [rng.randrange(4, 300) for _ in range(length - 1)]
            patch = list(clean)
            patch[rng.randrange(1, length)] = rng.randrange(4, 300)
            a, b = rng.sample(range(4, 300), 2)
            f.write(json.dumps({"clean_ids": clean, "patch_ids": patch, "clean_answer_id": a,
                                "patch_answer_id": b}) + "\n")


def run(sfc, ranks, pairs_file, out, *extra):
    cmd = MPIRUN + ["-np", str(ranks), sfc, "run", "--config", os.path.join(SOURCE, "configs", "gemma2-tiny.ini"),
                    "--model.path=" + FIXTURE + "/model", "--sae.path=" + FIXTURE + "/saes",
                    "--data.pairs=" + pairs_file, "--output.path=" + out, "--run.threads=1", *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    start = time.time()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    process_s = time.time() - start
    if r.returncode != 0:
        sys.exit("bench: %s failed:\n%s" % (" ".join(cmd), r.stderr))
    with h5py.File(out, "r") as f:
        t = f["timing"]
        phases = t.attrs["phases"].split(",")
        seconds = t["seconds"][()]
        compute = seconds[:, [phases.index(p) for p in ("forward", "backward", "sae", "ig", "patch")]].sum(axis=1)
        return {"wall": float(t.attrs["wall_seconds"]), "process": process_s, "rss": t["peak_rss_bytes"][()].max(),
                "compute": compute, "pairs": int(f.attrs["n_pairs"])}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sfc", default=os.path.join(SOURCE, "build", "dev", "src", "sfc"))
    ap.add_argument("--pairs", type=int, default=48, help="pairs for the scaling runs")
    ap.add_argument("--memory-pairs", default="100,2000", help="dataset sizes of the memory runs")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="sfc-bench-") as tmp:
        pairs = os.path.join(tmp, "pairs.jsonl")
        write_pairs(pairs, args.pairs)
        scaling = "--data.batch_size=4", "--ig.steps=10"
        one = run(args.sfc, 1, pairs, os.path.join(tmp, "np1.h5"), *scaling)
        two = run(args.sfc, 2, pairs, os.path.join(tmp, "np2.h5"), *scaling)
        print("strong scaling, %d pairs, all engines (AtP, IG 10 steps, patching), 1 thread per rank:" % args.pairs)
        for name, r in (("1 rank ", one), ("2 ranks", two)):
            print("  %s: load+compute %6.2f s (%.2f pairs/s); whole mpirun %6.2f s; compute max/mean over ranks %.2f"
                  % (name, r["wall"], args.pairs / r["wall"], r["process"], r["compute"].max() / r["compute"].mean()))
        print("  speed-up 1 -> 2 ranks: %.2fx load+compute, %.2fx whole mpirun (ideal 2x)"
              % (one["wall"] / two["wall"], one["process"] / two["process"]))

        print("peak resident memory per rank, 2 ranks, AtP + patching, batch 8:")
        sizes = [int(x) for x in args.memory_pairs.split(",")]
        rss = []
        for n in sizes:
            write_pairs(pairs, n, seed=n)
            r = run(args.sfc, 2, pairs, os.path.join(tmp, "mem%d.h5" % n), "--data.batch_size=8",
                    "--run.engines=atp,patch", "--patch.positions=-1")
            rss.append(r["rss"])
            print("  %5d pairs: %6.1f MiB (%.1f s)" % (n, r["rss"] / 2**20, r["wall"]))
        print("  ratio %d/%d pairs: %.2fx memory for %.0fx the pairs"
              % (sizes[-1], sizes[0], rss[-1] / rss[0], sizes[-1] / sizes[0]))


if __name__ == "__main__":
    main()
