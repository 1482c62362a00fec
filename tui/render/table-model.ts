import type { RowSpec } from './table.ts';

/** Cap on one column's width so a long message never pushes the others off screen. */
const MAX_COL = 48;

export interface WindowLine {
  text: string;
  selected: boolean;
  marked: boolean;
}

/** What a table shows in a box of a given size: header plus only the visible rows. */
export interface TableWindow {
  header: string;
  lines: WindowLine[];
  /** "12/340" style position, for the border label. */
  position: string;
}

/**
 * The state behind every console table, without a terminal: rows turned into
 * cells once, then filtered, sorted, selected and marked. Rendering formats
 * only the visible window, so 10,000 rows cost what 40 do.
 */
export class TableModel<T> {
  readonly spec: RowSpec<T>;
  #rows: T[] = [];
  #cells: (string[] | undefined)[] = [];
  #names: string[] = [];
  #lower: (string | undefined)[] = [];
  #order: number[] = [];
  #widths: number[] = [];
  #wide = false;
  #cols: RowSpec<T>['columns'] = [];
  #filter = '';
  #sortCol = -1;
  #sortDesc = false;
  #selected = 0;
  #offset = 0;
  readonly marks = new Set<string>();

  constructor(spec: RowSpec<T>) {
    this.spec = spec;
  }

