#!/usr/bin/env python3
"""The project's own SLURM scripts (slurm/) on a real single-node SLURM that this test starts itself.

scripts/slurm-local.sh starts munged, slurmctld and slurmd (Debian's packages) in a temporary folder;
every job runs the CPU variant (SFC_DEVICE=cpu) of slurm/sfc-run.sbatch on the Hugging Face fixture
model, and the test checks the files the jobs wrote:
- slurm/submit.sh, 2 tasks (srun --mpi=pmix): the results file equals a plain one-process `sfc run`
  (1e-6 relative), /timing says 2 ranks, and the dependent reduce job wrote /summary and the CSV.
- A USR1 to the batch script (what --signal=B:USR1@300 sends before the time limit): the ranks stop
  at a batch boundary with exit 75, the job requeues itself, its second start runs with --resume,
  the file equals the uninterrupted run, and the dependent reduce job waited for the second start.
- slurm/sweep.sh: a job file of 3 experiments becomes a job array; each task writes its own file with
  its own settings, and the reduce array (aftercorr) summarises each.
- slurm/scaling.sh --ranks-list=1,2 with SFC_LAUNCHER=mpirun: one file per rank count.
- The committed job files in jobs/ expand as documented (--dry-run).
If SLURM cannot be started, the test fails: CI installs it with scripts/setup-debian.sh. The daemons
are stopped at the end by the PIDs in their pid files (slurm-local.sh stop).

Run by ctest (tests/slurm/CMakeLists.txt) with SFC_BINARY and SFC_FIXTURES_DIR set; needs root.
"""
import os
import re
import shutil
import socket
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
FIXTURE = os.path.abspath(os.environ.get("SFC_FIXTURES_DIR", os.path.join(SOURCE, "tests", "fixtures"))) + "/gemma2-tiny"
SFC = os.path.abspath(os.environ.get("SFC_BINARY", os.path.join(SOURCE, "build", "dev", "src", "sfc")))
CONFIG = os.path.join(SOURCE, "configs", "gemma2-tiny.ini")
SLURM_LOCAL = os.path.join(SOURCE, "scripts", "slurm-local.sh")
EXIT_INTERRUPTED = 75
JOB_TIMEOUT = 300  # seconds for one group of jobs; the whole test takes about 1.5 minutes


def fixture_overrides(pairs=None):
    """Absolute paths, so the jobs run from the temporary folder, not the repository."""
    return ["--model.path=" + FIXTURE + "/model", "--sae.path=" + FIXTURE + "/saes",
            "--data.pairs=" + (pairs or os.path.join(SOURCE, "tests", "data", "gemma2-tiny-pairs.jsonl"))]


