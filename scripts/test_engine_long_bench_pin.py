#!/usr/bin/env python3
"""Tests of scripts/engine-long-bench.sh's GEMM plan pinning in its A/B modes (CPU, Python 3 standard library; ctest
engine_long_bench_pin): a fake nvrar-llm records the NVRAR_LLM_GEMM it was given and writes a JSON with a new plan
each run; the first run of each case must run unpinned and every later run of that case with the first run's plan,
unless LONG_AB_PIN_GEMM=0 or the caller set NVRAR_LLM_GEMM; a failed first run leaves the next run to time its own;
under mpirun the pin is passed on with -x."""
import glob
import json
import os
import subprocess
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Writes its --json with a plan unique to this run (a shape from the file name's checksum), and prints what it was
# given; fails without a JSON where FAKE_FAIL names its run.
FAKE_LLM = """#!/bin/bash
json=""
while [ $# -gt 0 ]; do [ "$1" = --json ] && json=$2; shift; done
plan="1x4096x$(basename "$json" .json | cksum | cut -d' ' -f1)=skinny0"
echo "Prefill (median): 1.00 ms"
[ "$(basename "$json" .json)" = "${FAKE_FAIL:-}" ] && { echo "pin=[${NVRAR_LLM_GEMM:-}] failed"; exit 1; }
echo "pin=[${NVRAR_LLM_GEMM:-}] attention=[${NVRAR_LLM_PREFILL_ATTENTION:-}${NVRAR_LLM_DECODE_ATTENTION:-}]"
printf '{"gemm_plan": "%s", "prefill_ms_median": 1.0, "decode_step_ms_median": 1.0, "num_layers": 32}\\n' "$plan" \\
  > "$json"
"""


class PinTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.build = os.path.join(self.tmp.name, "build")
        os.makedirs(os.path.join(self.build, "tools"))
        llm = os.path.join(self.build, "tools", "nvrar-llm")
        with open(llm, "w") as f:
            f.write(FAKE_LLM)
        os.chmod(llm, 0o755)
        self.out = os.path.join(self.tmp.name, "out")
        # An mpirun that records its arguments and runs the program after them.
        self.bin = os.path.join(self.tmp.name, "bin")
        os.makedirs(self.bin)
        mpirun = os.path.join(self.bin, "mpirun")
        with open(mpirun, "w") as f:
            f.write('#!/bin/bash\necho "$*" >> "%s"\n' % os.path.join(self.tmp.name, "mpirun_args") +
                    'while [ $# -gt 0 ] && [[ "$1" != */nvrar-llm ]]; do shift; done\nexec "$@"\n')
        os.chmod(mpirun, 0o755)

    def tearDown(self):
        self.tmp.cleanup()

    def run_bench(self, **env):
        e = dict(os.environ, LONG_MPIRUN="0", LONG_SKIP_TORCH="1", LONG_SKIP_CUDNN="1")
        e.pop("NVRAR_LLM_GEMM", None)
        e.update(env)
        r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "engine-long-bench.sh"), self.build, self.out],
                           env=e, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.stdout = r.stdout
        runs = {}
        for log in glob.glob(os.path.join(self.out, "engine_*_r*.log")):
            stem = os.path.basename(log)[:-4]
            with open(log) as f:
                pin = [line for line in f if line.startswith("pin=")][0].split("]")[0][5:]
            json_path = os.path.join(self.out, stem + ".json")
            if not os.path.exists(json_path):
                runs[stem] = (pin, None)
                continue
            with open(json_path) as f:
                plan = json.load(f)["gemm_plan"]
            runs[stem] = (pin, plan)
        return runs

    def check_pinned(self, runs, cases, kernels, repeat):
        self.assertEqual(len(runs), len(cases) * len(kernels) * repeat)
        for case in cases:
            first = f"{case}_{kernels[0]}_r1"
            self.assertEqual(runs[first][0], "", first)  # the first run times its own
            for r in range(1, repeat + 1):
                for k in kernels:
                    stem = f"{case}_{k}_r{r}"
                    if stem != first:
                        self.assertEqual(runs[stem][0], runs[first][1], stem)

    def test_prefill_ab_pins_each_case_to_its_first_run(self):
        runs = self.run_bench(LONG_PREFILL_AB="1", LONG_PREFILL_KERNELS="wgmma-tma wgmma-ws",
                              LONG_CASES="prefill:1:8192 prefill:8:2048")
        self.check_pinned(runs, ["engine_prefill_b1_8192", "engine_prefill_b8_2048"], ["wgmma-tma", "wgmma-ws"], 2)
        self.assertNotEqual(runs["engine_prefill_b1_8192_wgmma-tma_r1"][1],
                            runs["engine_prefill_b8_2048_wgmma-tma_r1"][1])  # each case its own plan

    def test_decode_ab_pins_too(self):
        runs = self.run_bench(LONG_DECODE_AB="1", LONG_DECODE_KERNELS="fused mma", LONG_CASES="decode:1:8192",
                              LONG_AB_REPEAT="3")
        self.check_pinned(runs, ["engine_decode_b1_8192"], ["fused", "mma"], 3)

    def test_no_pin_when_switched_off_or_set_by_the_caller(self):
        runs = self.run_bench(LONG_PREFILL_AB="1", LONG_PREFILL_KERNELS="flash wgmma", LONG_CASES="prefill:1:2048",
                              LONG_AB_PIN_GEMM="0")
        self.assertEqual({pin for pin, _ in runs.values()}, {""})
        runs = self.run_bench(LONG_PREFILL_AB="1", LONG_PREFILL_KERNELS="flash wgmma", LONG_CASES="prefill:1:2048",
                              NVRAR_LLM_GEMM="cublaslt")
        self.assertEqual({pin for pin, _ in runs.values()}, {"cublaslt"})


    def test_a_failed_first_run_leaves_the_next_to_time_its_own(self):
        runs = self.run_bench(LONG_PREFILL_AB="1", LONG_PREFILL_KERNELS="wgmma-tma wgmma-ws",
                              LONG_CASES="prefill:1:8192", FAKE_FAIL="engine_prefill_b1_8192_wgmma-tma_r1")
        self.assertIn("no gemm_plan in", self.stdout)
        stem = "engine_prefill_b1_8192_"
        self.assertEqual(runs[stem + "wgmma-tma_r1"], ("", None))
        self.assertEqual(runs[stem + "wgmma-ws_r1"][0], "")  # unpinned: there was nothing to pin to
        for later in ("wgmma-tma_r2", "wgmma-ws_r2"):
            self.assertEqual(runs[stem + later][0], runs[stem + "wgmma-ws_r1"][1], later)

    def test_mpirun_passes_the_pin_on(self):
        path = self.bin + os.pathsep + os.environ.get("PATH", "")
        runs = self.run_bench(LONG_PREFILL_AB="1", LONG_PREFILL_KERNELS="wgmma-tma wgmma-ws",
                              LONG_CASES="prefill:1:8192", LONG_MPIRUN="1", PATH=path)
        self.check_pinned(runs, ["engine_prefill_b1_8192"], ["wgmma-tma", "wgmma-ws"], 2)
        with open(os.path.join(self.tmp.name, "mpirun_args")) as f:
            calls = f.read().splitlines()
        self.assertEqual(len(calls), 4)
        self.assertNotIn("-x NVRAR_LLM_GEMM", calls[0])
        for call in calls[1:]:
            self.assertIn("-x NVRAR_LLM_GEMM", call)


if __name__ == "__main__":
    unittest.main()
