// Seeded mutations of a valid GGUF file, aimed at the places a loader trusts: header counts, key-value
// types and lengths, tensor dimensions, types and offsets, and the file's length. Used by
// test/hostile-files.test.mjs (a fixed number of cases per CI run) and scripts/fuzz-gguf.mjs (many more).

/** xorshift32: small, seedable, identical on every platform. */
export function rng(seed) {
  let s = Math.imul((seed ^ 0x9e3779b9) >>> 0, 2654435761) >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
  for (let k = 0; k < 8; k++) next(); // decorrelate nearby seeds
  return { next, int: (n) => Math.floor(next() * n), pick: (a) => a[Math.floor(next() * a.length)] };
}

const SCALAR_SIZE = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

/** Offsets of the structures in a GGUF v3 file (enough to aim mutations). */
export function layout(buf) {
  let o = 24;
  const nTensors = Number(buf.readBigUInt64LE(8));
  const nKv = Number(buf.readBigUInt64LE(16));
  const kvs = [];
  const readStr = () => {
    const len = Number(buf.readBigUInt64LE(o));
    const at = o;
    o += 8 + len;
    return at;
  };
  for (let i = 0; i < nKv; i++) {
    const keyAt = readStr();
    const typeAt = o;
    const type = buf.readUInt32LE(o);
    o += 4;
    let arrayAt = -1;
    if (type === 8) readStr();
    else if (type === 9) {
      arrayAt = o;
      const at = buf.readUInt32LE(o);
      const n = Number(buf.readBigUInt64LE(o + 4));
      o += 12;
      if (at === 8) for (let j = 0; j < n; j++) readStr();
      else o += n * SCALAR_SIZE[at];
    } else o += SCALAR_SIZE[type];
    kvs.push({ keyAt, typeAt, type, arrayAt });
  }
  const tensors = [];
  for (let i = 0; i < nTensors; i++) {
    const nameAt = readStr();
    const nDimsAt = o;
    const nDims = buf.readUInt32LE(o);
    o += 4;
    const dimsAt = o;
    o += 8 * nDims;
    const typeAt = o;
    o += 4;
    const offsetAt = o;
    o += 8;
    tensors.push({ nameAt, nDimsAt, nDims, dimsAt, typeAt, offsetAt });
  }
  return { nTensors, nKv, kvs, tensors, infoEnd: o };
}

const HUGE = [0xffffffffffffffffn, 0x7fffffffffffffffn, 0x100000000n, 1n << 40n, 0n];

/** One hostile variant of `valid` (a Buffer) for case number `i` of seed `seed`; returns { name, data }. */
export function mutate(valid, seed, i) {
  const r = rng(Math.imul(seed, 1000003) + i);
  const L = layout(valid);
  const b = Buffer.from(valid);
  const kind = r.int(12);
  const u64 = (at, v) => b.writeBigUInt64LE(BigInt.asUintN(64, v), at);
  switch (kind) {
    case 0: // truncation anywhere
      return { name: 'truncated', data: b.subarray(0, r.int(valid.length)) };
    case 1: { // bit flips in the header
      for (let k = 0; k < 1 + r.int(3); k++) b[4 + r.int(20)] ^= 1 << r.int(8);
      return { name: 'header bit flips', data: b };
    }
    case 2: { // bit flips in the key-value section
      const end = L.tensors.length ? L.tensors[0].nameAt : L.infoEnd;
      for (let k = 0; k < 1 + r.int(4); k++) b[24 + r.int(end - 24)] ^= 1 << r.int(8);
      return { name: 'key-value bit flips', data: b };
    }
    case 3: { // bit flips in the tensor-info section
      const start = L.tensors.length ? L.tensors[0].nameAt : 24;
      for (let k = 0; k < 1 + r.int(4); k++) b[start + r.int(L.infoEnd - start)] ^= 1 << r.int(8);
      return { name: 'tensor-info bit flips', data: b };
    }
    case 4: // absurd counts
      u64(r.next() < 0.5 ? 8 : 16, r.pick(HUGE));
      return { name: 'absurd count', data: b };
    case 5: { // absurd string length (a key or a string value)
      const kv = r.pick(L.kvs);
      u64(kv.keyAt, r.pick(HUGE));
      return { name: 'absurd string length', data: b };
    }
    case 6: { // wrong value type
      const kv = r.pick(L.kvs);
      b.writeUInt32LE(r.pick([0, 4, 5, 6, 7, 8, 9, 10, 12, 13, 99, 0xffffffff]), kv.typeAt);
      return { name: 'wrong value type', data: b };
    }
    case 7: { // array of absurd length or element type
      const arrays = L.kvs.filter((k) => k.arrayAt >= 0);
      if (!arrays.length) return { name: 'truncated', data: b.subarray(0, 100) };
      const a = r.pick(arrays);
      if (r.next() < 0.5) u64(a.arrayAt + 4, r.pick(HUGE));
      else b.writeUInt32LE(r.pick([9, 13, 0xffff]), a.arrayAt);
      return { name: 'hostile array', data: b };
    }
    case 8: { // duplicate key: copy one key's name bytes over another of the same length
      const byLen = new Map();
      for (const kv of L.kvs) {
        const len = Number(valid.readBigUInt64LE(kv.keyAt));
        byLen.set(len, [...(byLen.get(len) ?? []), kv]);
      }
      const groups = [...byLen.values()].filter((g) => g.length > 1);
      if (!groups.length) return { name: 'truncated', data: b.subarray(0, 200) };
      const g = r.pick(groups);
      const [x, y] = [g[0], g[1]];
      const len = Number(valid.readBigUInt64LE(x.keyAt));
      valid.copy(b, y.keyAt + 8, x.keyAt + 8, x.keyAt + 8 + len);
      return { name: 'duplicate key', data: b };
    }
    case 9: { // absurd tensor dimensions or dimension count
      const t = r.pick(L.tensors);
      if (r.next() < 0.3) b.writeUInt32LE(r.pick([0, 5, 64, 0xffffffff]), t.nDimsAt);
      else u64(t.dimsAt + 8 * r.int(t.nDims), r.pick([...HUGE, 3n, 1n << 31n]));
      return { name: 'absurd tensor shape', data: b };
    }
    case 10: { // bad tensor type
      const t = r.pick(L.tensors);
      b.writeUInt32LE(r.pick([4, 5, 31, 39, 40, 1000, 0xffffffff]), t.typeAt);
      return { name: 'bad tensor type', data: b };
    }
    default: { // tensor data offset past the end of the file, or misaligned
      const t = r.pick(L.tensors);
      u64(t.offsetAt, r.pick([BigInt(valid.length), BigInt(valid.length) * 4n, 1n, 33n, ...HUGE]));
      return { name: 'tensor offset out of bounds', data: b };
    }
  }
}
