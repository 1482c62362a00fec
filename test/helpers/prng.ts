/** A seeded PRNG (mulberry32): fuzz tests print the seed so a failure can be replayed. */
export function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
  /** A hostile variant of a valid packet: flipped bits, cut short, stretched, spliced, or noise. */
  const mutate = (valid: Buffer): Buffer => {
    const b = Buffer.from(valid);
    switch (int(6)) {
      case 0:
        for (let i = 0, n = 1 + int(8); i < n; i++) {
          const at = int(b.length);
          b[at] = b[at]! ^ (1 << int(8));
        }
        return b;
      case 1:
        return b.subarray(0, int(b.length));
      case 2:
        return Buffer.concat([b, bytes(int(64))]);
      case 3: {
        const at = int(b.length);
        bytes(Math.min(1 + int(16), b.length - at)).copy(b, at);
        return b;
      }
      case 4:
        return bytes(int(600));
      default: {
        const at = int(b.length);
        b[at] = [0, 0xff, 0xc0, 0x3f, 0x40, 0x80][int(6)]!;
        if (at + 1 < b.length) b[at + 1] = int(256);
        return b;
      }
    }
  };
  return { next, int, bytes, mutate, pick: <T>(xs: readonly T[]): T => xs[int(xs.length)]! };
}
