/** Minimal YAML emitter for `-o yaml` (JSON-compatible data only). */
export function toYaml(v: unknown, indent = 0): string {
  const pad = ' '.repeat(indent);
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]\n';
    return v
      .map((x) => {
        const inner = toYaml(x, indent + 2);
        return isScalar(x) ? `${pad}- ${inner}` : `${pad}-\n${inner}`;
      })
      .join('');
  }
  if (v && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
    if (entries.length === 0) return '{}\n';
    return entries
      .map(([k, x]) => {
        const key = /^[A-Za-z_][\w.-]*$/.test(k) ? k : JSON.stringify(k);
        if (isScalar(x) || (Array.isArray(x) && x.length === 0) || (x && typeof x === 'object' && Object.keys(x).length === 0)) return `${pad}${key}: ${toYaml(x, 0)}`;
        return `${pad}${key}:\n${toYaml(x, indent + 2)}`;
      })
      .join('');
  }
  return scalar(v) + '\n';
}

const isScalar = (x: unknown) => x === null || typeof x !== 'object';

function scalar(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  const s = String(v);
  // Quote anything a YAML reader could take for another type or syntax.
  if (s === '' || /^[\s]|[\s]$|[:#\[\]{},&*!|>'"%@`\n]|^(true|false|null|yes|no|~|-?\d[\d.e+-]*)$/i.test(s) || s.startsWith('- ')) return JSON.stringify(s);
  return s;
}
