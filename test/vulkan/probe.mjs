#!/usr/bin/env node
// A child process of the Vulkan suite: evaluates logits for a list of jobs and writes them to files, with
// a marker on stderr around each, so that what ggml-vulkan's perf logger (GGML_VK_PERF_LOGGER=1, read
// once when the backend starts: hence a process of its own) prints for that job can be told apart.
// Run with GGML_VK_DISABLE_FUSION=1 for the unfused graphs, or without GGML_VK_VISIBLE_DEVICES for the
// CPU backend (ggml-vulkan then finds no device).
//   node test/vulkan/probe.mjs '{"out": DIR, "jobs": [{ "tag", "path", "gpuLayers", "routing", "tokens", "flashAttention"? }]}'
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { loadModel } from '../../dist/index.js';
import { sampleText } from '../helpers/fixtures.mjs';

const { out, jobs } = JSON.parse(process.argv[2]);
const models = new Map();
for (const job of jobs) {
  const key = `${job.path}@${job.gpuLayers}`;
  if (!models.has(key)) models.set(key, await loadModel(job.path, { gpuLayers: job.gpuLayers }));
  const model = models.get(key);
  const ctx = await model.createContext({ contextSize: 256, batchSize: 256, threads: 2, routing: job.routing, ...(job.flashAttention ? { flashAttention: job.flashAttention } : {}) });
  const tokens = (await model.tokenize(sampleText())).subarray(0, job.tokens);
  process.stderr.write(`@@probe begin ${job.tag}\n`);
  const logits = await ctx.logits(tokens);
  process.stderr.write(`@@probe end ${job.tag}\n`);
  await ctx.dispose();
  writeFileSync(join(out, `${job.tag}.f32`), Buffer.from(logits.buffer, logits.byteOffset, logits.byteLength));
}
for (const m of models.values()) await m.dispose();
