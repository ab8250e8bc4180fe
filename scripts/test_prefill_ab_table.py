#!/usr/bin/env python3
"""Tests of scripts/prefill_ab_table.py on fake benchmark outputs (CPU, Python 3 standard library; ctest
prefill_ab_table_py): the files scripts/engine-long-bench.sh leaves with LONG_PREFILL_AB=1 and the rows they imply."""
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prefill_ab_table  # noqa: E402


class PrefillAbTableTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.out = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def put(self, case, kernel, rep, ms=None, log=None, layers=32, attention_us=None):
        stem = os.path.join(self.out, prefill_ab_table.run_stem(("prefill",) + case, kernel, rep))
        if ms is not None:
            data = {"tool": "nvrar-llm bench", "num_layers": layers, "prefill_ms_median": ms}
            if attention_us is not None:
                data["prefill_breakdown_us"] = {"gemm": 1000.0, "attention": attention_us, "allreduce": 10.0,
                                                "other": 20.0}
            with open(stem + ".json", "w") as f:
                json.dump(data, f)
        if log is not None:
            with open(stem + ".log", "w") as f:
                f.write(log)

    def table(self, *args):
        self.assertEqual(prefill_ab_table.main([self.out] + list(args)), 0)
        with open(os.path.join(self.out, "prefill_ab.md")) as f:
            return f.read()

    def test_medians_ratios_and_goal(self):
        for rep, (a, b, c) in enumerate([(52.0, 45.0, 30.0), (54.0, 47.0, 32.0)], start=1):
            self.put((1, 2048), "flash", rep, a)
            self.put((1, 2048), "flash128", rep, b)
            self.put((1, 2048), "wgmma", rep, c)
        md = self.table("--cases", "prefill:1:2048", "--kernels", "flash flash128 wgmma")
        row = [l for l in md.splitlines() if l.startswith("| prefill 1 x 2048")]
        self.assertEqual(len(row), 1)
        cells = [c.strip() for c in row[0].strip("|").split("|")]
        self.assertIn("52.0 / 54.0; 53.00 ms", cells[1])
        self.assertEqual(cells[4], f"{46.0 / 53.0:.3f}")
        self.assertEqual(cells[5], f"{31.0 / 53.0:.3f}")
        self.assertEqual(cells[6], "<= 50.00 ms")
        self.assertEqual(cells[7], "pass")  # the best kernel (wgmma, 31 ms) meets the 50 ms goal

    def test_default_kernels(self):
        for k, ms in (("wgmma-tma", 250.0), ("wgmma-ws", 200.0), ("flash", 280.0)):
            self.put((1, 8192), k, 1, ms)
            self.put((1, 8192), k, 2, ms)
        md = self.table("--cases", "prefill:1:8192")
        self.assertIn("| wgmma-tma (runs; median) | wgmma-ws (runs; median) |", md.splitlines()[0])
        self.assertNotIn("flash", md.splitlines()[0])  # not a default kernel, though its files are there
        row = [l for l in md.splitlines() if l.startswith("| prefill 1 x 8192")][0]
        cells = [c.strip() for c in row.strip("|").split("|")]
        self.assertEqual(cells[3], f"{200.0 / 250.0:.3f}")  # wgmma-ws / wgmma-tma
        self.assertEqual(cells[5], "pass")  # 200 ms meets the 220 ms goal

    def test_failures_are_named_and_layers_disable_the_verdict(self):
        self.put((1, 8192), "flash", 1, 280.0, layers=8)
        self.put((1, 8192), "flash", 2, 282.0, layers=8)
        self.put((1, 8192), "wgmma", 1,
                 log="nvrar-llm: prefill attention wgmma needs a GPU of compute capability 9.0\n")
        md = self.table("--cases", "prefill:1:8192 decode:1:8192", "--kernels", "flash wgmma")
        row = [l for l in md.splitlines() if l.startswith("| prefill 1 x 8192")][0]
        self.assertIn("failed (", row)
        self.assertIn("n/a (8 layers)", row)
        self.assertNotIn("decode", md.split("\n\n")[0])  # decode cases are not part of this table

    def test_attention_phase_median(self):
        self.put((1, 8192), "wgmma", 1, 250.0, attention_us=80000.0)
        self.put((1, 8192), "wgmma", 2, 252.0, attention_us=84000.0)
        self.put((1, 8192), "wgmma2", 1, 248.0)  # an older JSON without the split: no attention figure
        md = self.table("--cases", "prefill:1:8192", "--kernels", "wgmma wgmma2", "--repeat", "2")
        row = [l for l in md.splitlines() if l.startswith("| prefill 1 x 8192")][0]
        cells = [c.strip() for c in row.strip("|").split("|")]
        self.assertIn("(attention 82.00 ms)", cells[1])
        self.assertNotIn("attention", cells[2])

    def test_bad_arguments(self):
        self.assertEqual(prefill_ab_table.main([self.out, "--kernels", "cudnn"]), 2)
        self.assertEqual(prefill_ab_table.main([self.out, "--repeat", "0"]), 2)
        self.assertEqual(prefill_ab_table.main([self.out, "--cases", "prefill:x:1"]), 2)


if __name__ == "__main__":
    unittest.main()
