"""GGUF tokenizer metadata -> a tokenizer.json dict and a tokenizer_config.json dict. Standard library
only (CPython and Pyodide).

    tokenizer_json, tokenizer_config = gguf_tokenizer(header)
    HFTokenizer.from_texts(json.dumps(tokenizer_json), json.dumps(tokenizer_config))   # the engine

A GGUF has no tokenizer.json: llama.cpp stores the vocabulary as metadata (tokenizer.ggml.tokens,
token_type, scores, merges, the special ids, add_bos_token, tokenizer.chat_template). Two kinds are
built, as transformers 5.24 builds them for `AutoTokenizer.from_pretrained(dir, gguf_file=...)`
(integrations/gguf/gguf_tokenizer_mapping.py), which is the reference here:

  tokenizer.ggml.model "gpt2"   byte-level BPE (SmolLM2, Llama 3, Qwen2/2.5/3): the vocabulary (a
                                token outside GPT-2's byte alphabet is respelled in it), the merges,
                                ByteLevel decoding, and the split regex that tokenizer.ggml.pre names
                                (llama-bpe, qwen2, ...; GPT-2's own when transformers knows none).
  tokenizer.ggml.model "llama"  SentencePiece BPE (Llama 2, TinyLlama): byte_fallback, Metaspace
                                ("▁", prefix space on the first word), merges from the file or
                                recovered from the scores (transformers' generate_merges).

Added tokens: control tokens (token_type 3) and the bos/eos/unk/pad tokens are special; user-defined
ones (type 4, such as <think>) are added but not special. The post-processor adds BOS (and EOS)
as add_bos_token (add_eos_token) say; for "llama" files add_bos_token defaults to true.

like="llama.cpp" follows llama.cpp (and the original tokenizer the GGUF was converted from) where
transformers does not: the "smollm" family of pre-tokenizers (starcoder, refact, command-r, smollm,
codeshell, exaone, minerva) splits every digit on its own first; "llama-bpe" looks a whole word up
in the vocabulary before merging (ignore_merges); and a "llama" file whose add_space_prefix is
false gets no prefix space. On SmolLM2 the digit split matters where a whitespace run meets a digit:
"Steps:\n\n1." is "\n\n" + "1" in llama.cpp and SmolLM2's own tokenizer.json, "\n" + "\n" + "1" in
transformers' GGUF tokenizer.
"""

from __future__ import annotations

from .byte_level import bytes_to_unicode
from .errors import ModelFormatError
from .safetensors import brief

CONTROL, USER_DEFINED = 3, 4
MAX_SPLIT_TOKEN_CHARS = 1024
SPACE_MARK = "\u2581"

# The split regexes of transformers' GGUF_PRE_TOKENIZER_SPLITS (tokenizer.ggml.pre -> regex).
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
_QWEN35_SPLIT = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}"
    r"| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_TEKKEN_SPLIT = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_GPT4O_SPLIT = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
PRE_TOKENIZER_SPLITS = {
    **dict.fromkeys(("llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
                     "jina-v5-nano", "dbrx", "smaug-bpe"), _LLAMA3_SPLIT),
    "tekken": _TEKKEN_SPLIT,
    **dict.fromkeys(("qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez"), _QWEN2_SPLIT),
    "qwen35": _QWEN35_SPLIT,
    **dict.fromkeys(("gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"), _GPT4O_SPLIT),
}
# llama.cpp's pre-tokenizers that cut every digit apart before GPT-2's regex (llama-vocab.cpp)
DIGIT_SPLIT_PRE = ("starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva")
# llama.cpp's pre-tokenizers that look a whole word up before merging (ignore_merges)
IGNORE_MERGES_PRE = ("llama3", "llama-v3", "llama-bpe")

LIKE = ("transformers", "llama.cpp")


