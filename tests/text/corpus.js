// The tokenizer comparison corpus (deterministic): English prose, source code, CJK, Arabic, Devanagari, emoji and
// combining marks, whitespace runs, digits of every length, contractions, special-token strings, and seeded random
// Unicode. Used by llama3_reference.js; scripts/hf_tokenizer_check.py builds a corpus of the same kinds in Python.
"use strict";

// mulberry32: a small seeded generator, so that every run builds the same corpus.
function makeRandom(seed) {
  let a = seed >>> 0;
  return function () {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const prose = [
  "The lighthouse keeper climbed the spiral stairs every evening at dusk, counting the steps out of habit rather " +
    "than need. There were one hundred and twelve of them, worn smooth in the middle by a century of boots.",
  "When the committee finally met, nobody could remember who had called the meeting. \"Perhaps it was you,\" " +
    "said Margaret, peering over her glasses. \"It certainly wasn't me.\"",
  "Rain fell on the harbour for three days; the fishing boats stayed tied up, their crews playing cards in the " +
    "back room of the Anchor & Crown until the landlord ran out of patience (and beer).",
  "In 1969, roughly 600 million people watched the landing. Today's phones carry more computing power than the " +
    "whole mission control room had - a fact that is repeated so often it has almost lost its meaning.",
  "She said: 'We'll see.' He replied, 'You'd better!' They'd both known it wasn't over; it's never over.",
  "Mr. O'Neill's report (pp. 14-27) lists 3,482 items at $12.50 each, i.e. $43,525.00 in total - +7% vs. 2022.",
];

const code = [
  "int main(int argc, char** argv) {\n  for (int i = 0; i < argc; ++i) {\n    std::printf(\"%s\\n\", argv[i]);\n" +
    "  }\n  return 0;\n}\n",
  "def fibonacci(n: int) -> list[int]:\n    a, b = 0, 1\n    out = []\n    while len(out) < n:\n" +
    "        out.append(a)\n        a, b = b, a + b\n    return out\n\nprint(fibonacci(10))  # [0, 1, 1, 2, ...]\n",
  "const x = arr.map((v) => v * 2).filter((v) => v !== 0 && v <= 0xFF);\nif (x?.length >= 3) { console.log(`ok ${x}`); }",
  "SELECT u.id, COUNT(*) AS n FROM users u JOIN orders o ON o.user_id = u.id WHERE o.total > 100.0 GROUP BY u.id;",
  "<html>\n\t<body class=\"main\">\n\t\t<p>Hello &amp; welcome</p><!-- comment -->\n\t</body>\n</html>\n",
  "fn main() {\r\n    let v: Vec<u8> = vec![0; 1024];\r\n    println!(\"{:?}\", &v[..4]);\r\n}\r\n",
  "    x = {'a': [1, 2.5e-3, -4], \"b\": None}\n\t\ty=x['a'][0]**2//3%7\n",
  "#!/bin/bash\nset -euo pipefail\nfor f in *.txt; do wc -l \"$f\" | awk '{print $1}' >> counts.log; done\n",
];

const scripts = [
  "今天天气很好，我们去公园散步吧。人工智能正在改变世界的许多方面。",
  "東京は日本の首都です。ひらがなとカタカナ、そして漢字を使います。コンピューターが好きです。",
  "안녕하세요. 저는 학생입니다. 한국어를 배우고 있어요!",
  "اللغة العربية جميلة جدا. مرحبا بكم في المدينة، كيف حالكم اليوم؟ ١٢٣٤٥",
  "हिन्दी भारत की एक प्रमुख भाषा है। नमस्ते, आप कैसे हैं? मैं ठीक हूँ।",
  "Привет, мир! Как дела? Ёжик в тумане.",
  "Γειά σου κόσμε· η γλώσσα είναι ελληνική.",
  "שלום עולם, מה שלומך?",
  "สวัสดีครับ ภาษาไทยไม่มีช่องว่างระหว่างคำ",
  "Tiếng Việt có dấu: Nguyễn, Đà Nẵng, phở bò.",
  "Ça va? Größe, naïve café, smørrebrød, Łódź, İstanbul, ß, ǅ, ﬁ ligature.",
];

const emojiAndMarks = [
  "I love pizza 🍕🍕 and tacos 🌮! 👍🏽👩‍💻👨‍👩‍👧‍👦 🇫🇷🇯🇵 ❤️ ✔︎ 1️⃣",
  "🤗🤖🧠🚀🔥💯🎉 emoji only 😀😃😄😁😆😅😂🤣",
  "e\u0301 a\u0300 n\u0303 o\u0308 Z\u0351\u0352\u0357a\u0336\u0317l\u0334\u0325g\u0335o\u0327 (combining marks)",
  "क्षत्रिय and \u0915\u094d\u200d\u0937 (zero-width joiner), \u200bzero\u200bwidth\u200bspace\ufeffBOM",
  "Math: ∑ᵢ xᵢ² ≤ ∞, ∀ε>0 ∃δ; ℝ ⊂ ℂ; ½ ¾ ⅔; ①②③; 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝐛𝐨𝐥𝐝",
];

const contractions = [
  "I'm you're he's she's it's we're they're I've you've we've I'd you'd he'll she'll they'll don't can't won't",
  "I'M YOU'RE HE'S IT'S WE'VE THEY'LL DON'T CAN'T isn't AREN'T wasn'T",
  "it’s don’t (curly apostrophes) 's 't 're 've 'm 'll 'd 'x ''s '''",
  "the dog's bone, James' car, the '90s, rock 'n' roll, 'quoted', o'clock",
];

const specials = [
  "<|begin_of_text|>Hello<|end_of_text|>",
  "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
  "<|eot_id|><|eot_id|>x<|eot_id|> <|eot_id|>\n<|eot_id|>",
  "<|reserved_special_token_0|><|reserved_special_token_250|><|python_tag|><|finetune_right_pad_id|><|eom_id|>",
  "<|eot_id <|eot_id|| <<|eot_id|>> <|EOT_ID|> < |eot_id|> <|begin_of_text",
  "text before<|start_header_id|>system<|end_header_id|>text after",
];

function whitespaceCases() {
  const out = [];
  for (const n of [1, 2, 3, 4, 5, 7, 8, 15, 16, 31, 64]) {
    out.push({ name: `spaces_${n}`, text: "a" + " ".repeat(n) + "b" + " ".repeat(n) });
    out.push({ name: `newlines_${n}`, text: "x" + "\n".repeat(n) + "y" });
    out.push({ name: `tabs_${n}`, text: "\t".repeat(n) + "z" });
  }
  out.push({ name: "ws_mix_1", text: " \n \t\r\n  \n\n\t\t x  \r\r\n y\u00a0\u00a0z\u3000\u3000w\u2003\u2009." });
  out.push({ name: "ws_mix_2", text: "   leading and trailing   " });
  out.push({ name: "ws_mix_3", text: "line one\n\n\n  line two  \n\t\tindented\n \n" });
  out.push({ name: "ws_only", text: " \t \n " });
  out.push({ name: "ws_vt_ff", text: "a\u000bb\u000cc\u001cd\u0085e\u2028f\u2029g" });
  return out;
}

function digitCases() {
  const out = [];
  let digits = "";
  for (let n = 1; n <= 40; ++n) {
    digits += String((n * 7) % 10);
    out.push({ name: `digits_${n}`, text: digits });
    out.push({ name: `digits_${n}_words`, text: `a${digits}b ${digits}.${digits} -${digits}` });
  }
  out.push({ name: "digits_mixed", text: "3.14159 1,000,000 1e-10 0x1F 2024-06-07 12:34:56 v1.2.3 ١٢٣ ४५६ ①" });
  return out;
}

// Random strings: code points drawn from ranges weighted toward scripts that exercise the pre-tokenizer's classes.
function randomUnicode(random, count) {
  const ranges = [
    [0x20, 0x7e], [0x09, 0x0d], [0xa0, 0x24f], [0x300, 0x36f], [0x370, 0x52f], [0x590, 0x6ff], [0x900, 0x97f],
    [0xe00, 0xe7f], [0x1100, 0x11ff], [0x2000, 0x206f], [0x2100, 0x27bf], [0x3000, 0x30ff], [0x4e00, 0x9fff],
    [0xac00, 0xd7a3], [0xf900, 0xfaff], [0xfe00, 0xfe0f], [0xff00, 0xffef], [0x1d400, 0x1d7ff], [0x1f300, 0x1faff],
    [0x20000, 0x2a6df], [0x10000, 0x10ffff],
  ];
  const out = [];
  for (let i = 0; i < count; ++i) {
    const length = 1 + Math.floor(random() * 60);
    let text = "";
    for (let k = 0; k < length; ++k) {
      const [lo, hi] = ranges[Math.floor(random() * ranges.length)];
      let cp = lo + Math.floor(random() * (hi - lo + 1));
      if (cp >= 0xd800 && cp <= 0xdfff) cp = 0x41;  // no lone surrogates: not valid UTF-8
      text += String.fromCodePoint(cp);
    }
    out.push({ name: `random_unicode_${i}`, text });
  }
  // Bytes of ASCII punctuation and letters in random order: the pre-tokenizer's alternatives at every boundary.
  const ascii = " !\"#$%&'()*+,-./0123456789:;<=>?@ABCXYZabcxyz[\\]^_`{|}~\n\t\r'sSdDmM";
  for (let i = 0; i < count; ++i) {
    let text = "";
    const length = 1 + Math.floor(random() * 80);
    for (let k = 0; k < length; ++k) text += ascii[Math.floor(random() * ascii.length)];
    out.push({ name: `random_ascii_${i}`, text });
  }
  return out;
}

function buildCorpus() {
  const random = makeRandom(12345);
  const named = (prefix, list) => list.map((text, i) => ({ name: `${prefix}_${i}`, text }));
  const corpus = [
    ...named("prose", prose),
    ...named("code", code),
    ...named("script", scripts),
    ...named("emoji_marks", emojiAndMarks),
    ...named("contractions", contractions),
    ...named("specials", specials),
    ...whitespaceCases(),
    ...digitCases(),
    ...randomUnicode(random, 300),
    { name: "empty", text: "" },
    { name: "long_letters", text: "a".repeat(3000) },
    { name: "long_cjk", text: scripts[0].repeat(40) },
    { name: "long_symbols", text: "=-".repeat(700) + "*".repeat(500) },
    { name: "all_prose", text: prose.join("\n\n") },
  ];
  return corpus;
}

module.exports = { buildCorpus, makeRandom };
