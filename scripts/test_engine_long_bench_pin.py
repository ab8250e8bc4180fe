#!/usr/bin/env python3
"""Tests of scripts/engine-long-bench.sh's GEMM plan pinning in its A/B modes (CPU, Python 3 standard library; ctest
engine_long_bench_pin): a fake nvrar-llm records the NVRAR_LLM_GEMM it was given and writes a JSON with a new plan
each run; the first run of each case must run unpinned and every later run of that case with the first run's plan,
unless LONG_AB_PIN_GEMM=0 or the caller set NVRAR_LLM_GEMM."""
import glob
import json
import os
import subprocess
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Writes its --json with a plan unique to this run, and prints what it was given.
FAKE_LLM = """#!/bin/bash
json=""
while [ $# -gt 0 ]; do [ "$1" = --json ] && json=$2; shift; done
plan="1x4096x4096=skinny$(basename "$json" .json | md5sum | cut -c1-6)"
echo "Prefill (median): 1.00 ms"
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

    def tearDown(self):
        self.tmp.cleanup()

    def run_bench(self, **env):
        e = dict(os.environ, LONG_MPIRUN="0", LONG_SKIP_TORCH="1", LONG_SKIP_CUDNN="1")
        e.pop("NVRAR_LLM_GEMM", None)
        e.update(env)
        r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "engine-long-bench.sh"), self.build, self.out],
                           env=e, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        runs = {}
        for log in glob.glob(os.path.join(self.out, "engine_*_r*.log")):
            stem = os.path.basename(log)[:-4]
            with open(log) as f:
                pin = [line for line in f if line.startswith("pin=")][0].split("]")[0][5:]
            with open(os.path.join(self.out, stem + ".json")) as f:
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


if __name__ == "__main__":
    unittest.main()
