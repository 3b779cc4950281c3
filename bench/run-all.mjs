// npm run bench: every benchmark, one summary. Figures are ratios against peers measured in the same run.
import { largeModel, machine } from './lib.mjs';
import { benchPerplexity } from './perplexity-throughput.mjs';
import { benchReconfigure } from './reconfigure.mjs';
import { benchRoutingOverhead } from './routing-overhead.mjs';
import { benchMemory } from './memory.mjs';
import { benchNodeLlamaCpp } from './node-llama-cpp.mjs';

console.log(`moe-eval benchmarks — ${machine()} — ${new Date().toISOString()}`);
await benchPerplexity();
for (const type of ['f16', 'q4_k_m']) {
  const model = await largeModel(type);
  await benchPerplexity({ model, chunks: 8, rounds: 3, label: `generated 175 M MoE, ${type}` });
}
await benchRoutingOverhead();
await benchReconfigure();
await benchMemory();
await benchNodeLlamaCpp();
