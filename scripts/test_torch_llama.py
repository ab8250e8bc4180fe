#!/usr/bin/env python3
"""CPU test of the PyTorch reference's model code (scripts/bench_torch_llama.py), at toy sizes in float32: decoding
one token against the cache must give what a prefill of the longer prompt gives at its last position.

    python3 scripts/test_torch_llama.py        (exit 77, skipped, where torch is not installed)

What it pins down: the K/V cache write at a tensor position, the length mask (cache slots past the position hold
garbage and must not count), each decode attention form (folded query heads, enable_gqa, repeated K/V) against the
prefill's enable_gqa / repeated K/V, RoPE at the decode position, and the decode step's greedy token. Where torch
predates F.scaled_dot_product_attention (e.g. Debian's 1.13), a plain reference of its documented semantics stands
in."""
import math
import os
import sys
import unittest

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("test_torch_llama.py: torch is not installed; skipped")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_torch_llama as ref  # noqa: E402


def reference_sdpa(q, k, v, attn_mask=None, is_causal=False, enable_gqa=False):
    """torch's documented semantics: softmax(q k^T / sqrt(d) + mask) v, K/V repeated per group under enable_gqa."""
    if enable_gqa:
        k = k.repeat_interleave(q.shape[-3] // k.shape[-3], dim=-3)
        v = v.repeat_interleave(q.shape[-3] // v.shape[-3], dim=-3)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if is_causal:
        keep = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()
        scores = scores.masked_fill(~keep, float("-inf"))
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    return scores.softmax(-1) @ v


if not hasattr(F, "scaled_dot_product_attention"):
    F.scaled_dot_product_attention = reference_sdpa


class DecodeMatchesPrefill(unittest.TestCase):
    def setUp(self):
        # Toy shapes with Llama-3's proportions: 4 query heads share each of 2 KV heads.
        self.saved = {k: getattr(ref, k) for k in ("HIDDEN", "HEADS", "KV_HEADS", "GROUP", "HEAD_DIM", "FFN", "VOCAB",
                                                   "DEVICE", "DTYPE")}
        ref.HIDDEN, ref.HEADS, ref.KV_HEADS, ref.HEAD_DIM, ref.FFN, ref.VOCAB = 64, 8, 2, 8, 96, 50
        ref.GROUP = ref.HEADS // ref.KV_HEADS
        ref.DEVICE, ref.DTYPE = "cpu", torch.float32
        torch.manual_seed(0)
        self.model = ref.Model(2, seed=1)
        for layer in self.model.layers:  # norms other than 1, so a missing or misplaced norm shows
            layer.attn_norm.uniform_(0.5, 1.5)
            layer.mlp_norm.uniform_(0.5, 1.5)
        self.model.final_norm.uniform_(0.5, 1.5)
        self.cos, self.sin = ref.rope_tables(64)

    def tearDown(self):
        for k, v in self.saved.items():
            setattr(ref, k, v)

    def prefill(self, prompt, k_cache, v_cache, gqa):
        t = prompt.shape[1]
        h = F.embedding(prompt, self.model.embed)
        cos, sin = self.cos[:t].view(1, t, 1, -1), self.sin[:t].view(1, t, 1, -1)
        for i, layer in enumerate(self.model.layers):
            h = ref.prefill_layer(h, layer, k_cache[i], v_cache[i], cos, sin, gqa)
        return h

    def test_decode_step_equals_prefill_of_the_longer_prompt(self):
        batch, t, max_seq = 3, 11, 32
        prompt = torch.randint(0, ref.VOCAB, (batch, t + 1))
        for gqa in ("native", "repeat"):
            with self.subTest(gqa=gqa):
                # Random cache contents: slots past the decode position must be masked out.
                k_full, v_full = ref.new_cache(self.model, batch, max_seq, fill=True)
                h_full = self.prefill(prompt, k_full, v_full, gqa)
                k_cache, v_cache = ref.new_cache(self.model, batch, max_seq, fill=True)
                self.prefill(prompt[:, :t], k_cache, v_cache, gqa)
                step = ref.build_decode_step(self.model, ref.decode_layer, prompt[:, t:], k_cache, v_cache,
                                             self.cos, self.sin, t, "folded")
                token = step()
                want = ref.head(h_full, self.model.final_norm, self.model.lm_head)
                self.assertEqual(token.tolist(), want.tolist())
                for i in range(len(self.model.layers)):  # the step wrote K/V of position t as the prefill did
                    torch.testing.assert_close(k_cache[i][:, :, : t + 1], k_full[i][:, :, : t + 1])
                    torch.testing.assert_close(v_cache[i][:, :, : t + 1], v_full[i][:, :, : t + 1])

    def test_decode_hidden_state_equals_prefill(self):
        batch, t, max_seq = 2, 7, 16
        prompt = torch.randint(0, ref.VOCAB, (batch, t + 1))
        k_full, v_full = ref.new_cache(self.model, batch, max_seq, fill=True)
        h_full = self.prefill(prompt, k_full, v_full, "native")
        k_cache, v_cache = ref.new_cache(self.model, batch, max_seq, fill=True)
        self.prefill(prompt[:, :t], k_cache, v_cache, "native")
        pos = torch.tensor([t])
        mask = (torch.arange(max_seq) <= pos).view(1, 1, 1, max_seq)
        cos, sin = self.cos.index_select(0, pos).view(1, 1, 1, -1), self.sin.index_select(0, pos).view(1, 1, 1, -1)
        for form in ref.DECODE_FORMS:
            with self.subTest(form=form):
                k_form, v_form = [k.clone() for k in k_cache], [v.clone() for v in v_cache]
                h = F.embedding(prompt[:, t:], self.model.embed)
                for i, layer in enumerate(self.model.layers):
                    h = ref.decode_layer(h, *layer.args(), k_form[i], v_form[i], cos, sin, pos, mask, form)
                torch.testing.assert_close(h[:, 0], h_full[:, t], rtol=1e-5, atol=1e-5)
        # And the mask matters: with every slot visible the garbage past t changes the result.
        h_bad = F.embedding(prompt[:, t:], self.model.embed)
        k_cache2, v_cache2 = ref.new_cache(self.model, batch, max_seq, fill=True)
        self.prefill(prompt[:, :t], k_cache2, v_cache2, "native")
        everything = torch.ones(1, 1, 1, max_seq, dtype=torch.bool)
        for i, layer in enumerate(self.model.layers):
            h_bad = ref.decode_layer(h_bad, *layer.args(), k_cache2[i], v_cache2[i], cos, sin, pos, everything,
                                     "folded")
        self.assertGreater((h_bad[:, 0] - h_full[:, t]).abs().max().item(), 1e-3)


if __name__ == "__main__":
    unittest.main()
