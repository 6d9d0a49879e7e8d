// Runs app/'s tokenizers in Pyodide under Node (the page's Python: CPython 3.14, Unicode 16), from
// the pinned npm package (node_modules/pyodide). Used by tools/bench_tokenizer.py --runtime pyodide
// and tests/test_tokenizer_pyodide.py.
//
//   node tools/tokenizer_pyodide.mjs JOB.json
//
// JOB.json: {"tokenizers": {name: "path/to/tokenizer.json"}, "texts": "texts.json" (a list of str),
//            "expected": "ids.json" ({name: [[ids of each text]]}, optional),
//            "speed_text": "file.txt" (optional), "repeat": 3}
// Prints one JSON object: {python, unidata, results: {name: {load_s, mismatches: [indices],
// stream_mismatches: [indices], ...measure_speed()}}}.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const job = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const { loadPyodide } = await import(path.join(root, "node_modules", "pyodide", "pyodide.mjs"));
const py = await loadPyodide({ indexURL: path.join(root, "node_modules", "pyodide") + path.sep });

py.FS.mkdirTree("/pkg/pywebgpt");
for (const name of fs.readdirSync(path.join(root, "app"))) {
  if (name.endsWith(".py")) py.FS.writeFile(`/pkg/pywebgpt/${name}`, fs.readFileSync(path.join(root, "app", name)));
}
py.FS.mkdirTree("/job");
const files = {};
for (const [name, file] of Object.entries(job.tokenizers)) {
  py.FS.writeFile(`/job/${name}.json`, fs.readFileSync(file));
  files[name] = `/job/${name}.json`;
}
for (const key of ["texts", "expected", "speed_text"]) {
  if (job[key]) py.FS.writeFile(`/job/${key}`, fs.readFileSync(job[key]));
}
py.globals.set("job_json", JSON.stringify({ files, repeat: job.repeat ?? 3, has: Object.keys(job).filter((k) => job[k]) }));

const out = await py.runPythonAsync(`
import json, sys, time, unicodedata
sys.path.insert(0, "/pkg")
from pywebgpt.tokenizer import StreamingDetokenizer, load_tokenizer_from_texts, measure_speed

job = json.loads(job_json)
texts = json.load(open("/job/texts", encoding="utf-8")) if "texts" in job["has"] else []
expected = json.load(open("/job/expected")) if "expected" in job["has"] else {}
speed_text = open("/job/speed_text", encoding="utf-8").read() if "speed_text" in job["has"] else None
results = {}
for name, file in job["files"].items():
    start = time.perf_counter()
    tokenizer = load_tokenizer_from_texts({"tokenizer.json": open(file, encoding="utf-8").read()})
    row = {"load_s": round(time.perf_counter() - start, 3)}
    ids = [tokenizer.encode(text) for text in texts]
    if name in expected:
        row["mismatches"] = [i for i, (a, b) in enumerate(zip(ids, expected[name])) if a != b]
    stream_bad = []
    for i, token_ids in enumerate(ids):
        detok = StreamingDetokenizer(tokenizer)
        if "".join(detok.push(t) for t in token_ids) + detok.flush() != tokenizer.decode(token_ids):
            stream_bad.append(i)
    row["stream_mismatches"] = stream_bad
    if speed_text is not None:
        row.update(measure_speed(tokenizer, speed_text, job["repeat"]))
    results[name] = row
json.dumps({"python": sys.version.split()[0], "unidata": unicodedata.unidata_version, "results": results})
`);
console.log(out);
