// npm run bench: every benchmark, one summary. Figures are ratios against peers measured in the same run.
import { machine } from './lib.mjs';
import { benchPerplexity } from './perplexity-throughput.mjs';
import { benchReconfigure } from './reconfigure.mjs';
import { benchRoutingOverhead } from './routing-overhead.mjs';
import { benchMemory } from './memory.mjs';
import { benchNodeLlamaCpp } from './node-llama-cpp.mjs';

console.log(`moe-eval benchmarks — ${machine()} — ${new Date().toISOString()}`);
await benchPerplexity();
await benchRoutingOverhead();
await benchReconfigure();
await benchMemory();
await benchNodeLlamaCpp();
