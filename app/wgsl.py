"""What each kernel file declares about itself, read from the .wgsl source (standard library only).

A kernel file's header lists the constants it needs, one per line, as

    //   NAME: u32   what it means

(types u32, i32, f32, bool). app/kernels.py supplies exactly those as `const` declarations ahead
of the file (`module_source`); a missing, extra or mistyped one is refused here, in Python, before
any GPU call. The @group(0) @binding(i) declarations give the binding names: a dispatch binds
buffers by name, and an entry point's bindings are the ones it uses statically (through the
functions it calls), which is exactly what WebGPU's automatic layout contains. The
`var<workgroup>` declarations used by an entry point give its workgroup memory for a set of
constants (app/buffer_plan.py checks it against the adapter's limit).

A shader module is: weight-format snippet + app/contract.py's prelude + the constants + common.wgsl
+ the kernel file, followed by the files its header includes (`// Includes: NAME.wgsl`: a second job
of the same module, in a file of its own).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .contract import SHARED_CONSTANTS, wgsl_literal, wgsl_prelude

COMMON = "common.wgsl"
WEIGHT_SNIPPETS = {"F32": "weights_f32.wgsl", "F16": "weights_f16_packed.wgsl", "BF16": "weights_bf16_packed.wgsl",
                   "Q8_0": "weights_q8_0.wgsl", "Q4_0": "weights_q4_0.wgsl", "Q4_1": "weights_q4_1.wgsl",
                   "Q5_0": "weights_q5_0.wgsl", "Q5_1": "weights_q5_1.wgsl",
                   "Q4_K": "weights_q4_k.wgsl", "Q5_K": "weights_q5_k.wgsl", "Q6_K": "weights_q6_k.wgsl"}
# The same bytes bound as 16-byte blocks of 8 weights, for a GPU's decode GEMV and LM head
# (KernelShapes.gemv_wide_f16; rows of a multiple of 8 weights).
WIDE_SNIPPETS = {"F16": "weights_f16_wide.wgsl", "BF16": "weights_bf16_wide.wgsl"}

_CONSTANT_LINE = re.compile(r"^//\s+([A-Z][A-Z0-9_]*): (u32|i32|f32|bool)\b")
_INCLUDE_LINE = re.compile(r"^// Includes: ([\w.]+\.wgsl)\b")
_BINDING = re.compile(r"@group\(0\)\s*@binding\((\d+)\)\s*var<storage,\s*(read|read_write)>\s*(\w+)\s*:")
_WORKGROUP_VAR = re.compile(r"var<workgroup>\s+(\w+)\s*:\s*([^;]+);")
_MODULE_CONST = re.compile(r"^const\s+(\w+)\s*(?::\s*\w+)?\s*=\s*([^;]+);", re.M)
_FN = re.compile(r"\bfn\s+(\w+)\s*\(")
_ENTRY = re.compile(r"@compute\s+@workgroup_size\([^)]*\)\s*fn\s+(\w+)")
_IDENT = re.compile(r"(?<![.\w])[A-Za-z_]\w*")  # not after ".": a member or swizzle
_LOCAL = re.compile(r"\b(?:let|var)\s+(\w+)")
_COMMENT = re.compile(r"//[^\n]*")
_WPACK_ALIAS = re.compile(r"^alias\s+WPack\s*=\s*([^;]+);", re.M)


class ShaderContractError(ValueError):
    """Python and a .wgsl file disagree (a constant or binding named on one side only)."""


def shader_dirs() -> list[Path]:
    here = Path(__file__).resolve().parent
    # In the repository the shaders sit beside the package; in Pyodide's file system the site ships
    # them inside the package folder (see pyscript.toml).
    return [here / "shaders", here.parent / "shaders"]


@lru_cache(maxsize=None)
def shader_source(name: str) -> str:
    for folder in shader_dirs():
        path = folder / name
        if path.is_file():
            return path.read_text()
    raise FileNotFoundError(f"shader {name!r} not found in {', '.join(str(d) for d in shader_dirs())}")


@lru_cache(maxsize=None)
def kernel_source(name: str) -> str:
    """A kernel file's source, followed by the files its header includes."""
    source = shader_source(name)
    includes = []
    for line in source.splitlines():
        if not line.startswith("//"):
            break
        m = _INCLUDE_LINE.match(line)
        if m:
            includes.append(shader_source(m.group(1)))
    return "\n".join([source, *includes])


@dataclass(frozen=True)
class Binding:
    index: int
    name: str
    writable: bool


