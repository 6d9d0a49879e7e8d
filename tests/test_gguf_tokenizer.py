"""app/gguf_tokenizer.py: the tokenizer.json built from GGUF metadata loads in the `tokenizers`
package and encodes and decodes a few hundred varied texts exactly as transformers' own GGUF
tokenizer (`AutoTokenizer.from_pretrained(dir, gguf_file=...)`) does: on the real SmolLM2 file, on
GPT-2's byte-level vocabulary under several pre-tokenizer names, and on a SentencePiece vocabulary."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import gguf  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

import gguf_files as gf  # noqa: E402
from app.errors import ModelFormatError  # noqa: E402
from app.gguf import read_gguf_header  # noqa: E402
from app.gguf_tokenizer import gguf_tokenizer  # noqa: E402
from app.hf_tokenizer import HFTokenizer  # noqa: E402

SPECIAL_STRINGS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<s>", "</s>", "<unk>",
                   "<|user|>"]


def varied_texts(count: int = 300, seed: int = 0) -> list:
    """Hand-picked edge cases, then random mixes of scripts, digits, whitespace runs, punctuation,
    contractions, emoji, combining marks and special-token strings."""
    texts = ["", " ", "  ", "\n", "\t\t", "Hello world", "Hello, world!", " leading space", "trailing space ",
             "a  b   c    d", "line1\nline2\r\nline3\n\n\n", "2024-12-31 12:34:56.789", "1234567890 3.14159 -42",
             "I'm sure they'll say we've done it, didn't they? IT'S FINE.", "def f(x):\n    return x ** 2  # square",
             "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00c5ngstr\u00f6m", "\u65e5\u672c\u8a9e\u306e\u6587\u7ae0\u3002",
             "\u0417\u0434\u0440\u0430\u0432\u0441\u0442\u0432\u0443\u0439, \u043c\u0438\u0440",
             "\U0001f600\U0001f389 ok",
             "e\u0301 combining", "\u00a0non-breaking\u2003spaces\u3000", "<|im_start|>user\nHi!<|im_end|>\n",
             "<think>\nhmm\n</think>", "<s> [INST] hi [/INST]", "x<|endoftext|>y", "\U0001f9d1\u200d\U0001f4bb",
             "https://example.com/a?b=c&d=e", "    indented code", "ALLCAPS lowercase MiXeD", "\u0000\u0001 ctl"]
    rng = random.Random(seed)
    pieces = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") * 3
              + list(" \n\t.,;:!?'\"-()[]{}<>|_/\\@#$%^&*+=~`") * 2
              + list("\u00e9\u00e8\u00e0\u00fc\u00f6\u00f1\u00e7\u00df\u00c6\u00d8\u00c5\u0416\u0436\u03a9\u03c9")
              + list("\u65e5\u672c\u8a9e\u4e2d\u6587\ud55c\uad6d\uc5b4\u0627\u0644\u0639\u0631\u0628\u064a\u0629")
              + ["\U0001f600", "\U0001f389", "\u2764\ufe0f", "e\u0301", "  ", "\n\n", "'s", "'ll", "'RE", "123",
                 "2024", " the", " and", "ing", "tion"] + SPECIAL_STRINGS)
    while len(texts) < count:
        texts.append("".join(rng.choice(pieces) for _ in range(rng.randint(1, 60))))
    return texts


TEXTS = varied_texts()


def write_tokenizer_gguf(path: Path, tokens, token_types, *, model="gpt2", pre=None, merges=None, scores=None,
                         special=None, add_space_prefix=None) -> Path:
    """A llama GGUF with this tokenizer metadata (and a tiny embedding, so the file is a model)."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_context_length(64)
    writer.add_embedding_length(8)
    writer.add_feed_forward_length(16)
    writer.add_head_count(2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model(model)
    if pre is not None:
        writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(token_types)
    if merges is not None:
        writer.add_token_merges(merges)
    if scores is not None:
        writer.add_token_scores(scores)
    if add_space_prefix is not None:
        writer.add_add_space_prefix(add_space_prefix)
    for key, value in (special or {}).items():
        getattr(writer, f"add_{key}")(value)
    writer.add_tensor("token_embd.weight", np.zeros((len(tokens), 8), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def transformers_tokenizer(path: Path):
    import transformers
    from transformers import AutoTokenizer

    transformers.logging.set_verbosity_error()
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def ours(path: Path, like="transformers"):
    tokenizer_json, config = gguf_tokenizer(read_gguf_header(path), like=like)
    return Tokenizer.from_str(json.dumps(tokenizer_json)), tokenizer_json, config


def assert_same_as_transformers(path: Path, texts=TEXTS):
    reference = transformers_tokenizer(path)
    mine, tokenizer_json, config = ours(path)
    for text in texts:
        want = reference.encode(text)
        got = mine.encode(text).ids
        assert got == want, f"{text!r}: {got} != {want}"
        assert mine.decode(got, skip_special_tokens=False) == reference.decode(want), repr(text)
        assert mine.decode(got, skip_special_tokens=True) == reference.decode(want, skip_special_tokens=True)
    for name in ("bos_token", "eos_token", "unk_token", "pad_token"):
        assert config[name] == getattr(reference, name), name
    assert config["add_bos_token"] == reference.add_bos_token
    return reference, mine, tokenizer_json, config


# ------------------------------------------------------------------------------ the real file


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    folder = tmp_path_factory.mktemp("smollm2")
    link = folder / "smollm2.gguf"
    link.symlink_to(gf.smollm2_gguf())
    return link


def test_smollm2_tokenizer_equals_transformers(smollm2, tmp_path):
    """The real SmolLM2 tokenizer: ids and decoded text equal transformers' GGUF tokenizer on 300
    texts; the special tokens, add_bos_token false and the chat template are the file's; written as
    files, AutoTokenizer reads it back with the same ids and renders the same chat."""
    reference, mine, tokenizer_json, config = assert_same_as_transformers(smollm2)
    assert (config["bos_token"], config["eos_token"], config["unk_token"]) == ("<|im_start|>", "<|im_end|>",
                                                                                "<|endoftext|>")
    assert config["add_bos_token"] is False
    header = read_gguf_header(smollm2)
    assert config["chat_template"] == header.metadata["tokenizer.chat_template"] == reference.chat_template
    assert len(tokenizer_json["model"]["vocab"]) == 49152 and len(tokenizer_json["model"]["merges"]) == 48900
    specials = [t["content"] for t in tokenizer_json["added_tokens"] if t["special"]]
    assert specials[:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

    from transformers import AutoTokenizer

    (tmp_path / "tokenizer.json").write_text(json.dumps(tokenizer_json), encoding="utf-8")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    again = AutoTokenizer.from_pretrained(str(tmp_path))
    assert all(again.encode(text) == reference.encode(text) for text in TEXTS[:100])
    chat = [{"role": "user", "content": "What is 2+2?"}]
    assert again.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) == \
        reference.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)


def test_smollm2_like_llama_cpp_differs_only_at_whitespace_before_digits(smollm2):
    """like='llama.cpp' splits digits first for SmolLM2 (its pre-tokenizer "smollm", as llama.cpp and
    SmolLM2's own tokenizer.json do). SmolLM2 has no merged digits, so the ids differ from
    transformers' only where a run of whitespace meets a digit: "\n\n1" is "\n\n" + "1" there, but
    "\n" + "\n" + "1" in transformers' GGUF tokenizer (GPT-2's regex leaves the last space to the word)."""
    mine, _, _ = ours(smollm2)
    digits, tokenizer_json, _ = ours(smollm2, like="llama.cpp")
    assert tokenizer_json["pre_tokenizer"]["pretokenizers"][0] == {"type": "Digits", "individual_digits": True}
    assert digits.encode("Steps:\n\n1. Go").tokens == ["Steps", ":", "\u010a\u010a", "1", ".", "\u0120Go"]
    assert mine.encode("Steps:\n\n1. Go").tokens == ["Steps", ":", "\u010a", "\u010a", "1", ".", "\u0120Go"]
    import re

    differing = [text for text in TEXTS if digits.encode(text).ids != mine.encode(text).ids]
    assert differing and all(re.search(r"\s\s\d", text) for text in differing)


def test_the_engines_tokenizer_reads_the_dicts(smollm2, tmp_path):
    """app/hf_tokenizer.py (the page's tokenizer.json reader) takes the dicts as they are and gives
    the tokenizers package's ids and text, for the real file and a SentencePiece one."""
    for path in (smollm2, sentencepiece_gguf(tmp_path)):
        tokenizer_json, config = gguf_tokenizer(read_gguf_header(path))
        engine = HFTokenizer.from_texts(json.dumps(tokenizer_json), json.dumps(config))
        reference = Tokenizer.from_str(json.dumps(tokenizer_json))
        for text in TEXTS[:120]:
            ids = reference.encode(text).ids
            assert engine.encode(text) == ids, repr(text)
            assert engine.decode(ids) == reference.decode(ids, skip_special_tokens=False), repr(text)


# ------------------------------------------------------------------------------ GPT-2's vocabulary


def gpt2_tokenizer_gguf(path: Path, pre) -> Path:
    folder = ROOT / "weights/gpt2-tokenizer"
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    merges = [line for line in (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
              if line and not line.startswith("#version")]
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    types = [3 if token == "<|endoftext|>" else 1 for token in tokens]
    tokens += ["<|im_start|>", "<|im_end|>", "<think>"]
    types += [3, 3, 4]
    special = {"bos_token_id": 50257, "eos_token_id": 50258, "unk_token_id": 50256, "add_bos_token": True}
    return write_tokenizer_gguf(path, tokens, types, pre=pre, merges=merges, special=special)


@pytest.mark.parametrize("pre", ["llama-bpe", "qwen2", "gpt2"])
def test_byte_level_vocabularies_equal_transformers(tmp_path, pre):
    """GPT-2's 50,257 tokens and merges with control and user-defined tokens, BOS added, under the
    split regexes of Llama 3, Qwen2 and GPT-2: the same ids and text as transformers on 300 texts."""
    path = gpt2_tokenizer_gguf(tmp_path / f"{pre}.gguf", pre)
    _, mine, tokenizer_json, config = assert_same_as_transformers(path)
    assert config["add_bos_token"] is True and mine.encode("hi").ids[0] == 50257
    assert [t["content"] for t in tokenizer_json["added_tokens"] if not t["special"]] == ["<think>"]


def test_like_llama_cpp_where_transformers_differs(tmp_path):
    """like='llama.cpp': "smollm" cuts every digit apart (GPT-2 has merged digits, so the ids
    differ from transformers'), and "llama-bpe" looks whole words up first (ignore_merges)."""
    path = gpt2_tokenizer_gguf(tmp_path / "smollm.gguf", "smollm")
    plain, _, _ = ours(path)
    digits, _, _ = ours(path, like="llama.cpp")
    assert plain.decode(plain.encode("In 2024").ids) == digits.decode(digits.encode("In 2024").ids) == "In 2024"
    assert plain.encode(" 2024").tokens == ["<|im_start|>", "\u01202024"]
    assert digits.encode(" 2024").tokens == ["<|im_start|>", "\u0120", "2", "0", "2", "4"]
    _, tokenizer_json, _ = ours(gpt2_tokenizer_gguf(tmp_path / "llama3.gguf", "llama-bpe"), like="llama.cpp")
    assert tokenizer_json["model"]["ignore_merges"] is True


# ------------------------------------------------------------------------------ SentencePiece


def sentencepiece_gguf(folder: Path, add_space_prefix=None, name="spm.gguf") -> Path:
    """A Llama-2-style SentencePiece vocabulary, trained here on the README: <unk> <s> </s>, 256 byte
    tokens, pieces scored by rank, and a control and a user-defined token."""
    from tokenizers import models, pre_tokenizers, trainers

    trainer_tokenizer = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
    trainer_tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first",
                                                               split=False)
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    trainer_tokenizer.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=1500, special_tokens=["<unk>"],
                                                                     limit_alphabet=300))
    learned = sorted(trainer_tokenizer.get_vocab().items(), key=lambda item: item[1])
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    pieces = [token for token, _ in learned if token not in tokens]
    types = [2, 3, 3] + [6] * 256 + [1] * len(pieces) + [3, 4]
    scores = [0.0] * 259 + [-float(rank) for rank in range(len(pieces))] + [0.0, 0.0]
    tokens += pieces + ["<|user|>", "<think>"]
    special = {"bos_token_id": 1, "eos_token_id": 2, "unk_token_id": 0}
    return write_tokenizer_gguf(folder / name, tokens, types, model="llama", scores=scores, special=special,
                                add_space_prefix=add_space_prefix)


