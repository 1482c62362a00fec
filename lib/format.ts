/** Sizes the way an admin reads them: 512 B, 1.5 KiB, 3.0 GiB. */
export function bytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return i ? `${v.toFixed(1)} ${u[i]}` : `${v} B`;
}

/** How many, and the first few by name: `1 instance: web1`, `7 instances: a, b, c, d, e, …`. */
export function countedNames(noun: string, names: readonly string[], shown = 5): string {
  return `${names.length} ${noun}${names.length === 1 ? '' : 's'}: ${names.slice(0, shown).join(', ')}${names.length > shown ? ', …' : ''}`;
}