@dataclass
class KernelFile:
    """One kernel file's declared interface."""

    name: str
    constants: dict                  # NAME -> WGSL type, from the header
    bindings: dict                   # name -> Binding
    entry_points: dict = field(default_factory=dict)   # entry -> frozenset of binding names it uses
    workgroup_vars: dict = field(default_factory=dict)  # entry -> [(var name, WGSL type text)]
    module_consts: list = field(default_factory=list)   # [(name, expression)] in source order


def _strip_comments(source: str) -> str:
    return _COMMENT.sub("", source)


def _functions(code: str) -> dict:
    """fn name -> its text (parameters and body), by brace matching."""
    out = {}
    for m in _FN.finditer(code):
        start = code.index("{", m.end())
        depth, i = 0, start
        while True:
            if code[i] == "{":
                depth += 1
            elif code[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        out[m.group(1)] = code[m.end():i + 1]
    return out


@lru_cache(maxsize=None)
def kernel_file(name: str) -> KernelFile:
    """Parse `name` and what it includes (with common.wgsl, whose functions and workgroup variables
    it may use)."""
    source = kernel_source(name)
    constants = {}
    for line in source.splitlines():
        if not line.startswith("//"):
            break
        m = _CONSTANT_LINE.match(line)
        if m:
            constants[m.group(1)] = m.group(2)
    code = _strip_comments(source)
    common = _strip_comments(shader_source(COMMON))
    bindings = {m.group(3): Binding(int(m.group(1)), m.group(3), m.group(2) == "read_write")
                for m in _BINDING.finditer(code)}
    functions = {**_functions(common), **_functions(code)}
    workgroup = {m.group(1): m.group(2).strip() for m in _WORKGROUP_VAR.finditer(common + "\n" + code)}

    def uses(fn: str, seen: set) -> set:
        if fn in seen:
            return set()
        seen.add(fn)
        text = functions[fn]
        names = set(_IDENT.findall(text)) - set(_LOCAL.findall(text))
        found = names & (set(bindings) | set(workgroup))
        for callee in names & set(functions):
            found |= uses(callee, seen)
        return found

    kf = KernelFile(name, constants, bindings, module_consts=_MODULE_CONST.findall(common + "\n" + code))
    for entry in _ENTRY.findall(code):
        used = uses(entry, set())
        kf.entry_points[entry] = frozenset(used & set(bindings))
        kf.workgroup_vars[entry] = [(v, workgroup[v]) for v in sorted(used & set(workgroup))]
    return kf


def check_constants(shader: str, values: dict) -> None:
    """Raise ShaderContractError unless `values` names exactly the constants `shader` declares."""
    declared = kernel_file(shader).constants
    missing = sorted(set(declared) - set(values))
    extra = sorted(set(values) - set(declared))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"not declared by the shader: {', '.join(extra)}")
        raise ShaderContractError(f"{shader}: constants do not match its header ({'; '.join(parts)})")


def module_source(shader: str, snippet: str, values: dict, fixed: tuple = ()) -> str:
    """The whole WGSL source of one pipeline's module. `fixed`: ((binding, elements), ...), runtime-sized
    array bindings declared with that many elements instead (fixed_binding_bytes)."""
    check_constants(shader, values)
    declared = kernel_file(shader).constants
    try:
        consts = "".join(f"const {k}: {declared[k]} = {wgsl_literal(declared[k], values[k])};\n"
                         for k in sorted(values))
    except (TypeError, ValueError) as exc:
        raise ShaderContractError(f"{shader}: {exc}") from None
    code = kernel_source(shader)
    for name, elements in fixed:
        m = _runtime_array(shader, code, name)
        code = f"{code[:m.end('element')]}, {int(elements)}{code[m.end('element'):]}"
    return "\n".join([shader_source(snippet), wgsl_prelude(), consts, shader_source(COMMON), code])


def _runtime_array(shader: str, code: str, name: str) -> re.Match:
    """The declaration of binding `name` as a runtime-sized array (`var<storage, read> name:
    array<T>;`); group `element` is T."""
    m = re.search(r"@group\(0\)\s*@binding\(\d+\)\s*var<storage,\s*read>\s*" + re.escape(name)
                  + r"\s*:\s*array<(?P<element>(?:[^,<>]|<[^<>]*>)+)>;", code)
    if m is None:
        raise ShaderContractError(f"{shader} declares no read-only runtime-sized array binding {name!r}")
    return m


