import type blessed from 'blessed';
import contrib from 'blessed-contrib';

export interface GaugeSpec {
  label: string;
  /** 0..100 */
  percent: number;
  stroke?: string;
}

/**
 * Lay out blessed-contrib gauges side by side in `parent`. contrib sizes a
 * gauge's canvas once, when attached, so gauges are rebuilt on every update
 * (cheap: a few cells) and a resize simply re-lays them out on the next one.
 */
export function setGauges(parent: blessed.Widgets.BoxElement, specs: GaugeSpec[]): void {
  for (const child of [...parent.children]) if ((child as { type?: string }).type === 'gauge') child.destroy();
  const n = specs.length;
  specs.forEach((s, i) => {
    // Not `parent:`: contrib builds its canvas on 'attach', which `parent` fires before the listener exists.
    const g = contrib.gauge({
      // With several screens (one per SSH session) blessed needs to be told which one.
      screen: parent.screen,
      top: 0,
      left: `${Math.floor((i * 100) / n)}%`,
      width: `${Math.floor(100 / n)}%`,
      height: 6,
      label: ` ${s.label} `,
      stroke: s.stroke ?? 'green',
      fill: 'white',
      border: { type: 'line' },
      style: { border: { fg: 'gray' } },
    } as never) as unknown as blessed.Widgets.BoxElement & { setPercent(p: number): void };
    parent.append(g);
    // contrib treats values below 1.001 as fractions; pass a fraction always.
    g.setPercent(Math.max(0, Math.min(100, s.percent)) / 100);
  });
}
