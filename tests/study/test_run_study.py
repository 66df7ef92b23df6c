#!/usr/bin/env python3
"""The README's first command end to end on the committed built-in model: scripts/run-study.sh runs
`sfc run` with all three engines under `mpirun -np 2`, the reduction pass and the figures, here on
every 12th of the 612 test pairs (51 pairs, all four templates) so it takes seconds, not minutes.

What it checks is the study's finding on this model, not the code's own output: the model gets
agreement right on these pairs (LD < 0 on the clean prompt, > 0 on the patch prompt), and AtP
tracks exact patching of error nodes as the README reports (Pearson r across layers of the
per-layer means at the answer position, the seed study's r ~ 0.98, and across (pair, layer) nodes).
A broken model, SAE, engine or reduction moves these numbers far below the thresholds.

Run by ctest (tests/study/CMakeLists.txt) with SFC_BINARY set, or by hand:
    SFC_BINARY=build/dev/src/sfc /usr/bin/python3 tests/study/test_run_study.py -v
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import h5py
import numpy as np

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SFC = os.path.abspath(os.environ.get("SFC_BINARY", os.path.join(SOURCE, "build", "dev", "src", "sfc")))
TEST_PAIRS = os.path.join(SOURCE, "models", "builtin", "data", "test.jsonl")
FIGURES = ("a_error_grad_vs_delta", "b_error_cos_vs_delta", "c_resid_post_metrics",
           "d_estimators_vs_patching", "e_layer_lines", "e_layer_lines_by_position")


class RunStudy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sfc-study-")
        with open(TEST_PAIRS) as f:
            lines = f.readlines()
        cls.pairs = os.path.join(cls.tmp, "pairs.jsonl")
        with open(cls.pairs, "w") as f:
            f.writelines(lines[::12])
        cls.n_pairs = len(lines[::12])
        cls.results = os.path.join(cls.tmp, "out", "builtin.h5")
        env = dict(os.environ, SFC_BIN=SFC, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
        cls.study = subprocess.run(
            ["bash", "scripts/run-study.sh", "configs/builtin.ini", "--data.pairs=" + cls.pairs,
             "--output.path=" + cls.results],
            cwd=SOURCE, env=env, capture_output=True, text=True, timeout=600)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.assertEqual(self.study.returncode, 0, self.study.stdout + self.study.stderr)

    def test_it_prints_where_the_results_summary_and_figures_are(self):
        stem = self.results[:-3]
        out = self.study.stdout
        for path in (self.results, stem + ".summary.csv", stem + "-figures/"):
            self.assertIn(path, out)
            self.assertTrue(os.path.exists(path), path)
        for name in FIGURES:
            png = os.path.join(stem + "-figures", name + ".png")
            self.assertTrue(os.path.exists(png), png)
            self.assertGreater(os.path.getsize(png), 20000, png + " is too small to hold a plot")
        with h5py.File(self.results, "r") as f:
            self.assertEqual(int(f.attrs["n_pairs"]), self.n_pairs)
            self.assertEqual(f["timing"].attrs["world_size"], "2")
            for site in ("resid", "mlp", "attn"):
                for metric in ("atp", "ig", "patch_effect"):
                    values = f["error/%s/%s" % (site, metric)][()]
                    self.assertTrue(np.isfinite(values[:, :, 0]).all(), site + "/" + metric)

    def test_the_model_does_agreement_on_these_pairs(self):
        with h5py.File(self.results, "r") as f:
            ld_clean, ld_patch = f["pairs/ld_clean"][()], f["pairs/ld_patch"][()]
        self.assertGreaterEqual(np.mean(ld_clean < 0), 0.95, ld_clean)
        self.assertGreaterEqual(np.mean(ld_patch > 0), 0.95, ld_patch)

    def test_atp_tracks_exact_patching_of_error_nodes(self):
        with h5py.File(self.results, "r") as f:
            corr = f["summary/corr"]
            layer_means = {s: float(corr[s]["layer_means/pearson_atp_patch"][0]) for s in ("resid", "mlp", "attn")}
            nodes = {s: float(corr[s]["answer/pearson_atp_patch"][0]) for s in ("resid", "mlp", "attn")}
            # the same statistic from the datasets, so the reduction is checked too
            atp = f["error/resid/atp"][()]
            patch = f["error/resid/patch_effect"][()]
            answer = f["pairs/answer_pos"][()]
        rows = np.arange(atp.shape[0])
        a = atp[rows, :, answer]  # [N, L] at each pair's answer position
        p = patch[rows, :, answer]
        self.assertAlmostEqual(layer_means["resid"], np.corrcoef(a.mean(0), p.mean(0))[0, 1], places=6)
        self.assertAlmostEqual(nodes["resid"], np.corrcoef(a.ravel(), p.ravel())[0, 1], places=6)
        # The README: 0.998 across layers and 0.949 across nodes for resid on all 612 pairs.
        self.assertGreaterEqual(layer_means["resid"], 0.95, layer_means)
        for site in ("resid", "mlp", "attn"):
            self.assertGreaterEqual(nodes[site], 0.85, (site, nodes))


if __name__ == "__main__":
    unittest.main(argv=sys.argv, verbosity=2)
