/**
 * The random task selection of llama-perplexity, bit for bit: std::mt19937 seeded with 1, and the two
 * ways perplexity.cpp draws an index from it — libstdc++'s std::uniform_int_distribution<size_t>
 * (HellaSwag) and `int(scale * rng() * n)` in single precision (Winogrande, multiple choice).
 * (libstdc++ ≥ 11 draws uniform integers by Lemire's method; llama-perplexity built with another C++
 * library selects other tasks.)
 */

/** std::mt19937 (32-bit Mersenne Twister, the C++ standard's parameters). */
export class Mt19937 {
  readonly #mt = new Uint32Array(624);
  #index = 624;

  constructor(seed: number) {
    this.#mt[0] = seed >>> 0;
    for (let i = 1; i < 624; i++) {
      const prev = this.#mt[i - 1]! ^ (this.#mt[i - 1]! >>> 30);
      // 1812433253 * prev + i, modulo 2^32, without losing precision
      this.#mt[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
  }

  /** The next 32-bit output, as an unsigned integer. */
  next(): number {
    const mt = this.#mt;
    if (this.#index >= 624) {
      for (let i = 0; i < 624; i++) {
        const y = (mt[i]! & 0x80000000) | (mt[(i + 1) % 624]! & 0x7fffffff);
        mt[i] = mt[(i + 397) % 624]! ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      this.#index = 0;
    }
    let y = mt[this.#index++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }
}

/**
 * std::uniform_int_distribution<size_t>(0, n - 1)(rng) as libstdc++ (GCC ≥ 11) computes it for a
 * 32-bit generator: Lemire's nearly divisionless method with a 64-bit product.
 */
export function uniformIndex(rng: Mt19937, n: number): number {
  const range = BigInt(n);
  let product = BigInt(rng.next()) * range;
  let low = product & 0xffffffffn;
  if (low < range) {
    const threshold = ((1n << 32n) - range) % range;
    while (low < threshold) {
      product = BigInt(rng.next()) * range;
      low = product & 0xffffffffn;
    }
  }
  return Number(product >> 32n);
}

/**
 * `int(scale * rng() * n)` with `float scale = 1/(1.f + (float)rng.max())`: every step in single
 * precision, as in perplexity.cpp. The float product can round up to n (llama-perplexity then reads
 * past its index array); that case, about one draw in 2^25, takes the last index.
 */
export function floatScaledIndex(rng: Mt19937, n: number): number {
  const scale = Math.fround(1 / Math.fround(1 + 4294967295));
  const j = Math.trunc(Math.fround(Math.fround(scale * Math.fround(rng.next())) * Math.fround(n)));
  return Math.min(j, n - 1);
}

/** Winogrande's and multiple choice's selection of `count` of `n` tasks (indices in selection order). */
export function selectFloatScaled(n: number, count: number): number[] {
  const rng = new Mt19937(1);
  const aux = Array.from({ length: n }, (_, i) => i);
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const j = floatScaledIndex(rng, aux.length);
    out.push(aux[j]!);
    aux[j] = aux[aux.length - 1]!;
    aux.pop();
  }
  return out;
}

/** HellaSwag's selection: `count` draws without replacement, each erasing the drawn task. */
export function selectHellaswag(n: number, count: number): number[] {
  const rng = new Mt19937(1);
  const left = Array.from({ length: n }, (_, i) => i);
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const idx = uniformIndex(rng, left.length);
    out.push(left[idx]!);
    left.splice(idx, 1);
  }
  return out;
}