def gguf_tokenizer(header, like: str = "transformers") -> tuple:
    """-> (tokenizer.json dict, tokenizer_config.json dict) built from the file's metadata."""
    if like not in LIKE:
        raise ValueError(f"like must be one of {LIKE}, got {like!r}")
    meta = _TokenizerMeta(header)
    kind = meta.string("tokenizer.ggml.model")
    if kind is None:
        raise meta.fail("tokenizer.ggml.model", "is missing: the file has no tokenizer")
    tokens = meta.string_list("tokenizer.ggml.tokens")
    if not tokens:
        raise meta.fail("tokenizer.ggml.tokens", "is empty")
    token_types = meta.int_list("tokenizer.ggml.token_type", len(tokens))
    special_ids = {name: meta.token_id(f"tokenizer.ggml.{key}", len(tokens))
                   for name, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"),
                                     ("unk", "unknown_token_id"), ("pad", "padding_token_id"))}
    add_bos = meta.boolean("tokenizer.ggml.add_bos_token")
    add_eos = meta.boolean("tokenizer.ggml.add_eos_token")

    if kind == "gpt2":
        pre = meta.string("tokenizer.ggml.pre")
        vocab = _byte_level_vocab(tokens)
        merges = meta.merges(tokens, meta.float_list("tokenizer.ggml.scores", len(tokens)))
        spelled = set(bytes_to_unicode().values())
        control = [i for i, t in enumerate(token_types or ()) if t == CONTROL and set(tokens[i]) <= spelled]
        tokenizer = _bpe_json(vocab, merges, unk=None, byte_fallback=False, fuse_unk=False,
                              ignore_merges=like == "llama.cpp" and pre in IGNORE_MERGES_PRE)
        tokenizer["pre_tokenizer"] = _byte_level_pre_tokenizer(pre, like)
        tokenizer["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                                "use_regex": True}
    elif kind == "llama":
        vocab = {token: index for index, token in enumerate(tokens)}
        scores = meta.float_list("tokenizer.ggml.scores", len(tokens))
        merges = meta.merges(tokens, scores)
        control = [i for i, t in enumerate(token_types or ()) if t == CONTROL]
        prefix = meta.boolean("tokenizer.ggml.add_space_prefix")
        prefix = True if like == "transformers" or prefix is None else prefix
        tokenizer = _bpe_json(vocab, merges, unk=None, byte_fallback=True, fuse_unk=True, ignore_merges=False)
        tokenizer["pre_tokenizer"] = {"type": "Metaspace", "replacement": SPACE_MARK,
                                      "prepend_scheme": "first" if prefix else "never", "split": False}
        steps = [{"type": "Replace", "pattern": {"String": SPACE_MARK}, "content": " "},
                 {"type": "ByteFallback"}, {"type": "Fuse"}]
        if prefix:
            steps.append({"type": "Strip", "content": " ", "start": 1, "stop": 0})
        tokenizer["decoder"] = {"type": "Sequence", "decoders": steps}
        if add_bos is None:  # llama.cpp adds BOS to a SentencePiece vocabulary that does not say otherwise
            add_bos = True
    else:
        raise meta.fail("tokenizer.ggml.model", f"is {brief(kind)}; supported: 'gpt2' (byte-level BPE) and "
                                                f"'llama' (SentencePiece BPE)")

    names = {name: (tokens[i] if i is not None else None) for name, i in special_ids.items()}
    special = set(control) | {i for i in special_ids.values() if i is not None}
    user = [i for i, t in enumerate(token_types or ()) if t == USER_DEFINED and i not in special]
    tokenizer["added_tokens"] = [
        {"id": i, "content": tokens[i], "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": i in special}
        for i in sorted(special | set(user)) if vocab.get(tokens[i]) == i
    ]
    add_bos = bool(add_bos) and names["bos"] is not None
    add_eos = bool(add_eos) and names["eos"] is not None
    tokenizer["post_processor"] = _template(names, special_ids, add_bos, add_eos)

    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": names["bos"],
        "eos_token": names["eos"],
        "unk_token": names["unk"],
        "pad_token": names["pad"],
        "add_bos_token": add_bos,
        "add_eos_token": add_eos,
        "clean_up_tokenization_spaces": False,
    }
    template = meta.string("tokenizer.chat_template")
    if template is not None:
        config["chat_template"] = template
    return _ordered(tokenizer), config


