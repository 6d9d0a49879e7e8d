"""A small random-weight Llama with a ChatML chat template and a one-token-per-character
tokenizer.json, for the chat page and chat API tests: fast enough on SwiftShader to stream many
turns, and transformers reads the same folder (so its replies are the reference)."""

from __future__ import annotations

import json
from pathlib import Path

from app.byte_level import bytes_to_unicode
from tools.make_model import make_model

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
DEFAULT_SYSTEM = "You are a tiny test model."
# ChatML, as SmolLM2 and Qwen2.5 write it, with a default system message when none is given.
TEMPLATE = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
            "{{ '<|im_start|>system\\n" + DEFAULT_SYSTEM + "<|im_end|>\\n' }}{% endif %}"
            "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
            "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
CONTEXT = 256
GENERATION_DEFAULTS = {"temperature": 0.6, "top_k": 12, "top_p": 0.9}


def write_tokenizer(folder: Path) -> dict:
    """A byte-level BPE tokenizer.json whose tokens are the printable ASCII characters, newline and
    tab (no merges: one token per character, so a reply's text re-encodes to the same ids) and the
    three ChatML special tokens; tokenizer_config.json with the chat template. -> {token: id}."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    byte_char = bytes_to_unicode()
    vocab = {byte_char[b]: i for i, b in enumerate([0x0A, 0x09, *range(0x20, 0x7F)])}
    for token in SPECIALS:
        vocab[token] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(SPECIALS)
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {
        "add_prefix_space": False, "bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "model_max_length": CONTEXT,
        "tokenizer_class": "GPT2Tokenizer", "clean_up_tokenization_spaces": False, "chat_template": TEMPLATE,
        "added_tokens_decoder": {str(vocab[t]): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                                                 "single_word": False, "special": True} for t in SPECIALS},
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return vocab


def make_chat_model(root: Path, name: str = "chat-model", **shape) -> Path:
    """A 2-layer random Llama (context 256, vocabulary 100) with the tokenizer above. Its lm_head
    row for <|im_end|> is zero, so greedy replies never end by themselves (Stop has something to
    stop, and a reply's length is the Max new tokens setting). `shape`: other sizes (hidden_size,
    intermediate_size, ...) than the 64-wide default."""
    from safetensors.numpy import load_file, save_file

    folder = root / name
    vocab_size = 100
    sizes = {**dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                    intermediate_size=128, init_std=0.2), **shape}
    make_model(folder, model_type="llama", vocab_size=vocab_size, max_position_embeddings=CONTEXT,
               tie_word_embeddings=False, bos_token_id=98, eos_token_id=99, **sizes)
    (folder / "char_vocab.json").unlink()
    vocab = write_tokenizer(folder)
    assert len(vocab) == vocab_size and vocab["<|im_end|>"] == 99
    tensors = load_file(str(folder / "model.safetensors"))
    tensors["lm_head.weight"][vocab["<|im_end|>"]] = 0.0
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    generation = {"bos_token_id": 98, "eos_token_id": 99, "do_sample": True, **GENERATION_DEFAULTS}
    (folder / "generation_config.json").write_text(json.dumps(generation))
    for file in folder.iterdir():
        file.chmod(0o644)
    return folder
