// Runs PyWebGPT's Python engine (app/) under Node: Pyodide + Dawn's WebGPU (`webgpu` npm package).
// The same Python and WGSL as the page, on whatever GPU Dawn finds (an NVIDIA GPU through Vulkan,
// or SwiftShader). Driven by tools/generate.py --runtime node; prints one JSON object.
//   node tools/node_runner.mjs '{"model_url": "http://127.0.0.1:8000/models/m/", "prompt": "Hi", "options": {...}}'
// Order matters: Pyodide is loaded before Dawn's globals are installed (the other way round,
// Pyodide's bootstrap fails with "Failed to import _pyodide_core").
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import url from 'node:url';
import vm from 'node:vm';
import { loadPyodide } from 'pyodide';
import { create, globals } from 'webgpu';

const root = path.resolve(path.dirname(url.fileURLToPath(import.meta.url)), '..');
const args = JSON.parse(process.argv[2] || '{}');

// process.exit() right after a write to a pipe drops what Node has not flushed yet (a report with
// dumped logits is megabytes): exit only once the write has gone out.
function finish(report, code) {
  process.stdout.write(JSON.stringify(report) + '\n', () => process.exit(code));
}

// Peak process memory while the model loads (rss, arrayBuffers, external: process.memoryUsage()),
// sampled every 50 ms: what a load costs beyond the GPU copy (tools/bench.py reports it).
function memorySampler() {
  const peak = { rss: 0, arrayBuffers: 0, external: 0, heapUsed: 0 };
  const sample = () => {
    const m = process.memoryUsage();
    for (const key of Object.keys(peak)) peak[key] = Math.max(peak[key], m[key]);
  };
  sample();
  const timer = setInterval(sample, 50);
  return { stop() { clearInterval(timer); sample(); return peak; } };
}

function fail(message) {
  finish({ error: String(message) }, 2);
}

try {
  const t0 = performance.now();
  const py = await loadPyodide();
  Object.assign(globalThis, globals);
  globalThis.navigator = { gpu: create(args.dawn_options || ['backend=vulkan', 'disable-dawn-features=timestamp_quantization']),
                           hardwareConcurrency: os.availableParallelism?.() ?? os.cpus().length };  // as a browser's
  for (const file of ['web/fetch.js', 'web/api.js', 'web/replay.js']) {
    vm.runInThisContext(fs.readFileSync(path.join(root, file), 'utf8'), { filename: file });
  }
  const pkg = '/home/pyodide/pywebgpt';
  py.FS.mkdirTree(pkg + '/shaders');
  for (const name of fs.readdirSync(path.join(root, 'app'))) {
    if (name.endsWith('.py') && name !== 'main.py') py.FS.writeFile(`${pkg}/${name}`, fs.readFileSync(path.join(root, 'app', name)));
  }
  for (const name of fs.readdirSync(path.join(root, 'shaders'))) {
    if (name.endsWith('.wgsl')) py.FS.writeFile(`${pkg}/shaders/${name}`, fs.readFileSync(path.join(root, 'shaders', name)));
  }
  // jinja2 + markupsafe wheels: app/wheels.py installs them from here when a chat template is first rendered
  py.FS.mkdirTree(pkg + '/web/wheels');
  for (const name of fs.readdirSync(path.join(root, 'web', 'wheels'))) {
    if (name.endsWith('.whl') || name === 'manifest.json') py.FS.writeFile(`${pkg}/web/wheels/${name}`, fs.readFileSync(path.join(root, 'web', 'wheels', name)));
  }
  const api = createPyWebGPTApi(null);
  globalThis.pywebgpt = api;
  await py.runPythonAsync(`
import sys
sys.path.insert(0, "/home/pyodide")
import js
from pywebgpt import web_api
try:
    await web_api.start(js.pywebgpt)
except Exception as exc:
    js.pywebgpt._fail(str(exc))
`);
  const info = await api.ready;
  const readyMs = performance.now() - t0;
  const before = process.memoryUsage();
  const sampler = memorySampler();
  const model = await api.load(args.model_url, args.load_options || {});
  const loadMemory = { before, peak: sampler.stop() };
  let warmModel = null;
  if (args.reload) warmModel = await api.load(args.model_url, args.load_options || {});  // second load, e.g. for tools/bench.py
  const results = [];
  for (let i = 0; i < (args.repeat || 1); i++) {
    results.push(await api.generate(args.prompt ?? '', args.options || {}));
  }
  // Optional Python run after the generations (tools/bench.py: app/bench.py on the loaded model).
  const python = args.python ? JSON.parse(await api._py(args.python)) : undefined;
  finish({ info, ready_ms: readyMs, model, load_memory: loadMemory, warm_model: warmModel,
    result: results[results.length - 1], results, python }, 0);
} catch (err) {
  fail(err && err.message ? err.message : err);
}
