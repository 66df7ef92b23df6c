#!/usr/bin/env python3
"""End-to-end tests of `sfc run` on several MPI ranks, with real mpirun and real signals.

- The rank count and the site groups never change a number: -np 1, 2 and 3 (site groups 1 and 3)
  give the same results file (every dataset within 1e-6 relative, NaN where NaN).
- A run killed with SIGKILL mid-way and restarted with --resume gives the same file.
- SIGTERM (what SLURM sends before the time limit) and SIGUSR1 (a job's --signal, forwarded by
  mpirun) end the run after the batch in flight with exit code 75 and resumable shards.

Run by ctest (tests/CMakeLists.txt) with SFC_BINARY set; each test case is its own ctest entry.
Uses the Hugging Face fixture model and SAEs with a generated pre-tokenised dataset of 16 pairs.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from random_pairs import write_random_pairs  # noqa: E402
from results_compare import assert_same_results  # noqa: E402

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.environ.get("SFC_FIXTURES_DIR", os.path.join(SOURCE, "tests", "fixtures")) + "/gemma2-tiny"
SFC = os.environ.get("SFC_BINARY", os.path.join(SOURCE, "build", "dev", "sfc"))
MPIRUN = ["mpirun", "--oversubscribe", "--allow-run-as-root"]
EXIT_INTERRUPTED = 75
N_PAIRS = 16


def sfc_args(folder, out, *extra):
    return [SFC, "run", "--config", os.path.join(SOURCE, "configs", "gemma2-tiny.ini"),
            "--model.path=" + FIXTURE + "/model", "--sae.path=" + FIXTURE + "/saes",
            "--data.pairs=" + os.path.join(folder, "pairs.jsonl"), "--data.batch_size=2",
            "--output.path=" + out, *extra]


def env():
    e = dict(os.environ)
    e["OMP_NUM_THREADS"] = "1"
    return e


def run(cmd, **kw):
    return subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=600, **kw)


class ResultsCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="sfc-mpi-")
        self.dir = self.tmp.name
        write_random_pairs(os.path.join(self.dir, "pairs.jsonl"), N_PAIRS, "mpi")

    def tearDown(self):
        self.tmp.cleanup()

    def reference(self):
        out = os.path.join(self.dir, "reference.h5")
        r = run(sfc_args(self.dir, out))  # one process, no mpirun
        self.assertEqual(r.returncode, 0, r.stderr)
        return out


class RankCountDoesNotChangeANumber(ResultsCase):
    def test_np_1_2_3_and_site_groups(self):
        reference = self.reference()
        with h5py.File(reference, "r") as f:
            self.assertEqual(f["pairs/length"].shape, (N_PAIRS,))
            self.assertTrue(np.isfinite(f["error/resid/ig"][:, :, 0]).all())
            self.assertEqual(f["timing"].attrs["world_size"], "1")
        # The CPU BLAS the timings were measured with: what the binary itself reports.
        version = run([SFC, "--version"])
        blas = [line[len("blas: "):] for line in version.stdout.splitlines() if line.startswith("blas: ")]
        self.assertEqual(len(blas), 1, version.stdout)
        for np_, groups in ((1, 1), (2, 1), (3, 1), (3, 3)):
            out = os.path.join(self.dir, "np%d-g%d.h5" % (np_, groups))
            r = run(MPIRUN + ["-np", str(np_)] + sfc_args(self.dir, out, "--dist.site_groups=%d" % groups))
            self.assertEqual(r.returncode, 0, r.stderr)
            with self.subTest(np=np_, site_groups=groups):
                assert_same_results(self, reference, out)
                with h5py.File(out, "r") as f:
                    self.assertEqual(f["timing"].attrs["world_size"], str(np_))
                    self.assertEqual(f["timing"].attrs["site_groups"], str(groups))
                    self.assertEqual(f["timing"].attrs["cpu_blas"], blas[0])
                    self.assertEqual(f["timing/seconds"].shape, (np_, 8))
                    # every rank computed something, and the batches add up
                    self.assertTrue((f["timing/batches"][:] > 0).all())
                    self.assertEqual(f["timing/pairs"][:].sum(), N_PAIRS * groups)
                self.assertFalse(os.path.exists(out + ".shards"), "shards are removed after a good run")

    def test_a_bad_site_group_count_fails_on_every_rank_with_one_message(self):
        out = os.path.join(self.dir, "bad.h5")
        r = run(MPIRUN + ["-np", "2"] + sfc_args(self.dir, out, "--dist.site_groups=3"))
        self.assertNotEqual(r.returncode, 0)
        lines = [l for l in r.stderr.splitlines() if l.startswith("sfc: error:")]
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn("dist.site_groups = 3", lines[0])
        self.assertFalse(os.path.exists(out))
        # A typo on the command line: usage status 2, said once, not once per rank.
        r = run(MPIRUN + ["-np", "2"] + sfc_args(self.dir, out, "--model.dtyp=bf16"))
        self.assertEqual(r.returncode, 2, r.stderr)
        lines = [l for l in r.stderr.splitlines() if l.startswith("sfc: error:")]
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn("model.dtyp", lines[0])


def wait_for_records(shard_dir, at_least, timeout=300):
    """Waits until the shards hold `at_least` bytes past their headers in total (some batches done)."""
    start = time.time()
    while time.time() - start < timeout:
        if os.path.isdir(shard_dir):
            sizes = [os.path.getsize(os.path.join(shard_dir, f)) for f in os.listdir(shard_dir)]
            if sizes and sum(sizes) >= at_least:
                return
        time.sleep(0.05)
    raise AssertionError("no shard records appeared in %s" % shard_dir)


class KillAndResume(ResultsCase):
    # Enough IG steps that a batch takes a while, so the kill lands mid-run.
    SLOW = ["--ig.steps=200"]

    def slow_reference(self):
        out = os.path.join(self.dir, "reference.h5")
        r = run(sfc_args(self.dir, out, *self.SLOW))
        self.assertEqual(r.returncode, 0, r.stderr)
        return out

    def test_sigkill_then_resume_gives_the_same_file(self):
        reference = self.slow_reference()
        out = os.path.join(self.dir, "killed.h5")
        cmd = MPIRUN + ["-np", "2"] + sfc_args(self.dir, out, *self.SLOW)
        p = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        wait_for_records(out + ".shards", at_least=20000)
        os.killpg(p.pid, signal.SIGKILL)  # mpirun and both ranks, no warning
        p.wait()
        self.assertFalse(os.path.exists(out), "a killed run must not leave a results file")
        self.assertTrue(os.path.isdir(out + ".shards"))
        # Without --resume the shards are not silently thrown away.
        r = run(MPIRUN + ["-np", "2"] + sfc_args(self.dir, out, *self.SLOW))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("--resume", r.stderr)
        r = run(MPIRUN + ["-np", "2"] + sfc_args(self.dir, out, *self.SLOW, "--resume"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("resuming", r.stderr)
        assert_same_results(self, reference, out)
        with h5py.File(out, "r") as f:  # the resumed run computed only what was missing
            self.assertLess(f["timing/pairs"][:].sum(), N_PAIRS)

    def test_sigterm_stops_after_the_batch_with_exit_75_and_resumes(self):
        reference = self.slow_reference()
        out = os.path.join(self.dir, "term.h5")
        p = subprocess.Popen(sfc_args(self.dir, out, *self.SLOW), env=env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        wait_for_records(out + ".shards", at_least=5000)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=300)
        self.assertEqual(p.returncode, EXIT_INTERRUPTED, err)
        self.assertIn("rerun with --resume", err)
        self.assertFalse(os.path.exists(out))
        r = run(sfc_args(self.dir, out, *self.SLOW, "--resume"))
        self.assertEqual(r.returncode, 0, r.stderr)
        assert_same_results(self, reference, out)
        # A second --resume of a finished run does nothing and succeeds (a requeued job).
        r = run(sfc_args(self.dir, out, *self.SLOW, "--resume"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("nothing to resume", r.stdout)

    def test_sigusr1_through_mpirun_stops_every_rank_with_exit_75(self):
        out = os.path.join(self.dir, "usr1.h5")
        p = subprocess.Popen(MPIRUN + ["-np", "2"] + sfc_args(self.dir, out, *self.SLOW), env=env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_for_records(out + ".shards", at_least=10000)
        p.send_signal(signal.SIGUSR1)  # mpirun forwards SIGUSR1 to the ranks
        _, err = p.communicate(timeout=300)
        self.assertEqual(p.returncode, EXIT_INTERRUPTED, err)
        self.assertFalse(os.path.exists(out))
        r = run(MPIRUN + ["-np", "2"] + sfc_args(self.dir, out, *self.SLOW, "--resume"))
        self.assertEqual(r.returncode, 0, r.stderr)
        with h5py.File(out, "r") as f:
            self.assertTrue(np.isfinite(f["error/resid/ig"][:, :, 0]).all())


if __name__ == "__main__":
    unittest.main(argv=sys.argv)
