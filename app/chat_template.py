"""Chat templates: a model's Jinja `chat_template` rendered exactly as transformers' (5.24)
`tokenizer.apply_chat_template` renders it, for the same text and, encoded with
`add_special_tokens=False`, the same ids.

    template = ChatTemplate.from_config(tokenizer_config)          # or load_chat_template(folder)
    text = template.render(messages, add_generation_prompt=True)
    ids = tokenizer.encode(text, add_special_tokens=False)         # chat_ids() does both

It is Jinja2 itself, set up as transformers sets it up (transformers/utils/chat_template_utils.py,
`_compile_jinja_template` and `render_jinja_template`): an ImmutableSandboxedEnvironment with
trim_blocks, lstrip_blocks and the loopcontrols extension; `tojson` without HTML escaping and with
its indent/separators/sort_keys arguments; `raise_exception`, `strftime_now`, a limited `dict` and
`namespace`; `{% generation %}` blocks rendered as plain text. The template sees `messages`,
`add_generation_prompt`, `tools`, `documents` and the tokenizer's named special tokens
(`bos_token`, `eos_token`, ... as transformers' `special_tokens_map` has them).

Jinja2 is imported when a template is first compiled: in Pyodide, `await wheels.ensure_jinja2()`
first (app/wheels.py). Otherwise standard library only.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from functools import lru_cache

from .errors import InputError, ModelFormatError

# transformers' class defaults for named special tokens that tokenizer_config.json leaves out
# (an explicit null there means "none"); tokenizer_class names it. Other classes have none.
_LLAMA = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}
_GEMMA = {"unk_token": "<unk>", "bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>",
          "mask_token": "<mask>"}
_QWEN2 = {"unk_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}
_GPT2 = {"unk_token": "<|endoftext|>", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"}
CLASS_DEFAULTS = {"LlamaTokenizer": _LLAMA, "GemmaTokenizer": _GEMMA, "Qwen2Tokenizer": _QWEN2, "GPT2Tokenizer": _GPT2}
NAMED_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")  # transformers' _REASONING_FIELDS
CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "


class ChatTemplateError(InputError):
    """The template itself refused the conversation (`raise_exception(...)` in the template, e.g.
    roles that do not alternate). `.template_message` is the template's own words."""

    def __init__(self, template_message: str):
        self.template_message = template_message
        super().__init__(f"the model's chat template refuses these messages: {template_message}")

    def fields(self) -> dict:
        return {"template_message": self.template_message}


# --- which template, which special tokens -------------------------------------------------------

