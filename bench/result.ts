/** One benchmark figure against its peer measured in the same run. */
export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  /** What it is compared against ("dnsmasq", "curl -o", or "bar" for an absolute bar). */
  peer: string;
  peerValue: number | null;
  ratio: number | null;
  /** The bar, as text: e.g. ">= 0.5", "< 1.10", "< 0.5 s". */
  bar: string;
  pass: boolean;
}

/** Build a result; `higherIsBetter` decides how the ratio is judged against `min`/`max`. */
export function result(r: { name: string; value: number; unit: string; peer: string; peerValue: number | null; bar: string; pass: (ratio: number | null, value: number) => boolean }): BenchResult {
  const ratio = r.peerValue ? r.value / r.peerValue : null;
  return { name: r.name, value: round(r.value), unit: r.unit, peer: r.peer, peerValue: r.peerValue === null ? null : round(r.peerValue), ratio: ratio === null ? null : round(ratio), bar: r.bar, pass: r.pass(ratio, r.value) };
}

export const round = (x: number) => Math.round(x * 1000) / 1000;

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** A benchmark module's default export. */
/** Median wall time in ms of `n` calls of `fn`, one after another. */
export async function medianMs(n: number, fn: () => Promise<unknown>): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await fn();
    xs.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return median(xs);
}

export type Bench = () => Promise<BenchResult[]>;
