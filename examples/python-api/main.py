# The Python API example (see README.md, "Python API"): load the bundled model, stream text.
from pyscript import document, when
from pywebgpt import load_model
from pywebgpt.errors import PyWebGPTError

status = document.getElementById("status")
output_prompt = document.getElementById("output-prompt")
output_text = document.getElementById("output-text")
generate_button = document.getElementById("generate")
stop_button = document.getElementById("stop")


def say(text, state):
    status.textContent = text
    status.dataset.state = state


def show_progress(p):
    if p["phase"] == "download" and p["total"]:
        say(f"Downloading {p['file']}: {p['loaded'] * 100 // p['total']}%", "loading")


say("Loading the model…", "loading")
try:
    model = await load_model("../../weights/shakespeare-char/", on_progress=show_progress)  # noqa: F704
except Exception as exc:  # no WebGPU, or a model that cannot be loaded: say why
    say(f"Could not load the model: {exc}", "error")
    raise
say(f"Ready: {model.info['parameters']:,} parameters, context {model.context}.", "ready")
generate_button.disabled = False


@when("click", "#generate")
async def generate(event):
    prompt = document.getElementById("prompt").value
    seed = document.getElementById("seed").value
    output_prompt.textContent = prompt
    output_text.textContent = ""
    generate_button.disabled, stop_button.disabled = True, False
    say("Generating…", "generating")
    try:
        stream = model.generate(
            prompt,
            max_new_tokens=int(document.getElementById("max-new-tokens").value),
            temperature=float(document.getElementById("temperature").value),
            top_k=40,
            seed=int(seed) if seed else None,
        )
        async for piece in stream:
            output_text.textContent += piece
        r = stream.result
        ms = r.timings.get("decode_ms_per_token") or 0
        document.getElementById("stats").textContent = (
            f"{len(r.tokens)} tokens, {r.finish_reason}, {ms:.1f} ms/token")
        say("Done.", "done")
    except (PyWebGPTError, ValueError) as exc:  # what the library reports (e.g. a character the model
        # does not know, a lost GPU) and a field that is not a number; anything else is a bug that
        # PyScript shows on the page (the buttons come back either way)
        say(f"Error: {exc}", "error")
    finally:
        generate_button.disabled, stop_button.disabled = False, True


@when("click", "#stop")
def stop(event):
    model.stop()