class _TokenizerMeta:
    def __init__(self, header):
        self.metadata = header.metadata
        self.types = header.metadata_types
        self.filename = header.filename

    def fail(self, key: str, what: str) -> ModelFormatError:
        return ModelFormatError(f"{self.filename}: metadata {key} {what}")

    def _typed(self, key: str, kinds: tuple):
        if key not in self.metadata:
            return None
        if self.types[key] not in kinds:
            raise self.fail(key, f"must be a {' or '.join(kinds)}, got a {self.types[key]}")
        return self.metadata[key]

    def string(self, key: str):
        return self._typed(key, ("str",))

    def boolean(self, key: str):
        return self._typed(key, ("bool",))

    def string_list(self, key: str):
        return self._typed(key, ("array[str]",))

    def _list(self, key: str, kinds: tuple, length: int):
        values = self._typed(key, tuple(f"array[{k}]" for k in kinds))
        if values is not None and len(values) != length:
            raise self.fail(key, f"has {len(values)} entries for {length} tokens")
        return values

    def int_list(self, key: str, length: int):
        return self._list(key, ("i32", "u32", "i8", "u8", "i16", "u16", "i64", "u64"), length)

    def float_list(self, key: str, length: int):
        return self._list(key, ("f32", "f64"), length)

    def token_id(self, key: str, vocab_size: int):
        value = self._typed(key, ("u32", "i32", "u64", "i64", "u16", "i16", "u8", "i8"))
        if value is not None and not 0 <= value < vocab_size:
            raise self.fail(key, f"is {value}, outside the {vocab_size} tokens")
        return value

    def merges(self, tokens: list, scores) -> list:
        """The file's merges, or (as transformers does without them) every split of a token into two
        tokens, ranked by the tokens' scores."""
        raw = self.string_list("tokenizer.ggml.merges")
        if raw is None:
            if scores is None:
                raise self.fail("tokenizer.ggml.merges", "is missing, and there are no scores to rank merges by")
            longest = max(len(token) for token in tokens)
            if longest > MAX_SPLIT_TOKEN_CHARS:  # every split of every token is tried: keep that bounded
                raise self.fail("tokenizer.ggml.tokens", f"has a token of {longest:,} characters; merges are "
                                                         f"recovered only for tokens up to {MAX_SPLIT_TOKEN_CHARS:,}")
            return generate_merges({token: index for index, token in enumerate(tokens)}, dict(zip(tokens, scores)))
        merges = []
        for index, merge in enumerate(raw):
            parts = merge.split(" ")
            if len(parts) != 2 or not all(parts):
                raise self.fail("tokenizer.ggml.merges", f"item {index} ({brief(merge)}) is not two tokens "
                                                         f"separated by one space")
            merges.append(parts)
        return merges


def _byte_level_vocab(tokens: list) -> dict:
    """token -> id; a token using characters outside GPT-2's byte alphabet is respelled through it
    (its UTF-8 bytes), as transformers does."""
    spelling = bytes_to_unicode()
    alphabet = set(spelling.values())
    vocab = {}
    for index, token in enumerate(tokens):
        if not set(token) <= alphabet:
            token = "".join(spelling[byte] for byte in token.encode("utf-8", "surrogatepass"))
        vocab[token] = index
    return vocab


def generate_merges(vocab: dict, vocab_scores: dict | None = None) -> list:
    """transformers' generate_merges: every split of a token into two tokens, ranked by the
    token's score (highest first; without scores, by the token's id, lowest first), ties by the
    lengths of the two parts, then by the parts' ids."""
    reverse = vocab_scores is not None
    scores = vocab_scores if reverse else vocab
    merges = []
    for merge, score in scores.items():
        local = []
        for index in range(1, len(merge)):
            left, right = merge[:index], merge[index:]
            if left in vocab and right in vocab:
                local.append((left, right, score))
        local.sort(key=lambda m: (vocab[m[0]], vocab[m[1]]))
        merges.extend(local)
    merges.sort(key=lambda m: (m[2], len(m[0]), len(m[1])), reverse=reverse)
    return [[left, right] for left, right, _ in merges]


def _bpe_json(vocab: dict, merges: list, unk, byte_fallback: bool, fuse_unk: bool, ignore_merges: bool) -> dict:
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "normalizer": None,
        "model": {"type": "BPE", "dropout": None, "unk_token": unk, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": fuse_unk, "byte_fallback": byte_fallback,
                  "ignore_merges": ignore_merges, "vocab": vocab, "merges": merges},
    }


def _byte_level_pre_tokenizer(pre, like: str) -> dict:
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    split = PRE_TOKENIZER_SPLITS.get(pre)
    if split is not None:
        return {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": split}, "behavior": "Isolated", "invert": False},
            dict(byte_level, use_regex=False)]}
    if like == "llama.cpp" and pre in DIGIT_SPLIT_PRE:
        return {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, byte_level]}
    return byte_level


def _template(names: dict, ids: dict, add_bos: bool, add_eos: bool) -> dict:
    def special(name, type_id):
        return {"SpecialToken": {"id": names[name], "type_id": type_id}}

    single, pair = [], []
    if add_bos:
        single.append(special("bos", 0))
    single.append({"Sequence": {"id": "A", "type_id": 0}})
    if add_eos:
        single.append(special("eos", 0))
    pair = list(single)
    if add_bos:
        pair.append(special("bos", 1))
    pair.append({"Sequence": {"id": "B", "type_id": 1}})
    if add_eos:
        pair.append(special("eos", 1))
    tokens = {}
    for name, wanted in (("bos", add_bos), ("eos", add_eos)):
        if wanted:
            tokens[names[name]] = {"id": names[name], "ids": [ids[name]], "tokens": [names[name]]}
    return {"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": tokens}


def _ordered(tokenizer: dict) -> dict:
    """tokenizer.json's key order, as the tokenizers package writes it."""
    order = ("version", "truncation", "padding", "added_tokens", "normalizer", "pre_tokenizer", "post_processor",
             "decoder", "model")
    return {key: tokenizer[key] for key in order}
