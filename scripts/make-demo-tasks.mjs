#!/usr/bin/env node
// Writes small task files in llama-perplexity's three multiple-choice formats from the demo model's
// held-out text (King James Bible, public domain), into models/demo/tasks/:
//   hellaswag.txt       — 6 lines per task: "Book N: first half of a verse", gold index, 4 endings
//                         (the verse's true second half among the second halves of three other verses)
//   winogrande.csv      — index,"sentence with _",choice1,choice2,answer: a word of a verse blanked out,
//                         the true word against a word of another verse (header line first, as the
//                         public dataset files have)
//   multiple-choice.bin — the binary format: the first half of a verse, its true continuation among
//                         1 to 4 others (2 to 5 answers), label 1 on the true one
// Deterministic (no randomness but a fixed LCG). Usage: node scripts/make-demo-tasks.mjs [count=120]
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { writeMultipleChoiceFile } from '../dist/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const count = Number(process.argv[2] ?? 120);

/** Verses of the held-out text with their chapter: [{ chapter: 'Genesis 16', text }]. */
export function verses(text) {
  const out = [];
  let chapter = '';
  for (const line of text.split('\n')) {
    const v = /^\d+ (.+)$/.exec(line);
    if (v) out.push({ chapter, text: v[1] });
    else if (line.trim() !== '') chapter = line.trim();
  }
  return out;
}

function lcg(seed) {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s >>> 16) % n;
  };
}

function split(text) {
  const words = text.split(' ');
  const half = Math.ceil(words.length / 2);
  return [words.slice(0, half).join(' '), words.slice(half).join(' ')];
}

export function makeTasks(heldout, n) {
  const all = verses(heldout).filter((v) => v.text.split(' ').length >= 12 && v.text.split(' ').length <= 40 && !v.text.includes('"'));
  const step = Math.max(1, Math.floor(all.length / (3 * n)));
  const pick = (i) => all[(i * step) % all.length];
  const rand = lcg(20261129);

  const hellaswag = [];
  for (let i = 0; i < n; i++) {
    const v = pick(i);
    const [ctx, end] = split(v.text);
    const gold = rand(4);
    const endings = [];
    for (let k = 0; k < 4; k++) endings.push(k === gold ? end : split(all[rand(all.length)].text)[1]);
    hellaswag.push(`${v.chapter}: ${ctx}`, String(gold), ...endings);
  }

  const wino = ['index,sentence,option1,option2,answer'];
  for (let i = 0; i < n; i++) {
    const v = pick(n + i);
    const words = v.text.split(' ');
    // a word in the first two thirds that is a plain word (letters only) of 3+ letters
    let at = Math.floor(words.length / 3) + rand(Math.floor(words.length / 3));
    while (at > 0 && !/^[A-Za-z]{3,}$/.test(words[at])) at--;
    if (at === 0) at = 1;
    const word = words[at].replace(/[^A-Za-z']/g, '') || words[at];
    const otherWords = all[rand(all.length)].text.split(' ').map((w) => w.replace(/[^A-Za-z]/g, ''));
    const other = otherWords.slice(Math.floor(otherWords.length / 2)).find((w) => w.length >= 4 && w !== word) ?? 'LORD';
    const sentence = [...words.slice(0, at), words[at].replace(word, '_'), ...words.slice(at + 1)].join(' ');
    const answer = 1 + rand(2);
    const choices = answer === 1 ? [word, other] : [other, word];
    const field = sentence.includes(',') ? `"${sentence}"` : sentence;
    wino.push(`${i},${field},${choices[0]},${choices[1]},${answer}`);
  }

  const mc = [];
  for (let i = 0; i < n; i++) {
    const v = pick(2 * n + i);
    const [question, truth] = split(v.text);
    const k = 2 + rand(4); // 2..5 answers
    const right = rand(k);
    const answers = [];
    for (let a = 0; a < k; a++) answers.push(a === right ? truth : split(all[rand(all.length)].text)[1]);
    mc.push({ question, answers, labels: answers.map((_, a) => (a === right ? 1 : 0)) });
  }
  return { hellaswag: hellaswag.join('\n') + '\n', winogrande: wino.join('\n') + '\n', multipleChoice: writeMultipleChoiceFile(mc) };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const out = join(root, 'models', 'demo', 'tasks');
  mkdirSync(out, { recursive: true });
  const t = makeTasks(readFileSync(join(root, 'models', 'demo', 'heldout.txt'), 'utf8'), count);
  writeFileSync(join(out, 'hellaswag.txt'), t.hellaswag);
  writeFileSync(join(out, 'winogrande.csv'), t.winogrande);
  writeFileSync(join(out, 'multiple-choice.bin'), t.multipleChoice);
  console.log(`wrote ${count} tasks of each format to ${out}`);
}
