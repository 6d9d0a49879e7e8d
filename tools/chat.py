"""Chat with a model from the command line: its chat template renders the messages, exactly as
transformers' apply_chat_template does, and the page's own engine writes the assistant's reply.

    python tools/chat.py --model DIR --messages FILE.json --render-only
    python tools/chat.py --model DIR --messages FILE.json [--max-new-tokens N] [--temperature T] [--json] ...

FILE.json: a list of {"role", "content"} messages, or {"messages": [...], "tools": [...],
"documents": [...]}. --render-only prints one JSON object {"text": ..., "ids": [...]} (the rendered
conversation and its token ids) and needs only DIR/tokenizer.json and DIR/tokenizer_config.json
(chat_template.jinja too when the model keeps its template there). Without it, the ids are the
prompt of tools/generate.py's engine run, with the same options (--runtime browser|node, --json,
sampling). A bad message or template: exit status 2 and one line `error: ...`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT))

import generate  # noqa: E402
from app.chat_template import chat_ids, load_chat_template  # noqa: E402
from app.errors import PyWebGPTError  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a model folder with tokenizer.json and tokenizer_config.json")
    p.add_argument("--messages", required=True, help="a JSON file: a list of {role, content} (or - for stdin)")
    p.add_argument("--render-only", action="store_true", help="print {text, ids} and stop (no weights needed)")
    p.add_argument("--template", help="which of the model's named chat templates (default: \"default\")")
    p.add_argument("--no-generation-prompt", action="store_true",
                   help="do not open an assistant turn at the end (add_generation_prompt=False)")
    p.add_argument("--continue-final-message", action="store_true",
                   help="leave the last message open for the model to continue")
    p.add_argument("--var", action="append", default=[], metavar="NAME=JSON",
                   help="a variable for the template, e.g. enable_thinking=false or date_string='\"1 Jan 2025\"'")
    generate.add_run_arguments(p)
    p.set_defaults(prompt_ids=None)
    return p.parse_args(argv)


def read_conversation(name: str) -> dict:
    """{"messages", "tools", "documents"} from the --messages file."""
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        data = json.loads(text)
    except OSError as exc:
        raise generate.CliError(f"--messages {name}: {exc.strerror}") from None
    except ValueError as exc:
        raise generate.CliError(f"--messages {name} is not valid JSON: {exc}") from None
    if isinstance(data, dict) and "messages" in data:
        unknown = sorted(set(data) - {"messages", "tools", "documents"})
        if unknown:
            raise generate.CliError(f"--messages {name}: unknown keys {unknown} (messages, tools, documents)")
        return {"messages": data["messages"], "tools": data.get("tools"), "documents": data.get("documents")}
    return {"messages": data, "tools": None, "documents": None}


def template_variables(pairs: list[str]) -> dict:
    variables = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise generate.CliError(f"--var {pair!r}: write NAME=JSON, e.g. enable_thinking=false")
        try:
            variables[name] = json.loads(value)
        except ValueError:
            raise generate.CliError(f"--var {pair!r}: the value is not JSON (a string needs quotes)") from None
    return variables


class _StandInTokenizer:
    """The `tokenizers` package on tokenizer.json, until app.tokenizer.load_tokenizer exists."""

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self._tok.encode(text, add_special_tokens=add_special_tokens).ids


def load_tokenizer(folder: Path):
    """The model's tokenizer.json tokenizer: the engine's own pure-Python one (app.tokenizer), or
    the `tokenizers` package where this checkout's engine has no tokenizer.json loader yet."""
    if not (folder / "tokenizer.json").is_file():
        raise generate.CliError(f"--model {folder}: no tokenizer.json in that folder")
    import app.tokenizer

    engine_loader = getattr(app.tokenizer, "load_tokenizer", None)
    return _StandInTokenizer(folder) if engine_loader is None else engine_loader(str(folder))


def render(args) -> dict:
    folder = Path(args.model).expanduser().resolve()
    if not folder.is_dir():
        raise generate.CliError(f"--model {args.model}: not a folder")
    conversation = read_conversation(args.messages)
    template = load_chat_template(str(folder), args.template, tools=conversation["tools"])
    return chat_ids(template, load_tokenizer(folder), conversation["messages"],
                    add_generation_prompt=not args.no_generation_prompt,
                    continue_final_message=args.continue_final_message,
                    tools=conversation["tools"], documents=conversation["documents"],
                    **template_variables(args.var))


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        rendered = render(args)
        if args.render_only:
            print(json.dumps({"text": rendered["text"], "ids": rendered["ids"]}, ensure_ascii=False))
            return 0
        model_dir = generate.model_folder(args.model)
        opts = generate.generation_options(args)
        opts["prompt_ids"] = rendered["ids"]
        out = generate.run_model(args, model_dir, "", opts)
    except (generate.CliError, PyWebGPTError, ValueError) as exc:  # ValueError: a tokenizer file it cannot read
        print(f"error: {exc}", file=sys.stderr)
        return 2
    generate.print_report(args, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
