// The reporting module: CSV quoting, Vega-rendered SVG plots, atomic writeReport(), and the HTML
// report as a real browser (headless Chromium) renders it. Needs no native addon and no model.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { checkReportData, csvField, renderHtml, renderPlots, RESULT_COLUMNS, toCsv, writeReport, yScaleFor } from '../dist/report/index.js';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** A small sweep: 3 quantizations × 3 routings; the reference (F16, default) has KLD 0. */
function sampleRows() {
  const types = [
    ['F16', 16, 1.0],
    ['Q8_0', 8.5, 1.003],
    ['Q4_K_M', 4.89, 1.04],
  ];
  const routings = [
    ['default', 2, 'none', 1.0],
    ['experts=1 expert-scale=uniform', 1, 'uniform', 1.3],
    ['experts=3 expert-scale=zipf:1', 3, 'zipf:1', 0.99],
  ];
  const rows = [];
  for (const [fileType, bpw, q] of types) {
    for (const [routing, experts, scaleRule, f] of routings) {
      const ref = fileType === 'F16' && routing === 'default';
      const perplexity = 8.25 * q * f;
      rows.push({
        model: `tiny-moe-${fileType}.gguf`,
        fileType,
        sizeBytes: Math.round((1e8 * bpw) / 8),
        bitsPerWeight: bpw,
        routing,
        experts,
        scaleRule,
        perplexity,
        stderr: perplexity * 0.01,
        deltaPercent: (perplexity / 8.25 - 1) * 100,
        kldMean: ref ? 0 : 0.001 * (16 / bpw) ** 3 * f,
        sameTopPercent: ref ? 100 : 97 - 16 / bpw,
        tokensPerSecond: 1000 / bpw,
        threads: 2,
      });
    }
  }
  return rows;
}

function sampleData(rows = sampleRows()) {
  return {
    title: 'Routing × quantization <sweep> & "notes"',
    createdAt: '2025-06-01T10:20:30.000Z',
    settings: { contextSize: 512, chunks: 8, text: 'wiki.test.raw', offload: false },
    fingerprints: { 'model sha256': 'ab'.repeat(32), text: 'cd'.repeat(8) },
    rows,
  };
}

