#!/usr/bin/env python3
"""Tests of scripts/long_table.py on fake benchmark outputs (CPU, Python 3 standard library; ctest long_table_py).

Each test writes the files that scripts/engine-long-bench.sh would leave in OUT (engine JSONs and logs,
torch_llama.json, cudnn_attention.json) into a temporary folder, runs long_table.main on it and checks the rows of
long_context.md against what those inputs and issue 17's goals imply."""
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import long_table  # noqa: E402


def write(path, obj):
    with open(path, "w") as f:
        f.write(obj if isinstance(obj, str) else json.dumps(obj))


def engine_json(batch, length, prefill_ms=None, step_ms=None, layers=32):
    j = {"tool": "nvrar-llm bench", "num_layers": layers, "batch_size": batch, "input_len": length}
    if prefill_ms is not None:
        j["prefill_ms_median"] = prefill_ms
    if step_ms is not None:
        j["decode_step_ms_median"] = step_ms
    return j


class LongTableTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.out = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def run_table(self, cases):
        self.assertEqual(long_table.main([self.out, "--cases", " ".join(cases)]), 0)
        with open(os.path.join(self.out, "long_context.md")) as f:
            text = f.read()
        rows = {}
        for line in text.splitlines():
            if line.startswith("| ") and not line.startswith("| case"):
                cells = [c.strip() for c in line.strip("|").split("|")]
                rows[cells[0]] = cells[1:]
        return text, rows

    def test_full_run(self):
        o = self.out
        write(f"{o}/engine_prefill_b1_2048.json", engine_json(1, 2048, prefill_ms=48.0))      # under 50 ms
        write(f"{o}/engine_prefill_b1_8192.json", engine_json(1, 8192, prefill_ms=242.0))     # over 220 ms
        write(f"{o}/engine_prefill_b8_8192.json", engine_json(8, 8192, prefill_ms=1503.25))   # goal: runs
        write(f"{o}/engine_prefill_b1_131072.log", "loading\nnvrar-llm: cudaMalloc: out of memory (KV cache)\n"
              "-------\nPrimary job  terminated normally, but 1 process returned\na non-zero exit code.\n-------\n"
              "mpirun detected that one or more processes exited with non-zero status\n\n"
              "  Process name: [[22691,1],0]\n  Exit code:    2\n-----\n")
        write(f"{o}/engine_prefill_b1_32768.log", "nvrar-llm bench: starting\nKilled\n")  # no error word
        write(f"{o}/engine_decode_b1_8192.json", engine_json(1, 8192, prefill_ms=230.0, step_ms=4.2))  # at goal
        write(f"{o}/engine_decode_b8_8192.json", engine_json(8, 8192, prefill_ms=2000.0, step_ms=7.56))
        write(f"{o}/torch_llama.json", {
            "torch": "2.11.0", "card": "NVIDIA H200", "layers": 32, "method": "m",
            "results": [
                {"case": "prefill:1:2048", "status": "ok", "ms_median": 71.04},
                {"case": "prefill:1:131072", "status": "out of memory"},
                {"case": "decode:1:8192", "status": "ok", "ms_median": 6.123},
            ]})
        write(f"{o}/cudnn_attention.json", {
            "torch": "2.11.0", "cudnn": 91500, "method": "m",
            "results": [
                {"case": "prefill:1:8192", "status": "ok", "backend": "cudnn", "ms_model": 28.48, "tflops": 617.4},
                {"case": "decode:1:8192", "status": "ok", "backend": "flash", "ms_model": 0.79, "tb_per_s": 1.359},
            ]})
        text, rows = self.run_table(["prefill:1:2048", "prefill:1:8192", "prefill:8:8192", "prefill:1:32768",
                                     "prefill:1:131072",
                                     "decode:1:8192", "decode:8:8192", "decode:1:32768"])
        self.assertEqual(rows["prefill 1 x 2048"], ["48.00 ms", "71.04 ms", "not run", "<= 50.00 ms", "pass"])
        self.assertEqual(rows["prefill 1 x 8192"],
                         ["242.0 ms", "not run", "28.48 ms (617 TFLOP/s)", "<= 220.0 ms", "miss (+10%)"])
        self.assertEqual(rows["prefill 8 x 8192"], ["1503.2 ms", "not run", "not run", "runs", "pass (ran)"])
        self.assertEqual(rows["prefill 1 x 131072"],
                         ["failed (nvrar-llm: cudaMalloc: out of memory (KV cache))", "out of memory", "not run",
                          "runs", "miss (did not run)"])
        self.assertEqual(rows["prefill 1 x 32768"][0], "failed (Killed)")
        self.assertEqual(rows["decode b1 ctx 8192"],
                         ["4.200 ms", "6.123 ms", "0.790 ms (1.36 TB/s) [flash]", "<= 4.200 ms", "pass"])
        self.assertEqual(rows["decode b8 ctx 8192"], ["7.560 ms", "not run", "not run", "<= 6.300 ms", "miss (+20%)"])
        self.assertEqual(rows["decode b1 ctx 32768"], ["not run", "not run", "not run", "<= 5.000 ms", "not run"])
        # Prefill throughput is derived when the engine does not write it: 1 x 2048 tokens in 48 ms.
        self.assertIn(f"prefill 1 x 2048: {2048 / 0.048:,.0f} prompt tokens/s", text)
        self.assertIn("torch 2.11.0, NVIDIA H200, 32 layers", text)

    def test_engine_fields_and_truncated_model(self):
        o = self.out
        j = engine_json(1, 2048, prefill_ms=20.0, layers=8)
        j.update({"prefill_tokens_per_s": 101234.0, "ttft_ms_median": 21.5,
                  "prefill_breakdown_us": {"gemm": 15000.0, "attention": 3210.0, "allreduce": 500.0, "other": 800.0}})
        write(f"{o}/engine_prefill_b1_2048.json", j)
        write(f"{o}/engine_decode_b8_128.json", engine_json(8, 128, prefill_ms=5.0, step_ms=1.25, layers=8))
        text, rows = self.run_table(["prefill:1:2048", "decode:8:128", "prefill:2:4096"])
        self.assertEqual(rows["prefill 1 x 2048"][0], "20.00 ms")
        self.assertEqual(rows["prefill 1 x 2048"][4], "n/a (8 layers)")
        self.assertEqual(rows["decode b8 ctx 128"], ["1.250 ms", "not run", "not run", "<= 4.400 ms", "n/a (8 layers)"])
        self.assertEqual(rows["prefill 2 x 4096"], ["not run", "not run", "not run", "-", "-"])  # no goal
        self.assertIn("101,234 prompt tokens/s, TTFT 21.50 ms, attention phase 3.210 ms", text)

    def test_goals_only_on_an_h200(self):
        o = self.out
        j = engine_json(1, 2048, prefill_ms=48.0)
        j["card"] = "NVIDIA H100 80GB HBM3"
        write(f"{o}/engine_prefill_b1_2048.json", j)
        j = engine_json(1, 8192, prefill_ms=230.0, step_ms=4.1)
        j["card"] = "NVIDIA H200"
        write(f"{o}/engine_decode_b1_8192.json", j)
        j = engine_json(32, 8192, prefill_ms=3000.0, step_ms=17.0)
        j["card"] = "NVIDIA H200"
        write(f"{o}/engine_decode_b32_8192.json", j)
        _, rows = self.run_table(["prefill:1:2048", "decode:1:8192", "decode:32:8192"])
        self.assertEqual(rows["prefill 1 x 2048"][4], "n/a (goals are for an H200)")
        self.assertEqual(rows["decode b1 ctx 8192"][4], "pass")
        self.assertEqual(rows["decode b32 ctx 8192"][3:], ["runs", "pass (ran)"])

    def test_broken_inputs(self):
        o = self.out
        write(f"{o}/engine_decode_b1_128.json", "{ not json")
        write(f"{o}/engine_prefill_b1_2048.json", engine_json(1, 2048))  # no prefill_ms_median
        write(f"{o}/torch_llama.json", "[")
        _, rows = self.run_table(["decode:1:128", "prefill:1:2048"])
        self.assertEqual(rows["decode b1 ctx 128"][0], "not run")  # unreadable JSON, no log
        self.assertEqual(rows["prefill 1 x 2048"][0], "no prefill_ms_median in engine_prefill_b1_2048.json")
        self.assertEqual(rows["prefill 1 x 2048"][4], "miss (did not run)")
        self.assertEqual(rows["prefill 1 x 2048"][1], "not run")

    def test_bad_case_is_a_usage_error(self):
        for bad in ("prefill:1", "warmup:1:2", "decode:x:128", "decode:0:128"):
            with self.assertRaises(ValueError):
                long_table.parse_case(bad)
        self.assertEqual(long_table.parse_case("decode:8:8192"), ("decode", 8, 8192))

    def test_default_cases_have_goals(self):
        cases = [long_table.parse_case(c) for c in long_table.DEFAULT_CASES]
        self.assertEqual(set(cases), set(long_table.GOALS_MS))


if __name__ == "__main__":
    unittest.main()
