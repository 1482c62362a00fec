import type { StormApi } from '../../../manager/api.ts';
import type { RowSpec } from '../../render/table.ts';

/** A table view: rows from one service method, shown through a RowSpec. */
export interface TableView<T = any> {
  kind: 'table';
  id: string;
  title: string;
  rows: RowSpec<T>;
  /** The list method (from METHODS); its absence makes the view say "not available". */
  method: string;
  /** Load the rows; default: call `method` with the drill-down params. */
  load?: (api: StormApi, params: Record<string, unknown>) => Promise<T[]>;
  /** The detail pane's facts, as `storm NOUN show` prints them (default: the row as YAML; so is a row that is not an object). */
  text?: (row: T) => string;
  /** More for the detail pane (fetched when it opens; failures are shown, not fatal). */
  detail?: (api: StormApi, name: string, row: T) => Promise<Record<string, unknown>>;
  /** One line about all the rows, shown beside the title (e.g. what the cache holds). */
  summary?: (rows: T[]) => string;
  /** Enter on a row opens another view filtered to it (else: the detail pane). */
  drill?: { view: string; params: (row: T, name: string) => Record<string, unknown> };
}

/** The dashboard: gauges, counts, health and recent events at a glance. */
export interface DashboardView {
  kind: 'dashboard';
  id: string;
  title: string;
}

export type View = TableView | DashboardView;