/** The text of every <text> element, entities decoded: what a viewer shows. */
function svgTexts(svg) {
  const decode = (s) =>
    s.replace(/&(lt|gt|quot|#39|apos|amp);/g, (_, e) => ({ lt: '<', gt: '>', quot: '"', '#39': "'", apos: "'", amp: '&' })[e]);
  return [...svg.matchAll(/<text\b[^>]*>([^<]*)<\/text>/g)].map((m) => decode(m[1]));
}

/** Well-formedness: one <svg> root and every element closed in order (a stack check; Chromium parses the files as XML below). */
function assertBalancedSvg(svg) {
  assert.match(svg, /^<svg[\s>]/);
  assert.match(svg, /<\/svg>$/);
  const stack = [];
  for (const [tag, close, name, selfClose] of svg.matchAll(/<(\/?)([a-zA-Z][\w:-]*)\b[^>]*?(\/?)>/g)) {
    if (selfClose) continue;
    if (close) assert.equal(stack.pop(), name, `unbalanced ${tag}`);
    else stack.push(name);
  }
  assert.deepEqual(stack, []);
}

describe('CSV', () => {
  test('quotes commas, quotes, CR and LF as RFC 4180 says; null is an empty field', () => {
    assert.equal(csvField('plain'), 'plain');
    assert.equal(csvField('a,b'), '"a,b"');
    assert.equal(csvField('say "hi"'), '"say ""hi"""');
    assert.equal(csvField('two\nlines'), '"two\nlines"');
    assert.equal(csvField('cr\rhere'), '"cr\rhere"');
    assert.equal(csvField(' padded '), '" padded "');
    assert.equal(csvField(null), '');
    assert.equal(csvField(0.1 + 0.2), '0.30000000000000004');
    assert.equal(csvField(true), 'true');
  });

  test('header in column order, one CRLF-ended line per row, full precision', () => {
    const rows = sampleRows().slice(0, 2);
    rows[1] = { ...rows[1], model: 'odd, "name"\r\n.gguf', deltaPercent: null, kldMean: null, sameTopPercent: null };
    const csv = toCsv(rows);
    assert.ok(csv.endsWith('\r\n'));
    assert.equal(csv.split('\r\n')[0], RESULT_COLUMNS.join(','));
    assert.equal(RESULT_COLUMNS.length, 15);
    const second = csv.slice(csv.indexOf('\r\n', csv.indexOf('\r\n') + 2) + 2);
    assert.ok(second.startsWith('"odd, ""name""\r\n.gguf",F16,'), second);
    assert.match(second, /,,,\d/); // the three null fields, then tokensPerSecond
    assert.ok(csv.includes(String(rows[0].tokensPerSecond)));
  });
});

describe('plots', () => {
  const warnings = [];
  const onWarning = (w) => warnings.push(w);
  before(() => process.on('warning', onWarning));
  after(() => process.off('warning', onWarning));

  test('three valid SVGs with series names, axis titles and titles, no Vega warnings', async () => {
    const rows = sampleRows();
    for (const [i, r] of rows.entries()) if (r.routing === 'default') rows[i] = { ...r, routing: 'default <&> "quoted"' };
    const plots = await renderPlots(rows);
    assert.deepEqual(
      plots.map((p) => p.name),
      ['perplexity-vs-bpw', 'kld-vs-bpw', 'perplexity-vs-experts'],
    );
    for (const p of plots) {
      assertBalancedSvg(p.svg);
      assert.match(p.svg, /width="640" height="400"/, `${p.name} is sized 640×400`);
      assert.ok(!p.svg.includes('<script'), 'no script in an SVG');
      const texts = svgTexts(p.svg);
      assert.ok(texts.includes(p.title), `${p.name} has its title`);
      assert.ok(!texts.some((t) => t.includes('…')), `${p.name}: no label cut short: ${texts.filter((t) => t.includes('…'))}`);
    }
    const [ppl, kld, experts] = plots.map((p) => svgTexts(p.svg));
    for (const t of [ppl, kld]) {
      assert.ok(t.includes('Bits per weight (bpw)'));
      assert.ok(t.includes('Routing'));
      for (const r of ['default <&> "quoted"', 'experts=1 expert-scale=uniform', 'experts=3 expert-scale=zipf:1']) assert.ok(t.includes(r), `legend has ${r}`);
    }
    assert.ok(ppl.includes('Perplexity (PPL, lower is better)'));
    // the KLD values span more than 10×: a log axis, and its title says so; the reference's KLD 0 is left out
    assert.ok(kld.includes('Mean KL divergence (nats), log scale'), kld.join('|'));
    assert.ok(!kld.includes('0'), 'no 0 tick on a log axis');
    assert.ok(experts.includes('Experts used per token (count)') && experts.includes('Perplexity (PPL, lower is better)'));
    for (const r of ['Scale rule', 'none', 'uniform', 'zipf:1']) assert.ok(experts.includes(r), `experts plot legend has ${r}`);
    // The raw special characters never reach the markup unescaped.
    assert.ok(plots[0].svg.includes('default &lt;&amp;&gt;'));
    assert.deepEqual(warnings.map(String), []);
  });

  test('KLD plot only with KLD values; experts plot only with more than one experts count', async () => {
    const rows = sampleRows()
      .filter((r) => r.routing === 'default')
      .map((r) => ({ ...r, kldMean: null, sameTopPercent: null }));
    const plots = await renderPlots(rows);
    assert.deepEqual(
      plots.map((p) => p.name),
      ['perplexity-vs-bpw'],
    );
  });

  test('y axis turns log (symlog with a zero) when values span more than 10×', () => {
    assert.equal(yScaleFor([8, 9, 12]).type, 'linear');
    assert.equal(yScaleFor([1, 10]).type, 'linear');
    const log = yScaleFor([0.001, 0.2]);
    assert.equal(log.type, 'log');
    assert.deepEqual(log.ticks, [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2]);
    const sym = yScaleFor([0, 0.001, 0.2]);
    assert.equal(sym.type, 'symlog');
    assert.equal(sym.ticks[0], 0);
    assert.ok(sym.domain[0] === 0 && sym.domain[1] >= 0.2);
  });
});

describe('writeReport', () => {
  let dir;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'moe-eval-report-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('writes report.html, results.json, results.csv and one .svg per plot, leaving no temp file', async () => {
    const out = join(dir, 'a', 'nested');
    const data = { ...sampleData(), extra: 'not part of ReportData' };
    const w = await writeReport(out, data);
    assert.equal(w.html, join(out, 'report.html'));
    assert.equal(w.json, join(out, 'results.json'));
    assert.equal(w.csv, join(out, 'results.csv'));
    assert.deepEqual(
      w.plots,
      ['perplexity-vs-bpw', 'kld-vs-bpw', 'perplexity-vs-experts'].map((n) => join(out, `${n}.svg`)),
    );
    assert.deepEqual(readdirSync(out).sort(), ['kld-vs-bpw.svg', 'perplexity-vs-bpw.svg', 'perplexity-vs-experts.svg', 'report.html', 'results.csv', 'results.json']);
    const json = JSON.parse(readFileSync(w.json, 'utf8'));
    assert.deepEqual(json, sampleData()); // only ReportData fields, numbers exact
    assert.equal(readFileSync(w.csv, 'utf8').split('\r\n').length, 1 + data.rows.length + 1);
    for (const p of w.plots) assert.match(readFileSync(p, 'utf8'), /^<\?xml version="1.0" encoding="UTF-8"\?>\n<svg /);
  });

  test('each file is replaced by rename (a new inode), not rewritten in place; stale plots go', async () => {
    const out = join(dir, 'again');
    const first = await writeReport(out, sampleData());
    const inodes = [first.html, first.json, first.csv, ...first.plots].map((p) => statSync(p).ino);
    // Without KLD values there is no KLD plot, and the old one must not linger beside the new report.
    const second = await writeReport(out, sampleData(sampleRows().map((r) => ({ ...r, kldMean: null }))));
    const again = [second.html, second.json, second.csv].map((p) => statSync(p).ino);
    for (const [i, ino] of again.entries()) assert.notEqual(ino, inodes[i], 'replaced through a temp file + rename');
    assert.ok(!existsSync(join(out, 'kld-vs-bpw.svg')));
    assert.equal(second.plots.length, 2);
    assert.deepEqual(readdirSync(out).filter((f) => f.includes('.tmp')), []);
  });

  test('a failed write leaves the old file and no temp file', async () => {
    const out = join(dir, 'blocked');
    mkdirSync(join(out, 'report.html'), { recursive: true }); // rename onto a directory fails
    writeFileSync(join(out, 'results.csv'), 'old');
    await assert.rejects(writeReport(out, sampleData()), (e) => ['EISDIR', 'ENOTEMPTY', 'EEXIST', 'EPERM'].includes(e.code));
    assert.deepEqual(readdirSync(out).filter((f) => f.includes('.tmp')), []);
    assert.ok(statSync(join(out, 'report.html')).isDirectory());
  });

  test('bad input: "Expected X for Y but received Z", nothing written', async () => {
    const out = join(dir, 'never');
    const row = sampleRows()[0];
    const cases = [
      [{ ...sampleData(), rows: [] }, RangeError, /^Expected at least one result row for data\.rows but received an array of length 0$/],
      [sampleData([{ ...row, perplexity: NaN }]), TypeError, /^Expected a finite number > 0 for data\.rows\[0\]\.perplexity but received number NaN$/],
      [sampleData([{ ...row, stderr: Infinity }]), RangeError, /for data\.rows\[0\]\.stderr but received number Infinity$/],
      [sampleData([row, { ...row, kldMean: -Infinity }]), RangeError, /for data\.rows\[1\]\.kldMean but received number -Infinity$/],
      [sampleData([{ ...row, deltaPercent: undefined }]), TypeError, /for data\.rows\[0\]\.deltaPercent but received undefined$/],
      [sampleData([{ ...row, sameTopPercent: 101 }]), RangeError, /^Expected a number in \[0, 100\] or null for data\.rows\[0\]\.sameTopPercent/],
      [sampleData([{ ...row, experts: 2.5 }]), TypeError, /^Expected an integer >= 0 for data\.rows\[0\]\.experts/],
      [sampleData([{ ...row, model: '' }]), TypeError, /^Expected a non-empty string for data\.rows\[0\]\.model but received ""$/],
      [{ ...sampleData(), createdAt: 'yesterday' }, RangeError, /^Expected an ISO 8601 date .* for data\.createdAt but received "yesterday"$/],
      [{ ...sampleData(), settings: { ctx: NaN } }, TypeError, /for data\.settings\["ctx"\] but received number NaN$/],
      [{ ...sampleData(), settings: { ctx: null } }, TypeError, /^Expected a string, finite number or boolean for data\.settings\["ctx"\]/],
      [{ ...sampleData(), fingerprints: { a: 1 } }, TypeError, /^Expected a string for data\.fingerprints\["a"\] but received number 1$/],
      [null, TypeError, /^Expected a report data object for data but received null$/],
    ];
    for (const [data, type, message] of cases) {
      await assert.rejects(writeReport(out, data), (e) => e instanceof type && message.test(e.message), `${type.name} ${message}`);
    }
    await assert.rejects(writeReport('', sampleData()), { name: 'TypeError', message: /^Expected a non-empty string for dir but received ""$/ });
    assert.ok(!existsSync(out), 'nothing written for bad input');
  });

  test('the HTML is self-contained and escapes text', async () => {
    const data = checkReportData(sampleData());
    data.rows[0].model = '<img src=x onerror=alert(1)>.gguf';
    data.fingerprints['"><script>'] = '<b>';
    const html = renderHtml(data, await renderPlots(data.rows));
    assert.ok(!/<script/i.test(html), 'no script element, not even an injected one');
    assert.ok(!html.includes('<img'));
    assert.ok(html.includes('&lt;img src=x onerror=alert(1)&gt;.gguf'));
    assert.ok(html.includes('<title>Routing × quantization &lt;sweep&gt; &amp; &quot;notes&quot;</title>'));
    // The only URLs are the SVG and XLink namespace names, which nothing fetches.
    const urls = [...html.matchAll(/\b(?:https?:|file:|data:|\/\/)[^\s"'<>)]*/g)].map((m) => m[0]);
    assert.deepEqual([...new Set(urls)].sort(), ['http://www.w3.org/1999/xlink', 'http://www.w3.org/2000/svg']);
    assert.match(html, /Content-Security-Policy" content="default-src 'none'/);
    // Clip-path ids must stay unique once several SVGs share one document.
    const ids = [...html.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1]);
    assert.equal(new Set(ids).size, ids.length, 'unique ids');
  });
});

describe('report.html in headless Chromium', () => {
  let dir;
  let written;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'moe-eval-chromium-'));
    written = await writeReport(join(dir, 'report'), sampleData());
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs Chromium headless on a file with a fresh profile; returns stdout. No network, no first-run noise. */
  function chromium(file, extra) {
    assert.ok(
      existsSync(CHROMIUM),
      `Chromium is required for this test and was not found at ${CHROMIUM}. Install it with: apt-get update && apt-get install -y chromium (or set CHROMIUM to its path)`,
    );
    const profile = mkdtempSync(join(dir, 'profile-'));
    const args = [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--hide-scrollbars',
      `--user-data-dir=${profile}`,
      ...extra,
      pathToFileURL(file).href,
    ];
    const r = spawnSync(CHROMIUM, args, { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 << 20, env: { ...process.env, HOME: profile } });
    assert.equal(r.error, undefined, `chromium failed to run: ${r.error}`);
    assert.equal(r.status, 0, `chromium exited with ${r.status}: ${r.stderr.slice(-2000)}`);
    return r.stdout;
  }

  test('the DOM has every results row, the settings, fingerprints and the three SVG plots', () => {
    const dom = chromium(written.html, ['--dump-dom']);
    const tbody = dom.match(/<table class="results" id="results">[\s\S]*?<tbody>([\s\S]*?)<\/tbody>/);
    assert.ok(tbody, 'results table present');
    const rows = [...tbody[1].matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((m) => m[1]);
    assert.equal(rows.length, 9);
    assert.match(rows[0], /tiny-moe-F16\.gguf/);
    assert.match(rows[0], /0\.00 %/); // ΔPPL of the reference
    assert.match(rows[0], /0\.000000/); // its KLD
    assert.match(rows[3], /\+0\.30 %/); // Q8_0 default: 8.25 × 1.003
    assert.match(dom, /<table class="kv" id="settings">[\s\S]*contextSize[\s\S]*512/);
    assert.match(dom, /<table class="kv" id="fingerprints">[\s\S]*model sha256[\s\S]*(ab){32}/);
    const figures = [...dom.matchAll(/<figure class="plot" id="plot-([\w-]+)"[^>]*>\s*<svg\b/g)].map((m) => m[1]);
    assert.deepEqual(figures, ['perplexity-vs-bpw', 'kld-vs-bpw', 'perplexity-vs-experts']);
    assert.match(dom, /Bits per weight \(bpw\)/);
    assert.ok(!/<script/i.test(dom));
  });

  test('each .svg file parses as XML in the browser', () => {
    for (const p of written.plots) {
      const dom = chromium(p, ['--dump-dom']);
      assert.ok(!dom.includes('parsererror'), `${p} is not well-formed: ${dom.slice(0, 500)}`);
      assert.match(dom, /<svg[\s\S]*<\/svg>/);
    }
  });

  test('a screenshot renders (a non-trivial PNG)', () => {
    const png = join(dir, 'report.png');
    chromium(written.html, [`--screenshot=${png}`, '--window-size=1200,2000']);
    const bytes = readFileSync(png);
    assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.ok(bytes.length > 50_000, `a mostly empty page? ${bytes.length} bytes`);
  });
});
