"""Rebuild a random model byte for byte from a seed, with the standard library alone, on a machine
that has neither numpy nor torch (the lent GPU machine): a large model does not travel, its recipe
(config, tokenizer files and the safetensors header, a few MB) and a seed do.

    python3 tools/seeded_model.py recipe MODEL_DIR RECIPE_DIR     # here: any folder make_model.py wrote
    python3 tools/seeded_model.py build RECIPE_DIR OUT_DIR [--seed 0]   # anywhere: prints the sha256

`build` writes OUT_DIR/model.safetensors with the recipe's tensor names, shapes and dtypes (F32 or
F16) and values drawn from SHAKE-256 of (seed, tensor name), so the same recipe and seed give the
same bytes on any Python 3. The values are floats with a random sign and mantissa whose exponent is
fixed by the tensor's role: LayerNorm / RMSNorm gains in [0.5, 2), every other tensor in
[1/32, 1/8) in magnitude, large enough that greedy logits are well separated (a reference computed
here, tools/golden.py, then matches what a GPU computes elsewhere). The small files are copied.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import struct
import sys
from pathlib import Path

WEIGHTS = "model.safetensors"
HEADER = "header.json"
GAIN_MARKERS = ("ln_", "norm.weight", "layernorm.weight")


def is_gain(name: str) -> bool:
    return name.endswith("weight") and any(m in name for m in GAIN_MARKERS)


def _exponent_table(mask: int, exponent_bits: int) -> bytes:
    """A bytes.translate table that keeps a random byte's bits in `mask` and sets `exponent_bits`."""
    return bytes((b & mask) | exponent_bits for b in range(256))


# f16: the high byte is sign | 5 exponent bits | 2 mantissa bits. Exponent 10-11 ([1/32, 1/8)) or
# 14-15 and a positive sign for gains ([0.5, 2)): bit 2 of the random byte picks within the pair.
F16_TABLES = {False: _exponent_table(0x87, 10 << 2), True: _exponent_table(0x07, 14 << 2)}
# f32: the top byte is sign | the exponent's 7 high bits; the next byte's top bit (random) is the
# exponent's lowest: exponent 122-123 ([1/32, 1/8)) or 126-127 with a positive sign ([0.5, 2)).
F32_TABLES = {False: _exponent_table(0x80, 61), True: _exponent_table(0x00, 63)}


def tensor_bytes(name: str, dtype: str, count: int, seed: int) -> bytes:
    """`count` seeded values of tensor `name`, little-endian."""
    width = {"F16": 2, "F32": 4}.get(dtype)
    if width is None:
        raise SystemExit(f"error: {name}: dtype {dtype} is not supported (F16 or F32)")
    stream = hashlib.shake_256(f"{seed}:{name}".encode()).digest(width * count)
    out = bytearray(stream)
    top = stream[width - 1::width]
    tables = F16_TABLES if width == 2 else F32_TABLES
    out[width - 1::width] = top.translate(tables[is_gain(name)])
    return bytes(out)


def read_header(path: Path) -> dict:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


def make_recipe(model_dir: Path, recipe_dir: Path) -> None:
    recipe_dir.mkdir(parents=True, exist_ok=True)
    for f in model_dir.iterdir():
        if f.is_file() and f.suffix != ".safetensors" and f.name not in (HEADER, "golden.json"):
            shutil.copy(f, recipe_dir / f.name)
    (recipe_dir / HEADER).write_text(json.dumps(read_header(model_dir / WEIGHTS)))


def build(recipe_dir: Path, out_dir: Path, seed: int) -> str:
    """Write the seeded model; returns the sha256 of its model.safetensors."""
    header = json.loads((recipe_dir / HEADER).read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in recipe_dir.iterdir():
        if f.is_file() and f.name != HEADER:
            shutil.copy(f, out_dir / f.name)
    names = sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])
    digest = hashlib.sha256()
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(out_dir / WEIGHTS, "wb") as f:
        for chunk in (struct.pack("<Q", len(head)), head):
            f.write(chunk)
            digest.update(chunk)
        position = 0
        for name in names:
            info = header[name]
            start, end = info["data_offsets"]
            if start != position:
                raise SystemExit(f"error: {name}: the header's offsets are not contiguous")
            count = 1
            for d in info["shape"]:
                count *= d
            data = tensor_bytes(name, info["dtype"], count, seed)
            if len(data) != end - start:
                raise SystemExit(f"error: {name}: {len(data)} bytes for offsets {start}..{end}")
            f.write(data)
            digest.update(data)
            position = end
    return digest.hexdigest()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("recipe", help="write a model folder's recipe (small files + header.json)")
    r.add_argument("model_dir", type=Path)
    r.add_argument("recipe_dir", type=Path)
    b = sub.add_parser("build", help="build the seeded model from a recipe")
    b.add_argument("recipe_dir", type=Path)
    b.add_argument("out_dir", type=Path)
    b.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "recipe":
        make_recipe(args.model_dir, args.recipe_dir)
    else:
        print(build(args.recipe_dir, args.out_dir, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
