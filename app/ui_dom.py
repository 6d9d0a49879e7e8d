"""The UI's small bridge to JavaScript and the DOM, shared by app/ui*.py: JS null/undefined,
JSON-shaped values in both directions, the engine's errors as dicts, and element helpers that only
ever put text on the page (textContent / text nodes, never HTML)."""

from __future__ import annotations

import json

import js
from pyodide.ffi import JsException, to_js

from .ui_text import python_error_parts


def or_none(value):
    """A JS value, or None for null / undefined (Pyodide 314 maps null to a JsNull object)."""
    if value is None or type(value).__name__ in ("JsNull", "JsUndefined"):
        return None
    return value


def by_id(element_id: str):
    return or_none(js.document.getElementById(element_id))


def to_js_object(d: dict):
    return to_js(d, dict_converter=js.Object.fromEntries)


def to_py(value):
    """A JS value (JSON-shaped) as Python data."""
    if isinstance(value, (dict, list, str, int, float, bool)):
        return value
    if or_none(value) is None:
        return None
    return json.loads(js.JSON.stringify(value))


def error_parts(exc) -> dict:
    """{name, message, code, ...fields} of an exception from Python or of a rejected JS promise:
    the engine's errors carry their code and structured fields (app/errors.py, web/api.js)."""
    if isinstance(exc, JsException):
        err = getattr(exc, "js_error", exc)
        fields = {}
        try:
            fields = {k: v for k, v in to_py(js.Object.assign(js.Object.new(), err)).items()}
        except Exception:  # noqa: BLE001 - a thrown non-object (a string): no fields
            pass
        fields["name"] = str(or_none(getattr(err, "name", None)) or "Error")
        fields["message"] = str(or_none(getattr(err, "message", None)) or str(exc))
        fields["code"] = fields.get("code")
        return fields
    return python_error_parts(exc)


def empty(node) -> None:
    while node.firstChild:
        node.removeChild(node.firstChild)


def fill_list(ul, items) -> None:
    """A <ul> of the items as text; hidden when there are none."""
    empty(ul)
    for item in items:
        li = js.document.createElement("li")
        li.textContent = str(item)
        ul.appendChild(li)
    ul.hidden = not items


def bump(name: str) -> None:
    """Count an event in a data attribute of <body> (data-loads, data-runs): tests wait on them."""
    body = js.document.body
    setattr(body.dataset, name, str(int(or_none(body.getAttribute(f"data-{name}")) or 0) + 1))
