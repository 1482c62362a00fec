import { invalid } from '../../lib/errors.ts';

export const MAX_COMMAND = 8192;

/**
 * Split an SSH exec command line into words the way a POSIX shell would for
 * plain words and quotes ('...', "...", backslash). No expansion, no
 * operators: `;`, `|`, `$(...)` are just characters in a word.
 */
export function splitCommand(line: string): string[] {
  if (line.length > MAX_COMMAND) throw invalid(`command longer than ${MAX_COMMAND} characters`);
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let q: '"' | "'" | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (q === "'") {
      if (c === "'") q = undefined;
      else cur += c;
      continue;
    }
    if (q === '"') {
      if (c === '"') q = undefined;
      else if (c === '\\' && i + 1 < line.length && '"\\$`'.includes(line[i + 1]!)) cur += line[++i];
      else cur += c;
      continue;
    }
    if (c === "'" || c === '"') {
      q = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < line.length) {
      cur += line[++i];
      inWord = true;
    } else if (c === ' ' || c === '\t' || c === '\n') {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (q) throw invalid(`unterminated ${q} quote in the command`);
  if (inWord) words.push(cur);
  return words;
}
