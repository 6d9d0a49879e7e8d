"""Fuzzing the parsers and validators that take untrusted input, in CPython.

Four properties (tools/fuzz_properties.py), 10,000 hypothesis cases each in CI (tools/fuzz.py runs
the same properties with more cases, nightly-style):

  safetensors  a model.safetensors file: arbitrary bytes, and a valid tiny GPT-2 file mutated at
               the JSON level (fields set to any JSON value, huge numbers, dtypes, shapes, offsets,
               renamed / dropped / duplicated tensors, metadata) and at the byte level (header
               length, non-UTF-8, deep nesting, duplicate keys, 5,000-digit numbers, truncation,
               padding, Git LFS pointers) -> parse_header_length + parse_header (file size known
               and unknown) + config.match_tensors.
  config       config.json: a valid config with any of its fields set to any JSON value or removed,
               as a dict (GPT2Config.from_dict) and as text with byte-level damage (from_json).
  tokenizer    GPT-2 BPE (weights/gpt2-tokenizer): decode(encode(s)) == s for any str without lone
               surrogates, with and without allow_special; the streaming detokenizer's pieces
               concatenate to the same text; a corrupted id list is a ValueError naming it.
  sampling     generation options as the JS API gets them (app.sampling.generation_options:
               unknown keys, any JSON value per key) and SamplingParams(**kwargs) -> a valid SamplingParams that
               samples a token, or a ValueError with a message.

The only failure allowed anywhere is the library's own typed error (ModelFormatError, ValueError)
with a non-empty, one-line message; anything else (TypeError, OverflowError, RecursionError, ...)
fails the test. What tests/test_safetensors.py, test_tokenizer.py and test_sampling.py already fuzz
(random/mutated safetensors files against the reference library, BPE ids against tiktoken, random
id sequences through the streaming detokenizer, stop strings across token boundaries) is not
repeated here.

Strategies are cheap on purpose (hypothesis costs ~1 ms per case on a shared 2-CPU machine): most
properties draw one short byte string and decode it into a case with `Draw`, so shrinking still
works (a shorter byte string is a simpler case: fewer mutations, earlier choices).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_properties import TEXT, check_config, check_safetensors, check_sampling, check_tokenizer

CASES = 10_000
FUZZ = settings(max_examples=CASES, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(st.binary(max_size=48))
def test_fuzz_safetensors_header(data):
    check_safetensors(data)


@FUZZ
@given(st.binary(max_size=32))
def test_fuzz_config(data):
    check_config(data)


@FUZZ
@given(TEXT)
def test_fuzz_tokenizer_round_trip(text):
    check_tokenizer(text)


@FUZZ
@given(st.binary(max_size=24))
def test_fuzz_sampling_params(data):
    check_sampling(data)
