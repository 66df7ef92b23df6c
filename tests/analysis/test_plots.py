#!/usr/bin/env python3
"""Tests of analysis/: the study figures (plot_study.py) and the scaling curves (plot_scaling.py) on
results files made here with the real `sfc run` (the Hugging Face fixture model and SAEs, a generated
pre-tokenised dataset of prompts of 6..11 tokens, so padding NaNs are exercised).

Each figure must exist, decode, have a sensible size and real content; the plotted numbers must equal an
independent numpy recomputation from the datasets (and the C++ reduction pass's /summary where it holds
the same statistic); missing engines leave panels out without failing; bad inputs fail with one line.

Run by ctest (tests/analysis/CMakeLists.txt) with SFC_BINARY set, or by hand:
    SFC_BINARY=build/dev/src/sfc /usr/bin/python3 tests/analysis/test_plots.py [-v]
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from random_pairs import write_random_pairs  # noqa: E402

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANALYSIS = os.path.join(SOURCE, "analysis")
sys.path.insert(0, ANALYSIS)
import sfc_schema as S  # noqa: E402

FIXTURE = os.environ.get("SFC_FIXTURES_DIR", os.path.join(SOURCE, "tests", "fixtures")) + "/gemma2-tiny"
SFC = os.environ.get("SFC_BINARY", os.path.join(SOURCE, "build", "dev", "src", "sfc"))
MPIRUN = ["mpirun", "--oversubscribe", "--allow-run-as-root"]
N_PAIRS = 8
STUDY_FIGURES = ("a_error_grad_vs_delta", "b_error_cos_vs_delta", "c_resid_post_metrics",
                 "d_estimators_vs_patching", "e_layer_lines", "e_layer_lines_by_position")
RTOL = 1e-9


def env():
    e = dict(os.environ)
    e["OMP_NUM_THREADS"] = "1"
    e["MPLBACKEND"] = "Agg"
    return e


def run(cmd):
    return subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=300)


def sfc_run(folder, pairs, out, *extra, ranks=0):
    cmd = [SFC, "run", "--config", os.path.join(SOURCE, "configs", "gemma2-tiny.ini"),
           "--model.path=" + FIXTURE + "/model", "--sae.path=" + FIXTURE + "/saes",
           "--data.pairs=" + os.path.join(folder, pairs), "--data.batch_size=4", "--ig.steps=4",
           "--output.path=" + os.path.join(folder, out), *extra]
    r = run((MPIRUN + ["-np", str(ranks)] if ranks else []) + cmd)
    if r.returncode != 0:
        raise RuntimeError(f"sfc run failed ({r.returncode}): {r.stderr[-2000:]}")
    return os.path.join(folder, out)


def script(name, *args):
    return run([sys.executable, os.path.join(ANALYSIS, name), *args])


# ---- independent reference numbers (plain numpy on whole datasets) ----

def nanmean(x, axis):
    x = np.asarray(x, np.float64)
    ok = np.isfinite(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok.sum(axis) > 0, np.where(ok, x, 0.0).sum(axis) / ok.sum(axis), np.nan)


def answer_slice(x, answer_pos):  # (N, L, T) -> (N, L)
    return np.stack([x[i, :, answer_pos[i]] for i in range(x.shape[0])])


def pearson(x, y):
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok].astype(np.float64), y[ok].astype(np.float64)  # float32 sums would differ at 1e-7
    return float(np.corrcoef(x, y)[0, 1]), int(ok.sum()), np.polyfit(x, y, 1)


def close(a, b, rtol=RTOL, atol=1e-12):
    """a: JSON list (None = NaN), b: numpy."""
    a = np.array([np.nan if v is None else v for v in np.ravel(a)], np.float64)
    b = np.ravel(np.asarray(b, np.float64))
    return a.shape == b.shape and np.array_equal(np.isnan(a), np.isnan(b)) and np.allclose(
        a[~np.isnan(a)], b[~np.isnan(b)], rtol=rtol, atol=atol)


def image_stats(path):
    import matplotlib.image as mpimg
    img = mpimg.imread(path)  # (H, W, 3|4) floats in [0, 1]
    rgb = np.round(img[..., :3] * 255).astype(np.int32)
    non_white = float((rgb.min(axis=2) < 245).mean())
    colours = len(np.unique(rgb.reshape(-1, 3) @ np.array([65536, 256, 1])))
    return img.shape, non_white, colours


class Plots(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="sfc-analysis-")
        d = cls.dir = cls.tmp.name
        write_random_pairs(os.path.join(d, "pairs.jsonl"), N_PAIRS, "analysis")
        write_random_pairs(os.path.join(d, "pairs2x.jsonl"), 2 * N_PAIRS, "analysis", seed=1)
        cls.single = sfc_run(d, "pairs.jsonl", "single.h5")
        cls.no_ig = sfc_run(d, "pairs.jsonl", "no_ig.h5", "--run.engines=atp,patch")
        cls.np2 = sfc_run(d, "pairs.jsonl", "np2.h5", ranks=2)  # strong: same pairs, 2 ranks
        cls.np2_weak = sfc_run(d, "pairs2x.jsonl", "np2_weak.h5", ranks=2)  # weak: same pairs per rank
        cls.figures = os.path.join(d, "figures")
        # --block-pairs 3: the statistics are merged over blocks of pairs; the numbers must not change.
        cls.study = script("plot_study.py", cls.single, "--out", cls.figures, "--block-pairs", "3")
        with open(os.path.join(cls.figures, "study_figures.json")) as f:
            cls.numbers = json.load(f)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def assert_real_figure(self, path):
        self.assertTrue(os.path.isfile(path), path)
        shape, non_white, colours = image_stats(path)
        self.assertGreaterEqual(shape[0], 400, path)
        self.assertGreaterEqual(shape[1], 600, path)
        self.assertGreater(non_white, 0.03, f"{path}: {non_white:.3f} of the pixels are not white")
        self.assertGreater(colours, 100, f"{path}: {colours} distinct colours")

    def assert_one_line_error(self, r, *words):
        self.assertNotEqual(r.returncode, 0, r.stdout)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertNotIn("Traceback", r.stderr)
        for w in words:
            self.assertIn(w, lines[0])

    # ---- plot_study.py ----

    def test_every_study_figure_exists_decodes_and_has_content(self):
        self.assertEqual(self.study.returncode, 0, self.study.stderr)
        expected = [os.path.join(self.figures, n + ".png") for n in STUDY_FIGURES]
        self.assertEqual(self.study.stdout.split(), expected + [os.path.join(self.figures, "study_figures.json")])
        for path in expected:
            self.assert_real_figure(path)
        self.assertEqual(self.study.stderr, "")  # all engines ran: no notes

    def test_layer_points_of_a_b_c_equal_numpy(self):
        with h5py.File(self.single, "r") as f:
            answer_pos = f["pairs/answer_pos"][()]
            for site, got in [(s, self.numbers["a_error_grad_vs_delta"][s]) for s in S.SITES] + [
                    ("resid_post", self.numbers["c_resid_post_metrics"])]:
                for metric in ("delta_norm", "grad_norm", "cos", "atp"):
                    x = f[f"resid_post/{metric}" if site == "resid_post" else f"error/{site}/{metric}"][()]
                    want_answer = nanmean(answer_slice(x, answer_pos), 0)  # (L)
                    want_positions = nanmean(np.moveaxis(x, 1, 0).reshape(x.shape[1], -1), 1)  # (L)
                    self.assertTrue(np.isfinite(want_answer).all(), (site, metric))
                    self.assertTrue(close(got["answer"][metric], want_answer), (site, metric, got["answer"][metric]))
                    self.assertTrue(close(got["positions"][metric], want_positions), (site, metric))
                    # and the C++ reduction pass's answer means
                    summary = f[S.summary_metric_path(site, metric, "answer_mean")][()]
                    self.assertTrue(close(got["answer"][metric], summary, rtol=1e-6), (site, metric))

    def test_the_drawn_points_of_a_are_those_numbers(self):
        import study_figures as F
        with h5py.File(self.single, "r") as f:
            scan = F.scan_file(f, block=2)
        fig = F.figure_a(scan)
        for k, site in enumerate(S.SITES):
            for row, key in enumerate(("answer", "positions")):
                ax = fig.axes[row * len(S.SITES) + k]
                self.assertIn(site, ax.get_title())
                offsets = np.asarray(ax.collections[0].get_offsets())  # (L, 2) scatter
                want = self.numbers["a_error_grad_vs_delta"][site][key]
                self.assertTrue(close(offsets[:, 0], want["delta_norm"], rtol=1e-12), (site, key))
                self.assertTrue(close(offsets[:, 1], want["grad_norm"], rtol=1e-12), (site, key))
                self.assertTrue(close(ax.collections[0].get_array(), want["atp"], rtol=1e-12), (site, key))

    def test_pearson_r_and_fit_of_d_equal_numpy_and_summary(self):
        with h5py.File(self.single, "r") as f:
            answer_pos = f["pairs/answer_pos"][()]
            for site in S.SITES:
                patch = f[f"error/{site}/patch_effect"][()]
                for e in ("atp", "ig"):
                    x = f[f"error/{site}/{e}"][()]
                    got = self.numbers["d_estimators_vs_patching"][site][e]
                    r, n, (slope, intercept) = pearson(x, patch)
                    self.assertEqual(got["n"], n)
                    self.assertGreater(n, N_PAIRS * 4 * 5)  # every layer, most positions
                    self.assertAlmostEqual(got["pearson"], r, delta=1e-9)
                    self.assertAlmostEqual(got["slope"], slope, delta=1e-8 * max(1, abs(slope)))
                    self.assertAlmostEqual(got["intercept"], intercept, delta=1e-8 * max(1, abs(slope)))
                    r_answer, n_answer, _ = pearson(answer_slice(x, answer_pos), answer_slice(patch, answer_pos))
                    self.assertEqual(got["n_answer"], n_answer)
                    self.assertAlmostEqual(got["pearson_answer"], r_answer, delta=1e-9)
                    self.assertAlmostEqual(got["pearson_answer"],
                                           float(f[S.summary_corr_path(site, "answer", f"pearson_{e}_patch")][0]),
                                           delta=1e-6)

    def test_layer_lines_of_e_equal_numpy_and_summary(self):
        with h5py.File(self.single, "r") as f:
            answer_pos = f["pairs/answer_pos"][()]
            for site in S.SITES:
                got = self.numbers["e_layer_lines"][site]
                for e in ("atp", "ig", "patch_effect"):
                    x = f[f"error/{site}/{e}"][()].astype(np.float64)  # the reference in fp64, as the module computes
                    a = answer_slice(x, answer_pos)
                    self.assertTrue(close(got["answer"][e], nanmean(a, 0)), (site, e))
                    sem = np.nanstd(a, 0, ddof=1) / np.sqrt(np.isfinite(a).sum(0))
                    self.assertTrue(close(got["answer_sem"][e], sem, rtol=1e-7), (site, e))
                    self.assertTrue(close(got["position"][e], nanmean(x, 0)), (site, e))
                    self.assertTrue(close(got["position"][e], f[S.summary_metric_path(site, e, "mean")][()], rtol=1e-6))
                    if e != "patch_effect":  # per pair, summed over the prompt's positions
                        self.assertTrue(close(got["all_positions"][e], np.nansum(x.astype(np.float64), 2).mean(0)),
                                        (site, e))
                self.assertTrue(close(got["all_positions"]["patch_effect_global"],
                                      f[f"error/{site}/patch_effect_global"][()].astype(np.float64).mean(0)), site)

    def test_a_file_without_ig_leaves_its_panels_out_with_a_note(self):
        out = os.path.join(self.dir, "no_ig_figures")
        r = script("plot_study.py", self.no_ig, "--out", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("IG not computed", r.stderr)
        for name in STUDY_FIGURES:  # AtP and patching are there: every figure still has content
            self.assert_real_figure(os.path.join(out, name + ".png"))
        with open(os.path.join(out, "study_figures.json")) as f:
            d = json.load(f)["d_estimators_vs_patching"]
        self.assertIsNone(d["resid"]["ig"]["pearson"])
        self.assertEqual(d["resid"]["ig"]["n"], 0)
        self.assertAlmostEqual(d["resid"]["atp"]["pearson"],
                               self.numbers["d_estimators_vs_patching"]["resid"]["atp"]["pearson"], delta=1e-6)

    def test_other_formats(self):
        out = os.path.join(self.dir, "svg")
        r = script("plot_study.py", self.single, "--out", out, "--format", "svg")
        self.assertEqual(r.returncode, 0, r.stderr)
        for name in STUDY_FIGURES:
            with open(os.path.join(out, name + ".svg")) as f:
                self.assertIn("<svg", f.read(2000))

    def test_a_file_that_is_not_a_results_file_fails_with_one_line(self):
        path = os.path.join(self.dir, "other.h5")
        with h5py.File(path, "w") as f:
            f["x"] = np.zeros(3)
        self.assert_one_line_error(script("plot_study.py", path, "--out", os.path.join(self.dir, "o")),
                                   path, "not an `sfc run` results file")
        broken = os.path.join(self.dir, "no_cos.h5")
        shutil.copy(self.single, broken)
        with h5py.File(broken, "a") as f:
            del f["error/mlp/cos"]
        self.assert_one_line_error(script("plot_study.py", broken, "--out", os.path.join(self.dir, "o")),
                                   broken, "/error/mlp/cos")

    # ---- plot_scaling.py ----

    def test_strong_and_weak_scaling_from_timing(self):
        out = os.path.join(self.dir, "scaling")
        r = script("plot_scaling.py", self.single, self.np2, self.np2_weak, "--out", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), [os.path.join(out, n) for n in
                                            ("f_strong_scaling.png", "f_weak_scaling.png", "scaling.json")])
        for name in ("f_strong_scaling.png", "f_weak_scaling.png"):
            self.assert_real_figure(os.path.join(out, name))
        wall = {}
        for path in (self.single, self.np2, self.np2_weak):
            with h5py.File(path, "r") as f:
                wall[path] = float(f["timing"].attrs["wall_seconds"])
                self.assertEqual(int(f["timing"].attrs["world_size"]), 1 if path == self.single else 2)
        with open(os.path.join(out, "scaling.json")) as f:
            numbers = json.load(f)
        strong, weak = numbers["strong"], numbers["weak"]
        self.assertEqual(len(strong), 1)
        self.assertEqual(len(weak), 1)
        self.assertEqual(strong[0]["files"], [self.single, self.np2])
        self.assertEqual(strong[0]["world_size"], [1, 2])
        self.assertEqual(strong[0]["n_pairs"], [N_PAIRS, N_PAIRS])
        speedup = wall[self.single] / wall[self.np2]
        self.assertAlmostEqual(strong[0]["speedup"][1], speedup, delta=1e-12)
        self.assertAlmostEqual(strong[0]["efficiency"][1], speedup / 2, delta=1e-12)
        self.assertEqual(weak[0]["files"], [self.single, self.np2_weak])
        self.assertEqual(weak[0]["n_pairs"], [N_PAIRS, 2 * N_PAIRS])
        self.assertAlmostEqual(weak[0]["efficiency"][1], wall[self.single] / wall[self.np2_weak], delta=1e-12)

    def test_strong_only_writes_one_figure_with_a_note(self):
        out = os.path.join(self.dir, "strong_only")
        r = script("plot_scaling.py", self.np2, self.single, "--out", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("no weak-scaling curve", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(out, "f_weak_scaling.png")))
        self.assert_real_figure(os.path.join(out, "f_strong_scaling.png"))

    def test_a_file_without_timing_fails_with_one_line_naming_it(self):
        path = os.path.join(self.dir, "no_timing.h5")
        shutil.copy(self.np2, path)
        with h5py.File(path, "a") as f:
            del f["timing"]
        r = script("plot_scaling.py", self.single, path, "--out", os.path.join(self.dir, "bad"))
        self.assert_one_line_error(r, path, "/timing")

    def test_runs_that_form_no_curve_fail_with_one_line(self):
        r = script("plot_scaling.py", self.single, self.no_ig, "--out", os.path.join(self.dir, "bad"))
        self.assert_one_line_error(r, "no scaling curve", self.single, self.no_ig)  # different engines


if __name__ == "__main__":
    unittest.main()