  get columns(): string[] {
    return this.spec.columns.filter((c) => this.#wide || !c.wide).map((c) => c.header);
  }
  get filter(): string {
    return this.#filter;
  }
  get sort(): { col: number; desc: boolean } {
    return { col: this.#sortCol, desc: this.#sortDesc };
  }
  /** Rows after the filter. */
  get size(): number {
    return this.#order.length;
  }
  get total(): number {
    return this.#rows.length;
  }

  /**
   * New data. Only names are read now; cells are computed when a row is
   * shown (or when a sort or filter needs them), so 10,000 rows cost what
   * the visible 40 do. Selection stays on the same object by name.
   */
  setRows(rows: readonly T[], wide = false): void {
    const keep = this.selectedName();
    this.#wide = wide;
    this.#cols = this.spec.columns.filter((c) => wide || !c.wide);
    this.#rows = rows.slice();
    this.#cells = new Array(rows.length);
    this.#lower = [];
    this.#widths = [];
    this.#names = new Array(rows.length);
    for (let i = 0; i < rows.length; i++) this.#names[i] = safe(() => this.spec.name(rows[i]!));
    // Marks on objects that are gone are dropped: a bulk action never hits a stale name.
    if (this.marks.size) {
      const present = new Set(this.#names);
      for (const m of this.marks) if (!present.has(m)) this.marks.delete(m);
    }
    this.#recompute(keep);
  }

  #cellsOf(i: number): string[] {
    let c = this.#cells[i];
    if (c === undefined) {
      const r = this.#rows[i]!;
      const cols = this.#cols;
      c = new Array<string>(cols.length);
      for (let j = 0; j < cols.length; j++) c[j] = oneLine(safe(() => cols[j]!.get(r)));
      this.#cells[i] = c;
    }
    return c;
  }

  setFilter(text: string): void {
    const keep = this.selectedName();
    this.#filter = text;
    // A new filter starts at the top unless the selected object still matches.
    this.#selected = 0;
    this.#recompute(keep);
  }

  /** Sort by column `col` (0-based); the same column again reverses. */
  sortBy(col: number): void {
    if (col < 0 || col >= this.columns.length) return;
    if (this.#sortCol === col) this.#sortDesc = !this.#sortDesc;
    else {
      this.#sortCol = col;
      this.#sortDesc = false;
    }
    const keep = this.selectedName();
    this.#recompute(keep);
  }

  move(delta: number): void {
    this.#selected = clamp(this.#selected + delta, 0, Math.max(0, this.#order.length - 1));
  }
  home(): void {
    this.#selected = 0;
  }
  end(): void {
    this.#selected = Math.max(0, this.#order.length - 1);
  }

  selected(): T | undefined {
    const i = this.#order[this.#selected];
    return i === undefined ? undefined : this.#rows[i];
  }
  selectedName(): string | undefined {
    const i = this.#order[this.#selected];
    return i === undefined ? undefined : this.#names[i];
  }

  /** Space: mark or unmark the selected row, then move down. */
  toggleMark(): void {
    const n = this.selectedName();
    if (n === undefined) return;
    if (this.marks.has(n)) this.marks.delete(n);
    else this.marks.add(n);
    this.move(1);
  }

  /** The rows a bulk action applies to: the marked ones, else the selected one. */
  targets(): { row: T; name: string }[] {
    if (this.marks.size) {
      const out: { row: T; name: string }[] = [];
      for (let i = 0; i < this.#rows.length; i++) if (this.marks.has(this.#names[i]!)) out.push({ row: this.#rows[i]!, name: this.#names[i]! });
      return out;
    }
    const row = this.selected();
    return row === undefined ? [] : [{ row, name: this.selectedName()! }];
  }

  /** Format the visible window for a box `width` columns wide with `height` lines of rows. */
  window(width: number, height: number): TableWindow {
    height = Math.max(1, height);
    if (this.#selected < this.#offset) this.#offset = this.#selected;
    if (this.#selected >= this.#offset + height) this.#offset = this.#selected - height + 1;
    this.#offset = clamp(this.#offset, 0, Math.max(0, this.#order.length - height));
    const end = Math.min(this.#order.length, this.#offset + height);
    // Column widths grow to fit what has been shown of this data (never shrink while scrolling).
    const cols = this.columns;
    if (this.#widths.length !== cols.length) this.#widths = cols.map((h) => h.length + 1);
    for (let k = this.#offset; k < end; k++) {
      const cells = this.#cellsOf(this.#order[k]!);
      for (let j = 0; j < cells.length; j++) if (cells[j]!.length > this.#widths[j]!) this.#widths[j] = Math.min(MAX_COL, cells[j]!.length);
    }
    const widths = this.#fit(width);
    const arrow = (j: number) => (j === this.#sortCol ? (this.#sortDesc ? '▼' : '▲') : '');
    const header = fmt(cols.map((h, j) => h + arrow(j)), widths, width);
    const lines: WindowLine[] = [];
    for (let k = this.#offset; k < end; k++) {
      const i = this.#order[k]!;
      const marked = this.marks.has(this.#names[i]!);
      lines.push({ text: fmt(this.#cellsOf(i), widths, width, marked ? '*' : ' '), selected: k === this.#selected, marked });
    }
    const position = this.#order.length ? `${this.#selected + 1}/${this.#order.length}` : `0/${this.#order.length}`;
    return { header, lines, position };
  }

  #recompute(keep: string | undefined): void {
    const f = this.#filter.toLowerCase();
    const n = this.#rows.length;
    let order: number[];
    if (f) {
      order = [];
      for (let i = 0; i < n; i++) {
        const l = (this.#lower[i] ??= this.#cellsOf(i).join('\u0000').toLowerCase());
        if (l.includes(f)) order.push(i);
      }
    } else {
      order = new Array(n);
      for (let i = 0; i < n; i++) order[i] = i;
    }
    const c = this.#sortCol;
    if (c >= 0) {
      const dir = this.#sortDesc ? -1 : 1;
      const num = order.every((i) => isNumeric(this.#cellsOf(i)[c] ?? ''));
      order.sort((a, b) => {
        const x = this.#cellsOf(a)[c] ?? '';
        const y = this.#cellsOf(b)[c] ?? '';
        const d = num ? Number(x) - Number(y) : x < y ? -1 : x > y ? 1 : 0;
        return d * dir || a - b;
      });
    }
    this.#order = order;
    let sel = 0;
    if (keep !== undefined) {
      const at = order.findIndex((i) => this.#names[i] === keep);
      if (at >= 0) sel = at;
      else sel = clamp(this.#selected, 0, Math.max(0, order.length - 1));
    }
    this.#selected = sel;
  }

  /** Column widths for the box: the last column takes what is left. */
  #fit(width: number): number[] {
    const w = this.#widths.slice();
    let used = 2;
    for (let j = 0; j < w.length - 1; j++) used += w[j]! + 2;
    if (w.length) w[w.length - 1] = Math.max(4, width - used);
    return w;
  }
}

/** One table line (ASCII '~' marks a cut: blessed counts '…' as two columns): a mark column, then cells padded to their widths, cut to the box. */
function fmt(cells: string[], widths: number[], width: number, mark = ' '): string {
  let s = mark + ' ';
  for (let j = 0; j < cells.length; j++) {
    const w = widths[j] ?? 0;
    const c = cells[j] ?? '';
    s += (c.length > w ? c.slice(0, Math.max(0, w - 1)) + '~' : c.padEnd(w)) + (j < cells.length - 1 ? '  ' : '');
    if (s.length >= width) break;
  }
  return s.length > width ? s.slice(0, width) : s.padEnd(width);
}

const clamp = (x: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, x));
const isNumeric = (s: string) => s !== '' && !Number.isNaN(Number(s));
const oneLine = (s: string) => (/[\n\r\t\x00-\x08\x0b-\x1f\x7f]/.test(s) ? s.replace(/[\n\r\t]+/g, ' ').replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '') : s);

/** A row function that throws (an object of an unexpected shape) shows as empty, never crashes. */
function safe(f: () => unknown): string {
  try {
    const v = f();
    return v === undefined || v === null ? '' : String(v);
  } catch {
    return '';
  }
}
