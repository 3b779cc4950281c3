// npm run bench: every benchmark, one summary. Figures are ratios against peers measured in the same run.
import { largeModel, machine } from './lib.mjs';
import { benchPerplexity } from './perplexity-throughput.mjs';
import { benchReconfigure } from './reconfigure.mjs';
import { benchRoutingOverhead } from './routing-overhead.mjs';
import { benchRpc } from './rpc.mjs';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { benchNodeLlamaCpp } from './node-llama-cpp.mjs';
import { benchLlamaBench } from './llama-bench.mjs';
import { benchSkip } from './skip-experts.mjs';
import { benchPruneSweep, benchPrunedSpeed } from './prune.mjs';

console.log(`moe-eval benchmarks — ${machine()} — ${new Date().toISOString()}`);
await benchPerplexity();
for (const type of ['f16', 'q4_k_m']) {
  const model = await largeModel(type);
  await benchPerplexity({ model, chunks: 8, rounds: 5, label: `generated 175 M MoE, ${type}` });
}
await benchLlamaBench();
await benchSkip();
await benchRoutingOverhead();
await benchReconfigure();
// memory in a process of its own, so that the peak belongs to the sweep alone
execFileSync(process.execPath, [join(dirname(fileURLToPath(import.meta.url)), 'memory.mjs')], { stdio: 'inherit' });
await benchNodeLlamaCpp();
await benchNodeLlamaCpp({ model: await largeModel('f16'), label: 'generated 175 M MoE, vocabulary 32,000', chunks: 2 });
await benchRpc();
await benchPruneSweep();
await benchPrunedSpeed();
