import blessed from 'blessed';
import contrib from 'blessed-contrib';

/** One titled sparkline: the bars are already made (tui/render sparkBars). */
export interface SparkSpec {
  title: string;
  bars: string;
}

export type Sparklines = blessed.Widgets.BoxElement;

/** A blessed-contrib sparkline box in `parent` (titles white and bold, bars green). */
export function sparklines(parent: blessed.Widgets.BoxElement, pos: { top: number | string; height: number | string }): Sparklines {
  const w = contrib.sparkline({
    // With several screens (one per SSH session) blessed needs to be told which one.
    screen: parent.screen,
    top: pos.top,
    left: 0,
    width: '100%-2',
    height: pos.height,
    tags: true,
    style: { fg: 'green', titleFg: 'white' },
  } as never) as unknown as Sparklines;
  parent.append(w);
  return w;
}

/**
 * Show the series, two lines each (title, bars), as many as fit; the last
 * line says how many did not. contrib's own setData rescales each series to
 * its min..max, so the bars come scaled 0..100 from the row function instead.
 */
export function setSparklines(w: Sparklines, specs: SparkSpec[], more: (hidden: number) => string): void {
  const rows = Math.max(0, (w.height as number) || 0);
  let fit = Math.floor(rows / 2);
  if (fit < specs.length) fit = Math.max(0, Math.floor((rows - 1) / 2));
  const shown = specs.slice(0, fit);
  const lines: string[] = [];
  for (const s of shown) lines.push(`{bold}{white-fg}${blessed.escape(s.title)}{/white-fg}{/bold}`, s.bars);
  if (shown.length < specs.length) lines.push(blessed.escape(more(specs.length - shown.length)));
  w.setContent(lines.join('\n'));
}