def _token_text(value, key: str):
    """A special token as tokenizer_config.json writes it: a string, or an AddedToken dict."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    raise ModelFormatError(f"tokenizer_config.json: {key} must be a string or an object with a string "
                           f"\"content\", not {value!r}")


def special_tokens(config: dict, special_tokens_map: dict | None = None) -> dict[str, str]:
    """The named special tokens a template sees, as transformers' `tokenizer.special_tokens_map`:
    bos/eos/unk/sep/pad/cls/mask (tokenizer_config.json, else the tokenizer class's default), and
    the model-specific ones (other string `*_token` keys, and an `extra_special_tokens` object).
    `special_tokens_map`: special_tokens_map.json, read only when the config has no
    added_tokens_decoder (transformers' legacy path), and then winning over the config."""
    values = dict(config)
    if special_tokens_map and "added_tokens_decoder" not in config:
        for key, value in special_tokens_map.items():
            if key in NAMED_TOKENS:
                values[key] = value
    tokens = {}
    defaults = CLASS_DEFAULTS.get(str(config.get("tokenizer_class") or "").removesuffix("Fast"), {})
    for key in NAMED_TOKENS:
        value = _token_text(values[key], key) if key in values else defaults.get(key)
        if value is not None:
            tokens[key] = value
    for key, value in values.items():
        if key not in NAMED_TOKENS and key.endswith("_token") and isinstance(value, str):
            tokens[key] = value
    extra = values.get("extra_special_tokens")
    if isinstance(extra, dict):
        for key, value in extra.items():
            text = _token_text(value, f"extra_special_tokens.{key}")
            if text is not None:
                tokens[str(key)] = text
    return tokens


def templates_of(config: dict, jinja_files: dict | None = None) -> dict[str, str]:
    """Every chat template of a model by name ("default" for the only or main one): chat_template.jinja
    and additional_chat_templates/NAME.jinja (`jinja_files`, name -> text) win over
    tokenizer_config.json's `chat_template`, a string or a list of {name, template}."""
    if jinja_files:
        return {str(k): str(v) for k, v in jinja_files.items()}
    raw = config.get("chat_template")
    if raw is None:
        return {}
    if isinstance(raw, str):
        return {"default": raw}
    if isinstance(raw, list):
        named = {}
        for i, item in enumerate(raw):
            if not (isinstance(item, dict) and isinstance(item.get("name"), str)
                    and isinstance(item.get("template"), str)):
                raise ModelFormatError(f"tokenizer_config.json: chat_template[{i}] must be an object with string "
                                       "\"name\" and \"template\"")
            named[item["name"]] = item["template"]
        return named
    raise ModelFormatError("tokenizer_config.json: chat_template must be a string or a list of {name, template}, "
                           f"not {type(raw).__name__}")


def select_template(templates: dict[str, str], name: str | None = None, tools=None) -> str:
    """transformers' get_chat_template: the named one; else "tool_use" when tools are given and the
    model has one; else "default"."""
    if not templates:
        raise InputError("this model has no chat template (no chat_template in tokenizer_config.json, no "
                         "chat_template.jinja): give it a plain prompt instead of messages")
    if name is not None:
        if name not in templates:
            raise InputError(f"this model has no chat template named {name!r}; it has {sorted(templates)}")
        return templates[name]
    if tools is not None and "tool_use" in templates:
        return templates["tool_use"]
    if "default" in templates:
        return templates["default"]
    raise InputError(f"this model has several chat templates and none is \"default\": name one of {sorted(templates)}")


# --- the Jinja environment ----------------------------------------------------------------------

def _jinja():
    try:
        import jinja2  # noqa: PLC0415 - imported on first use: Pyodide installs it then (app/wheels.py)
        import jinja2.ext  # noqa: PLC0415
        import jinja2.sandbox  # noqa: PLC0415
    except ModuleNotFoundError:
        raise ModuleNotFoundError("jinja2 is not installed: in the browser or Node, "
                                  "`await pywebgpt.wheels.ensure_jinja2()` before rendering a chat template") from None
    return jinja2


def strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # transformers' filter: no HTML escaping (Jinja's own escapes <, >, &, ')
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


class _Refused(Exception):
    """raise_exception() in a template (a jinja2 TemplateError subclass is made from it)."""


@lru_cache(maxsize=16)
def compile_template(source: str):
    """The compiled template, in an environment set up as transformers' (cached by source)."""
    jinja2 = _jinja()

    class Refused(jinja2.exceptions.TemplateError, _Refused):
        pass

    def raise_exception(message):
        raise Refused(message)

    class GenerationBlocks(jinja2.ext.Extension):
        # `{% generation %}...{% endgeneration %}` marks assistant text for training masks; the
        # rendered text is the body's, as in transformers' AssistantTracker
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller):
            return caller()

    class TemplateDict:
        # dict() without the type's attributes (no way out of the sandbox through them)
        def __call__(self, *args, **kwargs):
            return dict(*args, **kwargs)

        def fromkeys(self, *args, **kwargs):
            return dict.fromkeys(*args, **kwargs)

    def check_name(name):
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(
                f"Chat templates cannot store underscore-prefixed attributes on a namespace, but got {name!r}. "
                "Please rename the attribute.")

    class TemplateNamespace(jinja2.utils.Namespace):
        def __init__(*args, **kwargs):
            self, args = args[0], args[1:]
            attrs = dict(*args, **kwargs)
            for key in attrs:
                check_name(key)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, key, value):
            check_name(key)
            jinja2.utils.Namespace.__setitem__(self, key, value)

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationBlocks, jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda format: strftime_now(format)  # looked up per call: tests patch it
    env.globals["dict"] = TemplateDict()
    env.globals["namespace"] = TemplateNamespace
    try:
        return env.from_string(source)
    except jinja2.exceptions.TemplateSyntaxError as exc:
        raise ModelFormatError(f"the chat template does not parse: {exc.message} (template line {exc.lineno})"
                               ) from None


# --- inputs, as transformers passes them --------------------------------------------------------

