// Where llama.cpp itself says it put each layer: its load_tensors debug log ("layer N assigned to device
// X", the output layer as layer n_layer), captured through setLogger while the model loads. The
// independent side for Model.info.placement.
import { loadModel, setLogger } from '../../dist/index.js';

export async function loadLogged(path, options = {}) {
  const assigned = new Map();
  let waiting = null; // [layer, resolve]: log lines arrive on the JS thread in their own callbacks
  setLogger((level, text) => {
    for (const m of text.matchAll(/load_tensors: layer +(\d+) assigned to device (\S+?),/g)) {
      assigned.set(Number(m[1]), m[2]);
      if (waiting && assigned.has(waiting[0])) waiting[1]();
    }
  }, 'debug');
  try {
    const model = await loadModel(path, options);
    const n = model.info.layers;
    // the output layer is logged last
    if (!assigned.has(n)) await new Promise((resolve) => (waiting = [n, resolve]));
    const logged = { layers: Array.from({ length: n }, (_, i) => assigned.get(i)), output: assigned.get(n) };
    return { model, logged };
  } finally {
    setLogger(null);
  }
}
