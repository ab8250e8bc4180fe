#!/usr/bin/env python3
"""Tests of scripts/decode_ab_table.py on fake benchmark outputs (CPU, Python 3 standard library; ctest
decode_ab_table_py): the files scripts/engine-long-bench.sh leaves in OUT with LONG_DECODE_AB=1, and the rows of
decode_ab.md they imply."""
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import decode_ab_table  # noqa: E402


def write(path, obj):
    with open(path, "w") as f:
        f.write(obj if isinstance(obj, str) else json.dumps(obj))


def run_json(batch, context, step_ms, attention_us, layers=32):
    return {"tool": "nvrar-llm bench", "num_layers": layers, "batch_size": batch, "input_len": context,
            "output_len": 64, "decode_step_ms_median": step_ms,
            "breakdown_us": {"gemm": 3000.0, "attention": attention_us, "allreduce": 50.0, "other": 100.0}}


class DecodeAbTableTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.out = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def put(self, case, kernel, rep, obj):
        stem = decode_ab_table.run_stem(("decode",) + case, kernel, rep)
        write(os.path.join(self.out, stem + (".json" if isinstance(obj, dict) else ".log")), obj)

    def rows(self, cases, repeat=2):
        self.assertEqual(decode_ab_table.main([self.out, "--cases", cases, "--repeat", str(repeat)]), 0)
        with open(os.path.join(self.out, "decode_ab.md")) as f:
            text = f.read()
        rows = {}
        for line in text.splitlines():
            if line.startswith("| decode"):
                cells = [c.strip() for c in line.strip("|").split("|")]
                rows[cells[0]] = cells[1:]
        return rows

    def test_both_kernels_and_cudnn(self):
        for rep, (a, b) in enumerate([(5.16, 4.30), (5.18, 4.10)], start=1):
            self.put((1, 8192), "splitk", rep, run_json(1, 8192, a, 1230.0))
            self.put((1, 8192), "fused", rep, run_json(1, 8192, b, 400.0))
        write(os.path.join(self.out, "cudnn_attention.json"),
              {"torch": "2.11", "cudnn": "91000", "method": "graph",
               "results": [{"case": "decode:1:8192", "status": "ok", "ms_model": 0.79, "tb_per_s": 1.36}]})
        row = self.rows("decode:1:8192")["decode b1 ctx 8192"]
        self.assertEqual(row[0], "5.160 / 5.180 ms")
        self.assertEqual(row[1], "4.300 / 4.100 ms")
        self.assertEqual(row[2], f"{4.20 / 5.17:.3f}")
        self.assertEqual(row[3], "1.230 ms -> 0.400 ms")
        # 1 x (8192 + 64) tokens x 32 layers x 4096 bytes over 0.4 ms.
        self.assertEqual(row[4], f">= {8256 * 32 * 4096 / 0.4e-3 / 1e12:.2f} TB/s")
        self.assertEqual(row[5], "0.790 ms (1.36 TB/s)")
        self.assertEqual(row[6], f"{0.4 / 0.79:.2f}x its time")
        self.assertEqual(row[7], "<= 4.200 ms")
        self.assertEqual(row[8], "pass")

    def test_failures_and_missing_runs(self):
        self.put((8, 8192), "splitk", 1, run_json(8, 8192, 7.0, 3000.0))
        self.put((8, 8192), "fused", 1, "nvrar-llm: rank 0 fused decode attention: launch failed: too many resources\n")
        rows = self.rows("decode:8:8192 decode:32:8192")
        row = rows["decode b8 ctx 8192"]
        self.assertEqual(row[0], "7.000 ms (1 of 2 failed)")
        self.assertTrue(row[1].startswith("failed (nvrar-llm: rank 0 fused decode attention"), row[1])
        self.assertEqual(row[2], "-")
        self.assertEqual(row[8], "miss (did not run)")
        self.assertEqual(rows["decode b32 ctx 8192"][0], "not run")
        self.assertEqual(rows["decode b32 ctx 8192"][7], "-")  # no goal for this case

    def test_truncated_model_has_no_verdict(self):
        self.put((1, 32768), "fused", 1, run_json(1, 32768, 1.0, 100.0, layers=4))
        row = self.rows("decode:1:32768", repeat=1)["decode b1 ctx 32768"]
        self.assertEqual(row[8], "n/a (4 layers)")
        self.assertEqual(row[4], f">= {32832 * 4 * 4096 / 0.1e-3 / 1e12:.2f} TB/s")

    def test_bad_case_is_refused(self):
        self.assertEqual(decode_ab_table.main([self.out, "--cases", "decode:x:1"]), 2)

    def test_other_kernels(self):
        # LONG_DECODE_KERNELS='fused mma': fused is the base, mma the candidate (its step, ratio, K/V rate, verdict).
        self.put((8, 8192), "fused", 1, run_json(8, 8192, 6.95, 2750.0))
        self.put((8, 8192), "mma", 1, run_json(8, 8192, 6.20, 1900.0))
        self.put((8, 8192), "splitk", 1, run_json(8, 8192, 9.0, 4000.0))  # not asked for: ignored
        self.assertEqual(decode_ab_table.main([self.out, "--cases", "decode:8:8192", "--repeat", "1",
                                               "--kernels", "fused mma"]), 0)
        with open(os.path.join(self.out, "decode_ab.md")) as f:
            text = f.read()
        self.assertIn("| case | fused step (runs) | mma step (runs) | mma / fused |", text)
        row = [c.strip() for c in text.splitlines()[2].strip("|").split("|")][1:]
        self.assertEqual(row[0], "6.950 ms")
        self.assertEqual(row[1], "6.200 ms")
        self.assertEqual(row[2], f"{6.20 / 6.95:.3f}")
        self.assertEqual(row[3], "2.750 ms -> 1.900 ms")
        self.assertEqual(row[4], f">= {8 * 8256 * 32 * 4096 / 1.9e-3 / 1e12:.2f} TB/s")
        self.assertEqual(row[8], "pass")  # goal 6.3 ms
        for bad in ("fused", "fused fused", "splitk fused mma"):
            self.assertEqual(decode_ab_table.main([self.out, "--kernels", bad]), 2, bad)


if __name__ == "__main__":
    unittest.main()
