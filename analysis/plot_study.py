#!/usr/bin/env python3
"""The study's figures (a)-(e) of one `sfc run` results file, headless, and the numbers behind them.

    /usr/bin/python3 analysis/plot_study.py RESULTS.h5 [--out DIR] [--format png|pdf|svg] [--dpi 120]

Writes into DIR (default: <results stem>-figures next to the file), one file each, and prints their paths:
  a_error_grad_vs_delta      per site and layer: ‖g‖ vs ‖Δe‖, colour = AtP (answer position; all positions)
  b_error_cos_vs_delta       the same with y = cos(g, Δe)
  c_resid_post_metrics       (a) and (b) for the raw residual stream (no SAE)
  d_estimators_vs_patching   AtP and IG vs exact patching per site: every node, Pearson r, fit line
  e_layer_lines              per layer: AtP, IG, patching at the answer position; sums over positions
                             vs patching all positions at once
  e_layer_lines_by_position  the per-layer lines at each position
  study_figures.json         the plotted numbers (NaN as null)
Engines a file lacks leave their panels out with a note on stderr. The scaling curves: plot_scaling.py.
"""
import argparse
import json
import os
import sys

import h5py

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import study_figures as F  # noqa: E402

NUMBERS_FILE = "study_figures.json"


def default_out(path):
    stem, _ = os.path.splitext(path)
    return stem + "-figures"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("results", help="an `sfc run` results file (.h5)")
    p.add_argument("--out", help="folder for the figures (default: <results stem>-figures)")
    p.add_argument("--format", default="png", choices=("png", "pdf", "svg"))
    p.add_argument("--dpi", type=int, default=120)
    p.add_argument("--block-pairs", type=int, default=F.BLOCK_PAIRS, help="pairs read at once (memory)")
    args = p.parse_args(argv)
    out = args.out or default_out(args.results)
    try:
        with h5py.File(args.results, "r") as f:
            F.check_file(f)
            scan = F.scan_file(f, block=max(1, args.block_pairs))
    except OSError as e:
        sys.exit(f"plot_study: {args.results}: cannot read as HDF5 ({e})")
    except F.ResultsError as e:
        sys.exit(f"plot_study: {e}")
    os.makedirs(out, exist_ok=True)
    skip, notes = F.figure_notes(scan)
    for text in notes:
        print(f"plot_study: note: {text}", file=sys.stderr)
    for name in F.FIGURES:
        if name in skip:
            print(f"plot_study: note: {name} not drawn: {skip[name]}", file=sys.stderr)
            continue
        path = os.path.join(out, f"{name}.{args.format}")
        F.DRAW[name](scan).savefig(path, dpi=args.dpi)
        print(path)
    numbers = F.study_numbers(scan)
    numbers["source"] = os.path.abspath(args.results)
    numbers["skipped"] = skip
    path = os.path.join(out, NUMBERS_FILE)
    with open(path, "w") as f:
        json.dump(numbers, f, indent=1)
    print(path)


if __name__ == "__main__":
    main()
