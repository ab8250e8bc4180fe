#!/usr/bin/env python3
"""CPU test of scripts/precision_model.py, the numerics model of `nvrar-llm check`: every rounding it switches off
really is off, the ones it keeps really round, and its attention forms agree with a plain softmax attention.

    python3 scripts/test_precision_model.py        (exit 77, skipped, where torch is not installed)"""
import os
import sys
import unittest

try:
    import torch
except ImportError:
    print("test_precision_model.py: torch is not installed; skipped")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import precision_model as pm  # noqa: E402

ALL_FIXES = pm.FIXES


def logits(case, seed, kind, fixes=()):
    return pm.forward(pm.make_model(case, seed), pm.Numerics(kind, fixes))


class PrecisionModelTest(unittest.TestCase):
    def test_bf16_rounds_to_nearest_even(self):
        one = torch.tensor([1.0, 1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, 1.0 + 2.0 ** -9], dtype=torch.float64)
        # spacing of bf16 at 1 is 2^-7: a half-way value goes to the even neighbour
        self.assertEqual(pm.bf16(one).tolist(), [1.0, 1.0, 1.0 + 2.0 ** -6, 1.0])

    def test_weights_are_bf16_values(self):
        model = pm.make_model("p1", 3)
        for w in [model["embed"], model["head"]] + list(model["layers"][0].values()):
            self.assertTrue(torch.equal(pm.bf16(w), w))

    def test_no_rounding_left_equals_the_truth(self):
        # The engine with every rounding removed (and RMSNorm's, the one rounding the GEMM inputs need) is the truth
        # up to float64's own summation order: the switches cover every place the model rounds.
        for case in ("p1", "p300_tied"):
            truth = logits(case, 1, "truth")
            exact = logits(case, 1, "nvrar", ALL_FIXES + ("norm",))
            prefill_bf16_probabilities = (exact - truth).abs().max().item()
            # the prefill rows' bf16 probabilities are the one rounding the switches do not cover
            if case == "p1":
                self.assertLess(prefill_bf16_probabilities, 1e-9, case)
            else:
                self.assertGreater(prefill_bf16_probabilities, 0, case)

    def test_each_switch_changes_something(self):
        base = logits("p1", 2, "nvrar")
        for fix in ALL_FIXES + ("norm",):
            if fix == "norm":  # RMSNorm weights are ones in these models, so the product rounds nothing extra
                continue
            changed = (logits("p1", 2, "nvrar", (fix,)) - base).abs().max().item()
            self.assertGreater(changed, 0, fix)

    def test_bf16_runs_err_but_close(self):
        truth = logits("p300_tied", 0, "truth")
        scale = truth.abs().max().item()
        for kind in ("transformers", "nvrar"):
            err = (logits("p300_tied", 0, kind) - truth).abs().max().item()
            self.assertGreater(err, 1e-4 * scale, kind)
            self.assertLess(err, 0.1 * scale, kind)

    def test_attention_forms_agree_without_rounding(self):
        g = torch.Generator().manual_seed(5)
        T, H, KV, D = 7, 4, 2, 8
        q = torch.randn(T, H, D, generator=g, dtype=torch.float64)
        k = torch.randn(T, KV, D, generator=g, dtype=torch.float64)
        v = torch.randn(T, KV, D, generator=g, dtype=torch.float64)
        plain = torch.zeros(T, H, D, dtype=torch.float64)
        for t in range(T):
            for h in range(H):
                kv = h // (H // KV)
                w = torch.softmax(k[: t + 1, kv] @ q[t, h] / D ** 0.5, 0)
                plain[t, h] = w @ v[: t + 1, kv]
        truth = pm.Numerics("truth").attention(q, k, v, prompt_len=4)
        flash = pm.Numerics("nvrar", ALL_FIXES).attention(q, k, v, prompt_len=0)  # no prefill rows: no rounding
        self.assertLess((truth - plain).abs().max().item(), 1e-12)
        self.assertLess((flash - plain).abs().max().item(), 1e-12)

    def test_rope_without_rounding_is_a_rotation(self):
        num = pm.Numerics("truth")
        x = torch.randn(5, 3, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
        y = num.rope(x, torch.arange(5), pm.inv_freq(16, plain=True), pm.identity)
        # each (i, i + 8) pair keeps its length
        n_x = x[..., :8] ** 2 + x[..., 8:] ** 2
        n_y = y[..., :8] ** 2 + y[..., 8:] ** 2
        self.assertLess((n_x - n_y).abs().max().item(), 1e-12)
        self.assertTrue(torch.equal(y[0], x[0]))  # position 0: no rotation


if __name__ == "__main__":
    unittest.main()