def fixed_binding_bytes(shader: str, snippet: str, fixed: tuple) -> dict:
    """binding name -> the bytes a buffer bound there must hold: a binding declared with a fixed
    number of elements (module_source's `fixed`) reads only those, so a smaller buffer fails
    WebGPU's validation, and a shorter declaration than the kernel reads would clamp its loads to
    the last element (a wrong answer, not an error): callers declare exactly what the kernel reads."""
    code = kernel_source(shader)
    alias = _WPACK_ALIAS.search(shader_source(snippet))
    out = {}
    for name, elements in fixed:
        element = _runtime_array(shader, code, name).group("element").strip()
        if element == "WPack" and alias:
            element = alias.group(1).strip()
        size, align = _type_size(element, {})
        out[name] = -(-size // align) * align * int(elements)
    return out


def entry_bindings(shader: str, entry: str) -> dict:
    """name -> Binding for the bindings `entry` uses (its automatic bind group layout)."""
    kf = kernel_file(shader)
    if entry not in kf.entry_points:
        raise ShaderContractError(f"{shader} has no entry point {entry!r} (it has {', '.join(kf.entry_points)})")
    return {name: kf.bindings[name] for name in kf.entry_points[entry]}


# ------------------------------------------------------------------------------ workgroup memory

_SCALAR_BYTES = {"f32": 4, "u32": 4, "i32": 4, "f16": 2}


def _evaluate(expr: str, env: dict) -> int:
    """An integer WGSL constant expression (literals with a u/i suffix, names, + - * / % ( ), min and
    max)."""
    text = re.sub(r"\b(\d+)[ui]\b", r"\1", expr.strip())
    tree = ast.parse(text, mode="eval")

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in env:
                raise ShaderContractError(f"workgroup array size uses {node.id!r}, which has no value")
            return env[node.id]
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("min", "max")
                and len(node.args) == 2 and not node.keywords):
            return (min if node.func.id == "min" else max)(ev(node.args[0]), ev(node.args[1]))
        if isinstance(node, ast.BinOp):
            a, b = ev(node.left), ev(node.right)
            ops = {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b}
            if type(node.op) in ops:
                return ops[type(node.op)]
            if isinstance(node.op, ast.Div):
                return a // b
            if isinstance(node.op, ast.Mod):
                return a % b
        raise ShaderContractError(f"cannot evaluate WGSL expression {expr!r}")

    return ev(tree)


def _type_size(text: str, env: dict) -> tuple[int, int]:
    """(size, alignment) in bytes of a WGSL type in the workgroup address space."""
    text = text.strip()
    if text in _SCALAR_BYTES:
        return _SCALAR_BYTES[text], _SCALAR_BYTES[text]
    m = re.fullmatch(r"atomic<\s*(u32|i32)\s*>", text)
    if m:
        return 4, 4
    m = re.fullmatch(r"vec([234])<\s*(\w+)\s*>", text)
    if m:
        n, scalar = int(m.group(1)), _SCALAR_BYTES[m.group(2)]
        align = scalar * (4 if n >= 3 else n)
        return scalar * n, align
    m = re.fullmatch(r"array<(.+),([^,<>]+)>", text)
    if m:
        size, align = _type_size(m.group(1), env)
        stride = -(-size // align) * align
        return stride * _evaluate(m.group(2), env), align
    raise ShaderContractError(f"cannot size WGSL type {text!r}")


def workgroup_bytes(shader: str, entry: str, values: dict, snippet: str | None = None) -> int:
    """Workgroup memory `entry` uses with these constants (and the weight snippet's WPack type, for
    a workgroup array of WPacks)."""
    kf = kernel_file(shader)
    env = {k: v for k, (_, v) in SHARED_CONSTANTS.items() if isinstance(v, int)}
    env.update({k: int(v) for k, v in values.items() if isinstance(v, (int, bool))})
    for name, expr in kf.module_consts:
        try:
            env[name] = _evaluate(expr, env)
        except (ShaderContractError, SyntaxError, ZeroDivisionError):
            pass  # not an integer constant (floats, bit patterns): never a workgroup size
    total = 0
    alias = _WPACK_ALIAS.search(shader_source(snippet)) if snippet else None
    for _, type_text in kf.workgroup_vars[entry]:
        if alias:
            type_text = re.sub(r"\bWPack\b", alias.group(1).strip(), type_text)
        size, align = _type_size(type_text, env)
        total = -(-total // align) * align + size
    return total