def test_sentencepiece_vocabulary_equals_transformers(tmp_path):
    """A "llama" vocabulary with scores and no merges: merges recovered from the scores, byte
    fallback, the prefix space, BOS added by default; the same ids and text as transformers."""
    _, mine, tokenizer_json, config = assert_same_as_transformers(sentencepiece_gguf(tmp_path))
    assert tokenizer_json["model"]["byte_fallback"] is True and config["add_bos_token"] is True
    emoji = mine.encode("\U0001f600")  # BOS, the prefix space, then its four UTF-8 bytes as <0xF0> ...
    assert emoji.tokens == ["<s>", "\u2581", "<0xF0>", "<0x9F>", "<0x98>", "<0x80>"]


def test_sentencepiece_without_a_prefix_space_like_llama_cpp(tmp_path):
    """add_space_prefix false: transformers ignores it (adds "\u2581" anyway); like='llama.cpp' does not."""
    path = sentencepiece_gguf(tmp_path, add_space_prefix=False)
    plain, _, _ = ours(path)
    bare, tokenizer_json, _ = ours(path, like="llama.cpp")
    assert tokenizer_json["pre_tokenizer"]["prepend_scheme"] == "never"
    assert plain.encode("Hello").tokens[1].startswith("\u2581")
    assert not bare.encode("Hello").tokens[1].startswith("\u2581")
    assert bare.decode(bare.encode("Hello world").ids, skip_special_tokens=True) == "Hello world"


# ------------------------------------------------------------------------------ refusals


def test_tokenizer_metadata_refusals(tmp_path):
    """An unsupported tokenizer model, token types of the wrong length, a merge that is not two
    tokens, and a byte-level vocabulary with neither merges nor scores are ModelFormatErrors."""
    def fails(needle, **kwargs):
        args = dict(tokens=["a", "b", "ab"], token_types=[1, 1, 1], merges=["a b"])
        args.update(kwargs)
        path = write_tokenizer_gguf(tmp_path / "t.gguf", args.pop("tokens"), args.pop("token_types"), **args)
        with pytest.raises(ModelFormatError, match=needle):
            gguf_tokenizer(read_gguf_header(path))

    fails("'bert'; supported", model="bert")
    fails("token_type has 2 entries for 3 tokens", token_types=[1, 1])
    fails("item 0 .'a  b'. is not two tokens", merges=["a  b"])
    fails("no scores to rank merges by", merges=None)
    fails("bos_token_id is 7, outside the 3 tokens", special={"bos_token_id": 7})
