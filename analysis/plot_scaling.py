#!/usr/bin/env python3
"""Strong and weak scaling curves (figure f) from the /timing of several `sfc run` results files.

    /usr/bin/python3 analysis/plot_scaling.py RUN.h5 [RUN.h5 ...] --out DIR [--format png|pdf|svg]

Runs of the same setup and number of pairs at several rank counts make a strong-scaling curve
(f_strong_scaling: speed-up and efficiency vs ranks, ideal lines, time per phase); runs with the same
pairs per rank make a weak-scaling curve (f_weak_scaling). Writes the figures that have a curve and
scaling.json (the plotted numbers) into DIR and prints their paths. Exits 1 with one line naming the
file and the problem when a file has no usable /timing, or when the runs form no curve.
See scaling_figures.py for the definitions; scripts/run-study.sh makes single runs.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scaling_figures as F  # noqa: E402

NUMBERS_FILE = "scaling.json"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="`sfc run` results files (.h5)")
    p.add_argument("--out", required=True, help="folder for the figures")
    p.add_argument("--format", default="png", choices=("png", "pdf", "svg"))
    p.add_argument("--dpi", type=int, default=120)
    args = p.parse_args(argv)
    try:
        runs = [F.read_run(path) for path in args.runs]
        cs = F.curves(runs)
        if not cs[F.STRONG] and not cs[F.WEAK]:
            raise F.ScalingError(F.no_curve_message(runs))
    except F.ScalingError as e:
        sys.exit(f"plot_scaling: {e}")
    os.makedirs(args.out, exist_ok=True)
    for kind in (F.STRONG, F.WEAK):
        if not cs[kind]:
            print(f"plot_scaling: note: no {kind}-scaling curve in these runs: {F.FIGURE_OF[kind]} not drawn",
                  file=sys.stderr)
            continue
        path = os.path.join(args.out, f"{F.FIGURE_OF[kind]}.{args.format}")
        F.figure(kind, cs[kind]).savefig(path, dpi=args.dpi)
        print(path)
    path = os.path.join(args.out, NUMBERS_FILE)
    with open(path, "w") as f:
        json.dump(F.numbers(cs), f, indent=1)
    print(path)


if __name__ == "__main__":
    main()
