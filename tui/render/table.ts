/** A column of a table shared by the console and `-o table|wide`. */
export interface Column<T> {
  header: string;
  get: (row: T) => string;
  /** Only shown with `-o wide` (and in the console when there is room). */
  wide?: boolean;
}

/** Everything a view or `-o table` needs to show a kind of object. */
export interface RowSpec<T> {
  columns: Column<T>[];
  /** The object's name, for `-o name` and for confirmations. */
  name: (row: T) => string;
}

/** Rows of cells, header first: the pure function behind every table. */
export function toCells<T>(spec: RowSpec<T>, rows: readonly T[], wide: boolean): string[][] {
  const cols = spec.columns.filter((c) => wide || !c.wide);
  return [cols.map((c) => c.header), ...rows.map((r) => cols.map((c) => c.get(r)))];
}

/** Plain-text table with aligned columns (the CLI's default output). */
export function formatTable(cells: string[][]): string {
  if (cells.length === 0) return '';
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}
