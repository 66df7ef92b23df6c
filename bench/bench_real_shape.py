#!/usr/bin/env python3
"""Real-shape benchmark of `sfc run`: a random checkpoint with the exact Gemma-2 shapes and Hugging
Face names (bench/make_gemma2_checkpoint.py), Gemma-Scope-shaped JumpReLU SAEs at chosen layers,
and a few pre-tokenised prompt pairs; then `sfc run` with the chosen engines, printing the load
speed of model and SAEs, the seconds per phase (/timing) and the peak resident memory.

The weights are random: the numbers mean nothing, the shapes, bytes and FLOPs are those of the
real model. Everything is written under --work (2B in bf16: ~5.2 GB of model, ~150 MB per 16k SAE,
~1.2 GB per 131k SAE); --keep leaves it there for another run.

  bench/bench_real_shape.py --work /tmp/real2b --preset 2b --dtype bf16 --layers 0,12,25 \
      --engines atp --pairs 16 --tokens 7
  bench/bench_real_shape.py --work /tmp/real2b --preset 2b --width 131k --layers 12 --sites resid  # 131k wide
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
SITE_FOLDERS = {"resid": "res", "mlp": "mlp", "attn": "att"}
WIDTHS = {"16k": 16384, "131k": 131072}


def run(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def write_sae(path, d_in, width, rng):
    """A Gemma Scope params.npz (stored, float32): W_enc [d_in, F], W_dec [F, d_in], b_enc, b_dec, threshold."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    w_dec = rng.standard_normal((width, d_in), dtype=np.float32)
    w_dec /= np.linalg.norm(w_dec, axis=1, keepdims=True)
    np.savez(path, W_enc=np.ascontiguousarray(w_dec.T * 0.5), W_dec=w_dec,
             b_enc=np.zeros(width, np.float32), b_dec=np.zeros(d_in, np.float32),
             threshold=np.full(width, 0.5, np.float32))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True, help="folder for the checkpoint, SAEs, pairs and results")
    ap.add_argument("--preset", default="2b", choices=["tiny", "2b", "9b"])
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"], help="model.dtype of the run")
    ap.add_argument("--checkpoint-dtype", default="bf16", choices=["bf16", "f32"])
    ap.add_argument("--layers", default="0,12,25", help="layers with SAEs (at every site in --sites)")
    ap.add_argument("--sites", default="resid,mlp,attn")
    ap.add_argument("--width", default="16k", choices=sorted(WIDTHS))
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=7)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--engines", default="atp")
    ap.add_argument("--ig-steps", type=int, default=10)
    ap.add_argument("--ranks", type=int, default=1, help="mpirun -np (1: no mpirun)")
    ap.add_argument("--sfc", default=os.path.join(SOURCE, "build", "dev", "src", "sfc"))
    ap.add_argument("--keep", action="store_true", help="keep the written inputs")
    a = ap.parse_args()

    model_dir, sae_dir = os.path.join(a.work, "model"), os.path.join(a.work, "saes")
    os.makedirs(a.work, exist_ok=True)
    if not os.path.exists(os.path.join(model_dir, "config.json")):
        run([sys.executable, os.path.join(HERE, "make_gemma2_checkpoint.py"), "--out", model_dir,
             "--preset", a.preset, "--dtype", a.checkpoint_dtype])
    config = json.load(open(os.path.join(model_dir, "config.json")))
    d_model, attn_width = config["hidden_size"], config["num_attention_heads"] * config["head_dim"]
    layers = [int(x) for x in a.layers.split(",")]
    sites = a.sites.split(",")

    rng = np.random.default_rng(0)
    release = "gemma-scope-bench-pt"
    wanted = [(s, l, a.width) for s in sites for l in layers]
    for site, layer, width in wanted:
        path = os.path.join(sae_dir, f"{release}-{SITE_FOLDERS[site]}", f"layer_{layer}", f"width_{width}",
                            "average_l0_100", "params.npz")
        if not os.path.exists(path):
            write_sae(path, attn_width if site == "attn" else d_model, WIDTHS[width], rng)
    sae_layers = sorted({l for _, l, _ in wanted})

    pairs = os.path.join(a.work, "pairs.jsonl")
    with open(pairs, "w") as f:
        for i in range(a.pairs):
            clean = [2] + [int(x) for x in rng.integers(10, 1000, a.tokens - 1)]
            patch = list(clean)
            patch[1 + i % (a.tokens - 1)] += 1
            f.write(json.dumps({"clean_ids": clean, "patch_ids": patch, "clean_answer_id": 100,
                                "patch_answer_id": 101}) + "\n")

    out = os.path.join(a.work, "results.h5")
    for stale in (out, out + ".partial"):
        if os.path.exists(stale):
            os.remove(stale)
    shutil.rmtree(out + ".shards", ignore_errors=True)
    ini = os.path.join(a.work, "bench.ini")
    with open(ini, "w") as f:
        f.write(f"[model]\npath = {model_dir}\ndtype = {a.dtype}\ndevice = cpu\n"
                f"[sae]\npath = {sae_dir}\nrelease = {release}\nwidth = {a.width}\nl0 = 100\n"
                f"sites = {a.sites}\nlayers = {','.join(map(str, sae_layers))}\n"
                f"[data]\npairs = {pairs}\nbatch_size = {a.batch_size}\n"
                f"[run]\nengines = {a.engines}\nthreads = {os.cpu_count() if a.ranks == 1 else 1}\n"
                f"[ig]\nsteps = {a.ig_steps}\n[output]\npath = {out}\nlatents = sum\ntopk = 32\n")

    cmd = [a.sfc, "run", "--config", ini]
    if a.ranks > 1:
        cmd = ["mpirun", "--oversubscribe", "--allow-run-as-root", "-np", str(a.ranks)] + cmd
    start = time.time()
    proc = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True)
    wall = time.time() - start
    sys.stderr.write(proc.stderr[-4000:])
    if proc.returncode != 0:
        sys.exit(f"bench_real_shape: sfc run failed with {proc.returncode}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)

    model_bytes = sum(os.path.getsize(os.path.join(model_dir, n)) for n in os.listdir(model_dir)
                      if n.endswith(".safetensors"))
    sae_bytes = sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(sae_dir) for n in ns
                    if n == "params.npz" and f"width_{a.width}" in d and
                    int(re.search(r"layer_(\d+)", d).group(1)) in sae_layers and
                    any(f"-{SITE_FOLDERS[s]}" in d for s in sites))
    with h5py.File(out, "r") as f:
        timing = f["timing"]
        phases = timing.attrs["phases"].split(",")
        seconds = timing["seconds"][()].max(axis=0)  # the slowest rank per phase
    print(f"\npreset {a.preset}, model.dtype {a.dtype}, {a.pairs} pairs x {a.tokens} tokens, engines {a.engines}, "
          f"{len(wanted)} SAE(s) of width {a.width}, {a.ranks} rank(s)")
    print(f"model files {model_bytes / 1e9:.2f} GB, SAE files {sae_bytes / 1e9:.2f} GB")
    for name, s in zip(phases, seconds):
        print(f"  {name:10s} {s:8.2f} s")
    load_s = seconds[phases.index("load")]
    print(f"load: {(model_bytes + sae_bytes) / 1e6 / max(load_s, 1e-9):.0f} MB/s (model + SAEs over the load phase)")
    print(f"wall {wall:.1f} s, peak RSS {int(rss.group(1)) / 1e6:.2f} GB (largest rank)" if rss else f"wall {wall:.1f} s")
    print(f"results file {os.path.getsize(out) / 1e6:.1f} MB")
    if not a.keep:
        shutil.rmtree(a.work)


if __name__ == "__main__":
    main()