def free_port_pair():
    """A port p with p and p + 1 free (slurmctld, slurmd), so a SLURM already on this machine is no obstacle."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("", 0))
            p = s.getsockname()[1]
        if p >= 65535:
            continue
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("", p))
                b.bind(("", p + 1))
            return p
        except OSError:
            continue
    raise RuntimeError("no two consecutive free ports")


def parse_jobcomp(path):
    """jobcomp/filetxt records (one line per job end, Key=Value words), in order."""
    records = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                records.append(dict(w.split("=", 1) for w in line.split() if "=" in w))
    return records


class SlurmCluster(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sfc-slurm-")
        os.chmod(cls.tmp, 0o755)  # munged runs as user munge and keeps its socket in here
        cls.state = os.path.join(cls.tmp, "cluster")
        cls.env = dict(os.environ)
        cls.env.update({
            "SLURM_CONF": os.path.join(cls.state, "slurm.conf"),
            "SFC_SLURM_PORT": str(free_port_pair()),
            "SFC_BIN": SFC,
            "SFC_DEVICE": "cpu",  # the CPU variant of the GPU scripts
            "SFC_LOG_DIR": os.path.join(cls.tmp, "logs"),
            "OMP_NUM_THREADS": "1",
            "OMPI_ALLOW_RUN_AS_ROOT": "1",
            "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        })
        t = time.time()
        r = subprocess.run(["bash", SLURM_LOCAL, "start", cls.state], env=cls.env,
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            subprocess.run(["bash", SLURM_LOCAL, "stop", cls.state], env=cls.env, timeout=120)
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise RuntimeError("could not start a single-node SLURM (scripts/setup-debian.sh installs it; "
                               "the test needs root):\n" + r.stdout + r.stderr)
        print("slurm: cluster up in %.1f s in %s" % (time.time() - t, cls.state), file=sys.stderr)

    @classmethod
    def tearDownClass(cls):
        r = subprocess.run(["bash", SLURM_LOCAL, "stop", cls.state], env=cls.env,
                           capture_output=True, text=True, timeout=180)
        print(r.stderr.strip(), file=sys.stderr)
        if os.environ.get("SFC_KEEP_TMP"):
            print("slurm: kept " + cls.tmp, file=sys.stderr)
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    # --- helpers ---------------------------------------------------------------------------------------
    def run_here(self, cmd, cwd=None, timeout=120):
        r = subprocess.run(cmd, env=self.env, cwd=cwd or self.tmp, capture_output=True, text=True, timeout=timeout)
        self.assertEqual(r.returncode, 0, "%s\n%s%s" % (" ".join(cmd), r.stdout, r.stderr))
        return r.stdout

    def submit(self, script, *args, cwd=None):
        """Runs a submitter of slurm/; returns its printed 'key value...' lines as a dict of lists."""
        out = self.run_here(["bash", os.path.join(SOURCE, "slurm", script), *args], cwd=cwd)
        lines = {}
        for line in out.splitlines():
            key, _, rest = line.partition(" ")
            lines.setdefault(key, []).append(rest)
        return lines

    def wait_for_empty_queue(self, timeout=JOB_TIMEOUT):
        end = time.time() + timeout
        while time.time() < end:
            q = subprocess.run(["squeue", "-h", "-o", "%i %T %r"], env=self.env, capture_output=True, text=True)
            if q.returncode == 0 and not q.stdout.strip():
                return
            time.sleep(0.5)
        self.fail("jobs still queued after %d s:\n%s\n%s" % (timeout, q.stdout, self.logs()))

    def logs(self):
        d = self.env["SFC_LOG_DIR"]
        text = []
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            if name.endswith(".out"):
                with open(os.path.join(d, name)) as f:
                    text.append("==> %s <==\n%s" % (name, f.read()[-3000:]))
        return "\n".join(text)

    def log_of(self, name):
        with open(os.path.join(self.env["SFC_LOG_DIR"], name)) as f:
            return f.read()

    def records(self, job_id):
        """jobcomp records of a job id, or of every task when it is an array: the latest last."""
        all_records = parse_jobcomp(os.path.join(self.state, "jobcomp.txt"))
        return [r for r in all_records if r.get("JobId") == job_id or r.get("ArrayJobId") == job_id]

    def assert_completed(self, job_id, tasks=1):
        recs = self.records(job_id)
        latest = {}
        for r in recs:
            latest[r["JobId"]] = r
        self.assertEqual(len(latest), tasks, "job %s: %s\n%s" % (job_id, recs, self.logs()))
        for r in latest.values():
            self.assertEqual(r["JobState"], "COMPLETED", "job %s: %s\n%s" % (job_id, r, self.logs()))
            self.assertEqual(r["ExitCode"], "0:0", "job %s: %s" % (job_id, r))
        return latest

    def reference(self, name, *overrides, pairs=None):
        """The same run as one plain process, no SLURM, no MPI launcher."""
        out = os.path.join(self.tmp, "reference", name + ".h5")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        self.run_here([SFC, "run", "--config", CONFIG, *fixture_overrides(pairs), *overrides, "--output.path=" + out])
        return out

    def assert_results_file(self, path, n_pairs, world_size):
        self.assertTrue(os.path.exists(path), path + "\n" + self.logs())
        with h5py.File(path, "r") as f:
            self.assertEqual(int(f.attrs["n_pairs"]), n_pairs)
            self.assertEqual(f["pairs/length"].shape, (n_pairs,))
            self.assertEqual(f["timing"].attrs["world_size"], str(world_size))
            self.assertIn("summary", f)
        self.assertTrue(os.path.exists(path[:-3] + ".summary.csv"))
        self.assertFalse(os.path.exists(path + ".shards"), "shards are removed after a good run")

    # --- the tests -------------------------------------------------------------------------------------
    def test_submit_runs_two_ranks_then_the_dependent_reduce(self):
        out = os.path.join(self.tmp, "submit", "tiny.h5")
        got = self.submit("submit.sh", "--ntasks=2", "--time=00:10:00", CONFIG, *fixture_overrides(),
                          "--output.path=" + out)
        self.assertEqual(got["results"], [out])
        run_id, reduce_id = got["run"][0], got["reduce"][0]
        self.wait_for_empty_queue()
        self.assert_completed(run_id)
        self.assert_completed(reduce_id)
        self.assert_results_file(out, n_pairs=3, world_size=2)
        assert_same_results(self, self.reference("tiny"), out)
        run_log = self.log_of("sfc-gemma2-tiny-%s.out" % run_id)
        self.assertIn("srun --mpi=pmix", run_log)
        self.assertIn("--model.device=cpu", run_log)
        self.assertIn("wrote /summary", self.log_of("sfc-gemma2-tiny-reduce-%s.out" % reduce_id))
        run_end = self.records(run_id)[-1]["EndTime"]
        reduce_start = self.records(reduce_id)[-1]["StartTime"]
        self.assertGreaterEqual(reduce_start, run_end, "the reduce job waits for the run (afterok)")

    def test_usr1_before_the_time_limit_requeues_and_resumes(self):
        pairs = os.path.join(self.tmp, "signal-pairs.jsonl")
        # 96 batches of 2 pairs with 30 IG steps: about 10 s here (48 pairs with 10 steps took 1 s and
        # were done before the signal came), so the signal lands mid-run on a faster machine too.
        n_pairs, n_batches = 192, 96
        write_random_pairs(pairs, n_pairs, "slurm")
        out = os.path.join(self.tmp, "signal", "usr1.h5")
        # A progress line every second in the job log tells the test that batches are being computed.
        overrides = [*fixture_overrides(pairs), "--run.progress_seconds=1", "--ig.steps=30", "--data.batch_size=2"]
        got = self.submit("submit.sh", "--ntasks=2", CONFIG, *overrides, "--output.path=" + out)
        run_id, reduce_id = got["run"][0], got["reduce"][0]
        log = os.path.join(self.env["SFC_LOG_DIR"], "sfc-gemma2-tiny-%s.out" % run_id)
        end = time.time() + JOB_TIMEOUT
        while time.time() < end:
            text = self.log_of(os.path.basename(log)) if os.path.exists(log) else ""
            if re.search(r"sfc run: \d+/%d pairs .*, \d+/%d batches" % (n_pairs, n_batches), text):
                break
            time.sleep(0.1)
        else:
            self.fail("the run never reported a batch:\n" + self.logs())
        # What SLURM does at --signal=B:USR1@300, 300 s before the time limit.
        self.run_here(["scancel", "--signal=USR1", "--batch", run_id])
        self.wait_for_empty_queue()
        text = self.log_of(os.path.basename(log))
        self.assertIn("USR1", text)
        self.assertRegex(text, r"stopped by signal .*\(exit 75\)")
        self.assertIn("launcher exited 75", text)
        self.assertIn("requeueing job " + run_id, text)
        self.assertIn("start 2,", text)
        self.assertRegex(text, r"--data.batch_size=2 --output.path=\S+ --resume")
        self.assertRegex(text, r"resuming: \d+/%d batches already in the shards" % n_batches)
        recs = self.records(run_id)
        self.assertGreaterEqual(len(recs), 2, recs)  # the first start ended in the requeue
        self.assertEqual(recs[-1]["JobState"], "COMPLETED", recs)
        self.assertEqual(recs[-1]["ExitCode"], "0:0", recs)
        self.assert_completed(reduce_id)
        self.assertGreaterEqual(self.records(reduce_id)[-1]["StartTime"], recs[-1]["EndTime"],
                                "the reduce job waits for the requeued run")
        self.assert_results_file(out, n_pairs=n_pairs, world_size=2)
        assert_same_results(self, self.reference("signal", "--ig.steps=30", "--data.batch_size=2", pairs=pairs), out)

    def test_sweep_is_a_job_array_with_one_file_per_experiment(self):
        jobfile = os.path.join(self.tmp, "tiny-sweep.job")
        with open(jobfile, "w") as f:
            f.write("# 3 experiments: 2 IG step counts, and one named task with fewer sites\n"
                    "config %s\n"
                    "set %s model.device=cpu\n"
                    "grid ig.steps 2 5\n"
                    "task resid-only ig.steps=3 sae.sites=resid sae.layers=1,2\n"
                    "output %s/sweep/{name}.h5\n"
                    "sbatch --ntasks=1 --time=00:10:00\n"
                    "parallel 2\n" % (CONFIG, " ".join(o[2:] for o in fixture_overrides()), self.tmp))
        got = self.submit("sweep.sh", jobfile)
        self.assertEqual(got["tasks"], ["3"])
        tasks = [t.split() for t in got["task"]]
        self.assertEqual([t[1] for t in tasks], ["steps2", "steps5", "resid-only"])
        run_id, reduce_id = got["run"][0], got["reduce"][0]
        self.wait_for_empty_queue()
        runs = self.assert_completed(run_id, tasks=3)
        self.assertEqual(sorted(int(r["ArrayTaskId"]) for r in runs.values()), [0, 1, 2])
        self.assert_completed(reduce_id, tasks=3)
        expect = {"steps2": ("2", "resid,mlp,attn", "all"), "steps5": ("5", "resid,mlp,attn", "all"),
                  "resid-only": ("3", "resid", "1,2")}
        for index, name, path in tasks:
            with self.subTest(task=name):
                self.assert_results_file(path, n_pairs=3, world_size=1)
                with h5py.File(path, "r") as f:
                    config = f.attrs["config"]
                    config = config.decode() if isinstance(config, bytes) else config
                steps, sites, layers = expect[name]
                self.assertRegex(config, r"\[ig\]\nsteps = %s\n" % steps)
                self.assertIn("sites = %s\n" % sites, config)
                self.assertIn("layers = %s\n" % layers, config)
                self.assertIn("wrote /summary", self.log_of("tiny-sweep-reduce-%s_%s.out" % (reduce_id, index)))
        assert_same_results(self, self.reference("steps5", "--ig.steps=5"), tasks[1][2])

    def test_scaling_submits_one_run_per_rank_count(self):
        got = self.submit("scaling.sh", "--ranks-list=1,2", "--time=00:10:00", CONFIG, *fixture_overrides(),
                          "--output.path=" + os.path.join(self.tmp, "scaling", "tiny.h5"))
        self.wait_for_empty_queue()
        runs = [r.split() for r in got["run"]]
        self.assertEqual([(c, os.path.basename(p)) for _, c, p in runs],
                         [("1", "tiny-ranks1.h5"), ("2", "tiny-ranks2.h5")])
        for job_id, count, path in runs:
            self.assert_completed(job_id)
            self.assert_results_file(path, n_pairs=3, world_size=int(count))
        self.assertIn("plot_scaling.py", got["when"][0])

    def test_scaling_with_mpirun_inside_the_allocation(self):
        self.env["SFC_LAUNCHER"] = "mpirun"
        try:
            got = self.submit("scaling.sh", "--ranks-list=2", CONFIG, *fixture_overrides(),
                              "--output.path=" + os.path.join(self.tmp, "scaling-mpirun", "tiny.h5"))
        finally:
            del self.env["SFC_LAUNCHER"]
        self.wait_for_empty_queue()
        job_id, _, path = got["run"][0].split()
        self.assert_completed(job_id)
        self.assert_results_file(path, n_pairs=3, world_size=2)
        self.assertIn("mpirun -np 2", self.log_of("gemma2-tiny-scaling-ranks2-%s.out" % job_id))

    def test_the_committed_job_files_expand_as_documented(self):
        def dry_run(jobfile):
            lines = self.run_here(["bash", "slurm/sweep.sh", "--dry-run", jobfile], cwd=SOURCE).splitlines()
            self.assertEqual(lines[0], "tasks %d" % (len(lines) - 1))
            return [line.split() for line in lines[1:]]

        tiny = dry_run("jobs/tiny-cpu.job")
        self.assertEqual([t[0] for t in tiny], ["steps2_all", "steps2_resid", "steps4_all", "steps4_resid"])
        self.assertIn("--sae.sites=resid,mlp,attn", tiny[0])
        self.assertIn("--output.path=results/tiny-cpu/steps4_resid.h5", tiny[3])
        big = dry_run("jobs/gemma2-2b-agreement.job")
        self.assertEqual(len(big), 4 * 3 * 2)
        self.assertEqual((big[0][0], big[-1][0]), ("simple_resid_steps10", "within-rc_attn_steps32"))
        self.assertEqual(big[0][1], "configs/gemma2-2b.ini")
        self.assertIn("--output.path=results/gemma2-2b-agreement/simple_resid_steps10.h5", big[0])
        for task in big:  # every key once: sfc refuses a key given twice
            keys = [a.split("=", 1)[0] for a in task[2:]]
            self.assertEqual(len(keys), len(set(keys)), task)


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("slurm: skipped: the single-node SLURM of this test runs its daemons as root", file=sys.stderr)
        sys.exit(77)  # ctest's SKIP_RETURN_CODE: reported as skipped, not passed
    unittest.main(argv=sys.argv, verbosity=2)
