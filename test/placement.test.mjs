// Which device each layer runs on (issue 18): devices() lists ggml's devices, Model.info.placement names
// one per layer and for the output layer, equal to what llama.cpp's own load_tensors logs; `moe-eval info`
// prints both. In a CPU build every layer is the CPU's, whatever gpuLayers asks for. (The Vulkan suite,
// test/vulkan/, checks a Vulkan build: Vulkan0 with -ngl 99, the CPU with -ngl 0.)
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { devices, systemInfo } from '../dist/index.js';
import { fixture } from './helpers/fixtures.mjs';
import { loadLogged } from './helpers/placement.mjs';
import { runCli as run } from './helpers/cli.mjs';

describe('devices and layer placement (CPU build)', () => {
  test('devices(): the CPU, described', () => {
    const ds = devices();
    const cpu = ds.find((d) => d.type === 'cpu');
    assert.ok(cpu, JSON.stringify(ds));
    assert.equal(cpu.name, 'CPU');
    assert.equal(cpu.backend, 'CPU');
    assert.ok(cpu.description.length > 0);
    assert.ok(cpu.memoryTotal > 0 && cpu.memoryFree > 0 && cpu.memoryFree <= cpu.memoryTotal);
    // a CPU build has no other device, and its system info line names no GPU backend
    assert.deepEqual(ds.map((d) => d.name), ['CPU'], JSON.stringify(ds));
    assert.doesNotMatch(systemInfo(), /Vulkan|CUDA|Metal/);
  });

  for (const gpuLayers of [0, 99]) {
    test(`gpuLayers ${gpuLayers}: every layer and the output on the CPU, as llama.cpp logs it`, async () => {
      const { model, logged } = await loadLogged(await fixture('llama'), { gpuLayers });
      try {
        assert.deepEqual(model.info.placement, logged);
        assert.deepEqual(model.info.placement, { layers: new Array(model.info.layers).fill('CPU'), output: 'CPU' });
      } finally {
        await model.dispose();
      }
    });
  }

  test('moe-eval info prints the devices and the placement (table and --json)', async () => {
    const m = await fixture('llama');
    const t = await run(['info', '-m', m]);
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout, /devices\s*│\s*CPU \(CPU, cpu: .+\)/);
    assert.match(t.stdout, /placement\s*│\s*layers 0-1 CPU; output CPU/);
    const j = await run(['info', '-m', m, '--json']);
    assert.equal(j.code, 0, j.stderr);
    const info = JSON.parse(j.stdout);
    assert.deepEqual(info.placement, { layers: ['CPU', 'CPU'], output: 'CPU' });
    assert.deepEqual(info.devices.map((d) => d.name), ['CPU']);
  });
});
