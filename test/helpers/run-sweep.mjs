// A sweep in its own process, for the kill-and-resume test: node run-sweep.mjs MODEL TEXTFILE OUT
import { sweep } from '../../dist/index.js';

const [model, file, out] = process.argv.slice(2);
await sweep(model, {
  grid: { experts: [1, 2, 3, 4], expertScale: ['none', 'uniform'] },
  file,
  out,
  contextSize: 64,
  batchSize: 128,
  threads: 1,
  chunks: 6,
  reference: 'default',
  onPoint: (row, done, total) => process.stdout.write(`point ${done}/${total} ${row.routing} ${row.perplexity}\n`),
});
