// moe-eval bench against llama.cpp's own llama-bench (built from the same vendor tree and objects) on the
// default routing: prompt processing (pp) and generation (tg) tokens/s, alternating runs, the median of
// the per-round ratios moe-eval / llama-bench (each side's own avg_ts over its repetitions). Target: ±5 %.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { bench, loadModel } from '../dist/index.js';
import { demoModel, line, median, root, spread } from './lib.mjs';

export const llamaBench = join(root, process.env.MOE_EVAL_BUILD_DIR || 'build', 'tools', 'llama-bench', 'llama-bench');

export async function runLlamaBench(args) {
  if (!existsSync(llamaBench)) throw new Error(`${llamaBench} is missing: run \`npm run build:peers\``);
  const { stdout } = await promisify(execFile)(llamaBench, [...args, '-o', 'json'], { maxBuffer: 64 << 20 });
  return JSON.parse(stdout);
}

export async function benchLlamaBench({ model = demoModel, label = 'demo model', nPrompt = 256, nGen = 64, repetitions = 3, threads = 2, rounds = 5 } = {}) {
  const m = await loadModel(model);
  const results = [];
  for (const [name, test] of [[`pp${nPrompt}`, { nPrompt, nGen: 0 }], [`tg${nGen}`, { nPrompt: 0, nGen }]]) {
    const ours = [];
    const peer = [];
    const peerRun = async () => {
      const [row] = await runLlamaBench(['-m', model, '-p', String(test.nPrompt), '-n', String(test.nGen), '-r', String(repetitions), '-t', String(threads), '-ngl', '0']);
      peer.push(row.avg_ts);
    };
    const ourRun = async () => {
      const { rows } = await bench(m, { tests: [test], repetitions, threads });
      ours.push(rows[0].avg_ts);
    };
    for (let i = 0; i < rounds; i++) {
      if (i % 2 === 0) {
        await peerRun();
        await ourRun();
      } else {
        await ourRun();
        await peerRun();
      }
    }
    const ratio = median(ours.map((x, i) => x / peer[i]));
    const ok = Math.abs(ratio - 1) <= 0.05;
    line(`bench ${name} vs llama-bench (${label})`, `× ${ratio.toFixed(3)} (${median(ours).toFixed(1)} vs ${median(peer).toFixed(1)} t/s, median of ${rounds} pairs; spreads ${spread(ours).toFixed(1)} % / ${spread(peer).toFixed(1)} %)`, { ok, text: '0.95–1.05' });
    results.push({ test: name, ratio, ours, peer });
  }
  await m.dispose();
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) await benchLlamaBench();
