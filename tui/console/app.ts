import blessed from 'blessed';
import type { StormApi } from '../../manager/api.ts';
import { toStormError } from '../../lib/errors.ts';
import { toCells } from '../render/table.ts';
import { COMMAND_ALIASES, bindingsFor, footerText, helpText } from './keys.ts';
import { FIRST_VIEW, VIEWS } from './views/index.ts';

export interface ConsoleOptions {
  api: StormApi;
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  terminal?: string;
  readOnly?: boolean;
  /** Called once when the user quits (or the console is destroyed). */
  onExit?: () => void;
}

export interface Console {
  screen: blessed.Widgets.Screen;
  destroy(): void;
}

/** Map the client's TERM to one blessed knows (it lacks most *-256color entries). */
export function blessedTerminal(term: string | undefined): string {
  if (!term) return 'xterm-256color';
  return /-256color$/.test(term) ? 'xterm-256color' : term;
}

/** The full-screen console on any pair of streams (a local TTY or an SSH channel). */
export function createConsole(o: ConsoleOptions): Console {
  const readOnly = o.readOnly ?? false;
  const screen = blessed.screen({
    input: o.input as never,
    output: o.output as never,
    terminal: blessedTerminal(o.terminal),
    smartCSR: true,
    fullUnicode: true,
    autoPadding: true,
    title: 'STORM',
  });
  // blessed installs process-wide handlers; the console must never take the process down.
  screen.program.removeAllListeners('warning');

  let viewId = FIRST_VIEW;
  let filter = '';
  let lastError = '';
  let rows: unknown[] = [];
  let destroyed = false;

  const header = blessed.box({ parent: screen, top: 0, left: 0, height: 1, width: '100%', tags: true, style: { bg: 'blue', fg: 'white' } });
  const table = blessed.listtable({
    parent: screen, top: 1, left: 0, width: '100%', height: '100%-3', keys: false, mouse: false, tags: false,
    border: { type: 'line' }, align: 'left', noCellBorders: true,
    style: { header: { bold: true, fg: 'cyan' }, cell: { selected: { bg: 'blue' } }, border: { fg: 'gray' } },
  } as blessed.Widgets.ListTableOptions);
  const flash = blessed.box({ parent: screen, bottom: 1, left: 0, height: 1, width: '100%', tags: false, style: { fg: 'yellow' } });
  const footer = blessed.box({ parent: screen, bottom: 0, left: 0, height: 1, width: '100%', style: { bg: 'gray', fg: 'black' } });
  const help = blessed.box({ parent: screen, top: 'center', left: 'center', width: 60, height: 20, border: { type: 'line' }, label: ' keys ', hidden: true, tags: false, scrollable: true });
  const prompt = blessed.textbox({ parent: screen, bottom: 1, left: 0, height: 1, width: '100%', hidden: true, inputOnFocus: true, style: { bg: 'black', fg: 'white' } });

  const view = () => VIEWS[viewId]!;
  const drawChrome = () => {
    header.setContent(` STORM  ${view().title}${filter ? `  /${filter}` : ''}${readOnly ? '  [read-only]' : ''}`);
    footer.setContent(' ' + footerText(viewId, readOnly));
    help.setContent(helpText(viewId, readOnly));
  };
  const say = (msg: string) => {
    flash.setContent(msg);
    screen.render();
  };

  const renderRows = () => {
    const v = view();
    const shown = filter ? rows.filter((r) => v.rows.columns.some((c) => c.get(r).toLowerCase().includes(filter.toLowerCase()))) : rows;
    const wide = ((screen.width as number) ?? 80) > 120;
    table.setData(toCells(v.rows, shown, wide));
    drawChrome();
    screen.render();
  };

  let loading = false;
  const refresh = async () => {
    if (loading || destroyed) return;
    loading = true;
    try {
      rows = await view().load(o.api);
      renderRows();
    } catch (e) {
      // A service error is shown, never fatal: the console stays up.
      const err = toStormError(e);
      lastError = `${err.code}: ${err.message}${err.hint ? ` (${err.hint})` : ''}`;
      say(`error: ${err.message.slice(0, 200)}  (x: full text)`);
    } finally {
      loading = false;
    }
  };

  const actions: Record<string, () => void> = {
    help: () => {
      help.hidden ? help.show() : help.hide();
      screen.render();
    },
    back: () => {
      if (!help.hidden) help.hide();
      else if (filter) filter = '';
      renderRows();
    },
    down: () => {
      table.down(1);
      screen.render();
    },
    up: () => {
      table.up(1);
      screen.render();
    },
    refresh: () => void refresh(),
    quit: () => destroy(),
    error: () => say(lastError || 'no error'),
    command: () => ask(':', (line) => {
      const action = COMMAND_ALIASES[line.trim()] ?? (VIEWS[line.trim()] ? `view:${line.trim()}` : undefined);
      if (action) dispatch(action);
      else say(`unknown command ":${line}" (try :doctor, :events, :q)`);
    }),
    filter: () => ask('/', (line) => {
      filter = line.trim();
      renderRows();
    }),
    open: () => {},
  };

  function dispatch(action: string): void {
    if (action.startsWith('view:')) {
      viewId = action.slice(5);
      filter = '';
      rows = [];
      renderRows();
      void refresh();
      return;
    }
    actions[action]?.();
  }

  function ask(label: string, done: (line: string) => void): void {
    prompt.setValue('');
    prompt.show();
    flash.setContent(label);
    prompt.left = label.length;
    prompt.focus();
    screen.render();
    prompt.readInput((_err, value) => {
      prompt.hide();
      flash.setContent('');
      table.focus();
      if (typeof value === 'string') done(value);
      screen.render();
    });
  }

  screen.on('keypress', (_ch, key) => {
    if (destroyed || !prompt.hidden) return;
    const name = key?.full ?? key?.name;
    if (name === 'x') return actions.error!();
    const b = bindingsFor(viewId, readOnly).find((k) => k.keys.includes(name));
    if (b) dispatch(b.action);
  });
  screen.on('resize', () => renderRows());

  // Changes made elsewhere (other sessions, the CLI) show up within a second.
  let pending: NodeJS.Timeout | undefined;
  const unsubscribe = o.api.subscribe(() => {
    pending ??= setTimeout(() => {
      pending = undefined;
      void refresh();
    }, 200);
  });

  function destroy(): void {
    if (destroyed) return;
    destroyed = true;
    unsubscribe();
    if (pending) clearTimeout(pending);
    screen.destroy();
    o.onExit?.();
  }

  table.focus();
  drawChrome();
  screen.render();
  void refresh();
  return { screen, destroy };
}
