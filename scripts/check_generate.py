#!/usr/bin/env python3
"""Runs `nvrar-llm generate` (greedy) on the model directory of scripts/hf_generate_reference.py and compares its
tokens and text with transformers' (expected.json): each prompt alone (its streamed stdout too), then all prompts as
one batch from prompts.txt. Exit status 0 when everything equals, 1 otherwise.

    python3 scripts/check_generate.py --model-dir DIR [--nvrar-llm build/gpu/tools/nvrar-llm] [--tp 1]
        [--allreduce auto] [--launcher 'mpirun --allow-run-as-root -np 2']"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile


def run(args, extra, json_out):
    cmd = shlex.split(args.launcher) + [args.nvrar_llm, "generate", "--model-dir", args.model_dir, "--temperature", "0",
                                        "--tp", str(args.tp), "--allreduce", args.allreduce, "--json", json_out] + extra
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True)
    sys.stderr.write(p.stderr)
    if p.returncode != 0:
        print(f"FAILED: exit status {p.returncode}")
        return None, p.stdout
    with open(json_out) as f:
        return json.load(f), p.stdout


def compare(label, got_tokens, got_text, want_tokens, want_text, gap):
    if got_tokens == want_tokens and got_text == want_text:
        print(f"{label}: ok, {len(want_tokens)} tokens: {want_text!r}")
        return True
    first = next((i for i, (a, b) in enumerate(zip(got_tokens, want_tokens)) if a != b),
                 min(len(got_tokens), len(want_tokens)))
    print(f"{label}: MISMATCH from new token {first}: ours {got_tokens[first:first + 4]} vs transformers "
          f"{want_tokens[first:first + 4]} (transformers' smallest top-2 logit gap {gap:.3f})\n"
          f"  ours:         {got_text!r}\n  transformers: {want_text!r}")
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--nvrar-llm", default="build/gpu/tools/nvrar-llm")
    ap.add_argument("--tp", type=int, default=1)
    ap.add_argument("--allreduce", default="auto")
    ap.add_argument("--launcher", default="", help="e.g. 'mpirun --allow-run-as-root -np 2' for --tp 2")
    args = ap.parse_args()
    with open(os.path.join(args.model_dir, "expected.json")) as f:
        expected = json.load(f)
    new_tokens = str(max(len(t) for t in expected["tokens"]) or 1)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for i, prompt in enumerate(expected["prompts"]):
            out = os.path.join(tmp, f"p{i}.json")
            got, stdout = run(args, ["--prompt", prompt, "--max-tokens", str(len(expected["tokens"][i]) or 1)], out)
            if got is None:
                ok = False
                continue
            ok &= compare(f"prompt {i}", got["tokens"][0], got["completions"][0], expected["tokens"][i],
                          expected["texts"][i], expected["min_top2_gap"][i])
            if stdout != got["completions"][0] + "\n":
                print(f"prompt {i}: streamed stdout {stdout!r} differs from the completion")
                ok = False
        if len(set(expected["prompt_tokens"])) == 1:
            got, _ = run(args, ["--prompt-file", os.path.join(args.model_dir, "prompts.txt"), "--max-tokens",
                                new_tokens], os.path.join(tmp, "batch.json"))
            if got is None:
                ok = False
            else:
                for i in range(len(expected["prompts"])):  # an EOS stops a sequence early in both
                    ok &= compare(f"batch sequence {i}", got["tokens"][i], got["completions"][i],
                                  expected["tokens"][i], expected["texts"][i], expected["min_top2_gap"][i])
        else:
            print(f"batch: skipped, prompts of different token lengths {expected['prompt_tokens']}")
    print("check_generate: " + ("PASSED" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