def plain_data(value):
    """transformers' _plain_template_data: JSON-like copies; anything else becomes "<TypeName>"."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, dict):
        return {plain_data(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_data(v) for v in value]
    if isinstance(value, tuple):
        return tuple(plain_data(v) for v in value)
    return f"<{type(value).__name__}>"


def check_messages(messages) -> list[dict]:
    """The messages as the template gets them, or InputError naming the bad one: a non-empty list of
    objects, each with a string `role` and a `content` (a string or a list of content parts; an
    assistant message with `tool_calls` may leave it out). Keys whose value is None are dropped,
    as transformers drops them."""
    if not isinstance(messages, (list, tuple)):
        raise InputError(f"messages must be a list of {{role, content}} objects, not {type(messages).__name__}")
    if not messages:
        raise InputError("messages is empty: give at least one {role, content} message")
    checked = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InputError(f"message {i} must be an object with \"role\" and \"content\", not "
                             f"{type(message).__name__}")
        message = {k: v for k, v in message.items() if v is not None}
        if not isinstance(message.get("role"), str):
            what = "has no \"role\"" if "role" not in message else f"has a {type(message['role']).__name__} role"
            raise InputError(f"message {i} {what}: each message needs a string \"role\" (\"system\", \"user\", "
                             "\"assistant\", ...)")
        content = message.get("content")
        if content is None and "tool_calls" not in message:
            raise InputError(f"message {i} ({message['role']}) has no \"content\"")
        if content is not None and not isinstance(content, (str, list)):
            raise InputError(f"message {i} ({message['role']}): \"content\" must be a string or a list of content "
                             f"parts, not {type(content).__name__}")
        checked.append(message)
    return checked


def _alias_reasoning(messages: list[dict]) -> list[dict]:
    out = []
    for message in messages:
        reasoning = next((message[k] for k in REASONING_FIELDS if message.get(k) is not None), None)
        if reasoning is not None:
            message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
        out.append(message)
    return out


def _list_of_dicts(value, what: str):
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise InputError(f"{what} must be a list of JSON objects, not {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise InputError(f"{what}[{i}] must be a JSON object (a tool's JSON schema, a document), not "
                             f"{type(item).__name__}; functions are not converted to schemas here")
    return list(value)


def _blame_message(messages: list[dict], exc: Exception) -> InputError:
    """A template that failed on the messages (not by raise_exception): name the message it most
    likely choked on, the first whose content is not a plain string."""
    for i, message in enumerate(messages):
        content = message.get("content")
        if not isinstance(content, str):
            kind = "no content" if content is None else f"a {type(content).__name__} content"
            return InputError(f"message {i} ({message['role']}) has {kind}, and this chat template needs a "
                              f"string there ({type(exc).__name__}: {exc})")
    return InputError(f"the chat template cannot render these messages ({type(exc).__name__}: {exc})")


# --- rendering ----------------------------------------------------------------------------------

class ChatTemplate:
    """One chat template with the special tokens it renders with."""

    def __init__(self, source: str, tokens: dict[str, str] | None = None, name: str | None = None):
        if not isinstance(source, str):
            raise ModelFormatError(f"a chat template is a string, not {type(source).__name__}")
        self.source = source
        self.tokens = dict(tokens or {})
        self.name = name

    @classmethod
    def from_config(cls, config: dict, name: str | None = None, *, tools=None, jinja_files: dict | None = None,
                    special_tokens_map: dict | None = None) -> ChatTemplate:
        """The template of tokenizer_config.json (parsed), or of chat_template.jinja files."""
        if not isinstance(config, dict):
            raise ModelFormatError("tokenizer_config.json must hold a JSON object")
        source = select_template(templates_of(config, jinja_files), name, tools)
        return cls(source, special_tokens(config, special_tokens_map), name)

    def render(self, messages, *, add_generation_prompt: bool = False, continue_final_message: bool | str = False,
               tools=None, documents=None, **variables) -> str:
        """The conversation as the model reads it (transformers' apply_chat_template(tokenize=False)).
        `variables` reach the template too (e.g. date_string, enable_thinking) and win over the
        special tokens of the same name."""
        jinja2 = _jinja()
        compiled = compile_template(self.source)
        chat = _alias_reasoning(plain_data(check_messages(messages)))
        tools = plain_data(_list_of_dicts(tools, "tools"))
        documents = plain_data(_list_of_dicts(documents, "documents"))
        if continue_final_message and add_generation_prompt:
            raise InputError("continue_final_message and add_generation_prompt cannot both be set: one continues "
                             "the last message, the other starts a new assistant message")
        field, final = self._tag_final(chat, continue_final_message) if continue_final_message else (None, None)
        context = plain_data({**self.tokens, **variables})
        try:
            text = compiled.render(messages=chat, tools=tools, documents=documents,
                                   add_generation_prompt=add_generation_prompt, **context)
        except _Refused as exc:
            raise ChatTemplateError(str(exc)) from None
        except jinja2.exceptions.SecurityError as exc:
            raise ModelFormatError(f"the chat template tried something its sandbox forbids: {exc}") from None
        except (jinja2.exceptions.TemplateError, TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
            raise _blame_message(chat, exc) from None
        return self._cut_at_tag(text, final) if field else text

    def _tag_final(self, chat: list[dict], continue_final_message) -> tuple:
        # transformers: mark the last message's text, render, cut the text at the mark
        field = continue_final_message if isinstance(continue_final_message, str) else "content"
        final = chat[-1].get(field)
        if final is None:
            raise InputError(f"continue_final_message: the last message has no {field!r} to continue")
        fields = [field]
        if field in REASONING_FIELDS:
            fields = [f for f in REASONING_FIELDS if chat[-1].get(f) == final]
        if not any(f in self.source for f in fields):
            raise InputError(f"continue_final_message: this chat template does not use the field {field!r}")
        if isinstance(final, (list, tuple)):
            for block in reversed(final):
                if isinstance(block, dict) and "text" in block:
                    final = block["text"]
                    block["text"] = block["text"] + CONTINUE_TAG
                    break
            else:
                raise InputError("continue_final_message: the last message has no text part to continue")
        else:
            for f in fields:
                chat[-1][f] = chat[-1][f] + CONTINUE_TAG
        return field, final

    @staticmethod
    def _cut_at_tag(text: str, final: str) -> str:
        if final.strip() not in text or CONTINUE_TAG.strip() not in text:
            raise InputError("continue_final_message: the chat template drops part of the last message, so it "
                             "cannot be continued")
        at = text.rindex(CONTINUE_TAG.strip())
        if text[at:at + len(CONTINUE_TAG)] == CONTINUE_TAG:
            return text[:at]
        return text[:at].rstrip()


def chat_ids(template: ChatTemplate, tokenizer, messages, **options) -> dict:
    """{"text", "ids"}: the rendered conversation and its ids, encoded as transformers'
    apply_chat_template(tokenize=True) encodes it (add_special_tokens=False: the template writes
    the BOS itself where the model wants one)."""
    text = template.render(messages, **options)
    return {"text": text, "ids": list(tokenizer.encode(text, add_special_tokens=False))}


# --- a model folder (CPython, Node) -------------------------------------------------------------

def _read_json(path: str, required: bool):
    if not os.path.isfile(path):
        if required:
            raise InputError(f"{path}: no such file")
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            value = json.load(fh)
    except ValueError as exc:
        raise ModelFormatError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ModelFormatError(f"{path} must hold a JSON object")
    return value


def jinja_files_in(folder: str) -> dict[str, str]:
    """chat_template.jinja ("default") and additional_chat_templates/NAME.jinja, as transformers reads them."""
    found = {}
    main = os.path.join(folder, "chat_template.jinja")
    if os.path.isfile(main):
        with open(main, encoding="utf-8") as fh:
            found["default"] = fh.read()
    extra = os.path.join(folder, "additional_chat_templates")
    if os.path.isdir(extra):
        for name in sorted(os.listdir(extra)):
            if name.endswith(".jinja"):
                with open(os.path.join(extra, name), encoding="utf-8") as fh:
                    found[name[:-len(".jinja")]] = fh.read()
    return found


def load_chat_template(folder: str, name: str | None = None, tools=None) -> ChatTemplate:
    """The chat template of a model folder: tokenizer_config.json (+ chat_template.jinja,
    additional_chat_templates/, special_tokens_map.json when present)."""
    config = _read_json(os.path.join(folder, "tokenizer_config.json"), required=True)
    special_map = _read_json(os.path.join(folder, "special_tokens_map.json"), required=False)
    return ChatTemplate.from_config(config, name, tools=tools, jinja_files=jinja_files_in(folder),
                                    special_tokens_map=special_map)
