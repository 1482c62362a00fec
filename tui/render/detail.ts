/**
 * The text of a `show` command: one fact per line, keys aligned, and times as
 * the console shows them. `-o json` carries the data; this is for people.
 */

/** "3m", "2h", "5d": how long ago, as a console and `-o table` show it. */
export function age(iso: string, now = Date.now()): string {
  const s = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** "2026-11-26 12:00:00 (10m ago)", or "… (in 364d)" for a time still to come. */
export function when(iso: string, now = Date.now()): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const at = new Date(t).toISOString().replace('T', ' ').slice(0, 19);
  return t > now ? `${at} (in ${age(new Date(now).toISOString(), t)})` : `${at} (${age(iso, now)} ago)`;
}

/** `key: value` lines with the values aligned; a continuation line (empty key) is indented under its value. */
export function factLines(lines: readonly (readonly [string, string])[]): string {
  const w = Math.max(...lines.map(([k]) => k.length)) + 1;
  return lines.map(([k, v]) => `${(k ? `${k}:` : '').padEnd(w)} ${v}`).join('\n') + '\n';
}
