import blessed from 'blessed';
import type { StormApi } from '../../manager/api.ts';
import type { StormEvent } from '../../manager/events.ts';
import type { Health } from '../../lib/health.ts';
import { countedNames } from '../../lib/format.ts';
import { eventMatches } from '../render/events.ts';
import { toStormError, type StormError } from '../../lib/errors.ts';
import { TableModel } from '../render/table-model.ts';
import { countByState, percent, text } from '../render/resources.ts';
import { toYaml } from '../cli/yaml.ts';
import { COMMAND_ALIASES, bindingsFor, complete, footerText, helpText, showKey, type KeyBinding } from './keys.ts';
import { METHODS } from './methods.ts';
import { FIRST_VIEW, VIEWS, VIEW_LIST } from './views/index.ts';
import type { TableView, View } from './views/view.ts';
import { setGauges, type GaugeSpec } from './widgets/gauges.ts';
import { setSparklines, sparklines } from './widgets/sparklines.ts';
import { hostSparkRows } from '../render/hosts.ts';
import { instanceCreateParams } from '../../manager/services/instances.ts';
import { resolveParams, type ParamSpec } from '../../manager/instances/params.ts';
import { SECRET_SHOWN } from '../../manager/instances/model.ts';
import { PARAM_TYPES, type ParamType } from '../../manager/channels/format.ts';
import { applianceId, deploymentPrompt, pickDeployment, pickLabel, siteDeployments, type DeploymentPick } from './wizard.ts';

export interface ConsoleOptions {
  api: StormApi;
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  terminal?: string;
  readOnly?: boolean;
  /** Who this is, for the header (e.g. "admin@ssh"). */
  who?: string;
  /** First view (default: the dashboard). */
  view?: string;
  /** Called once when the user quits (or the console is destroyed). */
  onExit?: () => void;
}

/** What tests and benchmarks can look at without a terminal. */
export interface ConsoleState {
  view: string;
  mode: Mode;
  flash: string;
  lastError: string;
  available: ReadonlySet<string> | undefined;
  model: TableModel<unknown> | undefined;
  notAvailable: string | undefined;
  progress: ReadonlyMap<string, GaugeSpec>;
}

export interface Console {
  screen: blessed.Widgets.Screen;
  /** Resolves when the current view's data has loaded (or failed). */
  settled(): Promise<void>;
  state(): ConsoleState;
  /** Redraw now (benchmarks). */
  redraw(): void;
  destroy(): void;
}

type Mode = 'normal' | 'input' | 'confirm' | 'help' | 'detail' | 'popup';

/** Map the client's TERM to one blessed knows (it lacks most *-256color entries). */
export function blessedTerminal(term: string | undefined): string {
  if (!term) return 'xterm-256color';
  return /-256color$/.test(term) ? 'xterm-256color' : term;
}

interface Frame {
  view: View;
  params: Record<string, unknown>;
  model?: TableModel<unknown>;
  /** Dashboard data. */
  dash?: Dash;
  notAvailable?: string;
  /** The view's one-line summary of all its rows (e.g. bytes in the cache), shown in the table's label. */
  summary?: string;
}

interface Dash {
  hosts?: Record<string, unknown>[] | string;
  instances?: Record<string, unknown>[] | string;
  health?: Health[] | string;
  events?: StormEvent[];
}

/** How long a burst of events is gathered before views reload (other sessions see changes well within a second). */
const EVENT_DEBOUNCE_MS = 150;
const DASH_REFRESH_MS = 5000;

/** The full-screen console on any pair of streams (a local TTY or an SSH channel). */
export function createConsole(o: ConsoleOptions): Console {
  const readOnly = o.readOnly ?? false;
  const api = o.api;
  const screen = blessed.screen({
    input: o.input as never,
    output: o.output as never,
    terminal: blessedTerminal(o.terminal),
    smartCSR: true,
    fullUnicode: true,
    autoPadding: true,
    warnings: false,
    forceUnicode: true,
    title: 'STORM',
  });
  // Draw borders as UTF-8, not via the alternate charset (tmux and many clients show ACS as letters).
  (screen as unknown as { tput: { brokenACS: boolean } }).tput.brokenACS = true;

  let mode: Mode = 'normal';
  let stack: Frame[] = [];
  let available: Set<string> | undefined;
  let lastError = '';
  let flashText = '';
  let input: { prefix: string; value: string; done: (v: string | undefined) => void } = { prefix: '', value: '', done: () => {} };
  let confirmRun: (() => void) | undefined;
  let destroyed = false;
  const progress = new Map<string, GaugeSpec>();
  const timers = new Set<NodeJS.Timeout>();

  // ---------- widgets ----------
  const header = blessed.box({ parent: screen, top: 0, left: 0, height: 1, width: '100%', tags: false, style: { bg: 'blue', fg: 'white', bold: true } });
  const body = blessed.box({ parent: screen, top: 1, left: 0, width: '100%', height: '100%-3' });
  const table = blessed.box({ parent: body, top: 0, left: 0, width: '100%', height: '100%', tags: true, border: { type: 'line' }, style: { border: { fg: 'gray' } } });
  const dash = blessed.box({ parent: body, top: 0, left: 0, width: '100%', height: '100%', hidden: true });
  const dHosts = blessed.box({ parent: dash, top: 0, left: 0, width: '50%', height: '50%', label: ' hosts ', border: { type: 'line' }, style: { border: { fg: 'gray' } }, tags: false });
  const dGauges = blessed.box({ parent: dHosts, top: 0, left: 0, width: '100%-2', height: 6 });
  const dHostText = blessed.box({ parent: dHosts, top: 6, left: 0, width: '100%-2', height: '100%-8' });
  // Per host: its figures and a CPU sparkline from the manager's polls.
  const dSpark = sparklines(dHosts, { top: 6, height: '100%-8' });
  const dInst = blessed.box({ parent: dash, top: 0, left: '50%', width: '50%', height: '50%', label: ' instances by state ', border: { type: 'line' }, style: { border: { fg: 'gray' } } });
  const dHealth = blessed.box({ parent: dash, top: '50%', left: 0, width: '50%', height: '50%', label: ' service health ', border: { type: 'line' }, style: { border: { fg: 'gray' } } });
  const dEvents = blessed.box({ parent: dash, top: '50%', left: '50%', width: '50%', height: '50%', label: ' recent events ', border: { type: 'line' }, style: { border: { fg: 'gray' } } });
  const prog = blessed.box({ parent: screen, bottom: 2, left: 0, width: '100%', height: 6, hidden: true });
  const flash = blessed.box({ parent: screen, bottom: 1, left: 0, height: 1, width: '100%', style: { fg: 'yellow' } });
  const footer = blessed.box({ parent: screen, bottom: 0, left: 0, height: 1, width: '100%', style: { bg: 'gray', fg: 'black' } });
  const overlay = (label: string) =>
    blessed.box({ parent: screen, top: 'center', left: 'center', width: '80%', height: '80%', border: { type: 'line' }, label, hidden: true, tags: false, scrollable: true, alwaysScroll: true, style: { border: { fg: 'cyan' } } });
  const help = overlay(' keys (esc closes) ');
  const detail = overlay(' detail (esc closes) ');
  const popup = overlay(' error (esc closes) ');
  const dialog = blessed.box({ parent: screen, top: 'center', left: 'center', width: '80%', height: 6, border: { type: 'line' }, label: ' confirm ', hidden: true, style: { border: { fg: 'red' }, fg: 'white' } });

  const frame = () => stack[stack.length - 1]!;
  const viewId = () => frame().view.id;
  const keysNow = () => bindingsFor(viewId(), readOnly, available);

  // ---------- drawing ----------
  const crumbs = () =>
    stack
      .map((f) => f.view.title + (Object.keys(f.params).length ? ` (${Object.entries(f.params).map(([k, v]) => `${k}=${text(v)}`).join(' ')})` : ''))
      .join(' › ');

  function drawChrome(): void {
    const f = frame();
    const filt = f.model?.filter ? `  /${f.model.filter}` : '';
    const marks = f.model?.marks.size ? `  [${f.model.marks.size} marked]` : '';
    header.setContent(clean(` STORM  ${crumbs()}${filt}${marks}${readOnly ? '  [read-only]' : ''}${o.who ? `  ${o.who}` : ''}`));
    footer.setContent(' ' + footerText(viewId(), readOnly, available));
    if (mode === 'input') flash.setContent(`${input.prefix}${input.value}█`);
    else flash.setContent(clean(flashText));
    const showProg = progress.size > 0;
    prog.hidden = !showProg;
    body.height = showProg ? '100%-9' : '100%-3';
  }

  function drawTable(): void {
    const f = frame();
    if (f.view.kind !== 'table') return;
    table.show();
    dash.hide();
    // One column short of the border: blessed wraps a line that fills the box exactly.
    const width = Math.max(10, (table.width as number) - 3);
    const height = Math.max(1, (table.height as number) - 3);
    if (f.notAvailable) {
      table.setLabel(' not available ');
      table.setContent(blessed.escape(f.notAvailable));
      return;
    }
    const m = (f.model ??= new TableModel(f.view.rows));
    const w = m.window(width, height);
    let s = `{bold}${blessed.escape(w.header)}{/bold}`;
    for (const l of w.lines) {
      const t = blessed.escape(l.text);
      s += '\n' + (l.selected ? `{inverse}${t}{/inverse}` : l.marked ? `{yellow-fg}${t}{/yellow-fg}` : t);
    }
    if (m.size === 0) s += `\n  ${m.total === 0 ? '(none)' : `(no match for /${blessed.escape(m.filter)})`}`;
    table.setLabel(clean(` ${f.view.title} ${w.position}${f.summary ? ` · ${f.summary}` : ''} `));
    table.setContent(s);
  }

  function drawDash(): void {
    const f = frame();
    if (f.view.kind !== 'dashboard') return;
    table.hide();
    dash.show();
    const d = f.dash ?? {};
    if (typeof d.hosts === 'string' || d.hosts === undefined || d.hosts.length === 0) {
      setGauges(dGauges, []);
      dSpark.hide();
      dHostText.show();
      dHostText.top = 0;
      dHostText.setContent(clean(typeof d.hosts === 'string' ? d.hosts : d.hosts === undefined ? 'loading…' : 'no hosts enrolled'));
    } else {
      // Average over the hosts that report the figure; a figure no host reports gets no gauge.
      const avg = (what: 'cpu' | 'mem' | 'disk') => {
        const ps = (d.hosts as unknown[]).map((h) => percent(h, what)).filter((p): p is number => p !== undefined);
        return ps.length ? ps.reduce((a, b) => a + b, 0) / ps.length : undefined;
      };
      const gauges: GaugeSpec[] = [];
      for (const [what, label, stroke] of [['cpu', 'cpu', 'green'], ['mem', 'memory', 'cyan'], ['disk', 'disk', 'magenta']] as const) {
        const p = avg(what);
        if (p !== undefined) gauges.push({ label, percent: p, stroke });
      }
      setGauges(dGauges, gauges);
      dHostText.hide();
      dSpark.show();
      // One column short of the box: blessed wraps a line that fills it exactly.
      const width = Math.max(1, (dSpark.width as number) - 1);
      setSparklines(
        dSpark,
        hostSparkRows(d.hosts, width).map((r) => ({ title: clean(r.title), bars: r.bars || '(no CPU figures from this host yet)' })),
        (n) => `… ${n} more host${n === 1 ? '' : 's'} (h: hosts view)`,
      );
    }
    if (typeof d.instances === 'string' || d.instances === undefined) dInst.setContent(clean(d.instances ?? 'loading…'));
    else {
      const counts = countByState(d.instances);
      dInst.setContent(clean(counts.length ? [`total ${d.instances.length}`, ...counts.map(([s, n]) => `${s.padEnd(14)} ${String(n).padStart(5)}`)].join('\n') : 'no instances'));
    }
    if (typeof d.health === 'string' || d.health === undefined) dHealth.setContent(clean(d.health ?? 'loading…'));
    else {
      const bad = d.health.filter((h) => h.status !== 'healthy');
      const ok = d.health.length - bad.length;
      dHealth.setContent(clean([`${ok} healthy, ${bad.length} not`, ...bad.map((h) => `${text(h.component).padEnd(12)} ${text(h.status).padEnd(10)} ${text(h.reason)}`)].join('\n')));
    }
    const evs = d.events ?? [];
    dEvents.setContent(clean(evs.length ? evs.slice(-50).reverse().map((e) => `${text(e.t).slice(11, 19)} ${text(e.kind).padEnd(18)} ${text(e.message)}`).join('\n') : 'no events'));
  }

  function drawProgress(): void {
    if (progress.size === 0) return;
    setGauges(prog as blessed.Widgets.BoxElement, [...progress.values()].slice(-3));
  }

  function draw(): void {
    if (destroyed) return;
    try {
      drawChrome();
      if (frame().view.kind === 'table') drawTable();
      else drawDash();
      drawProgress();
    } catch (e) {
      // Data of a shape nobody expected must not take the session down: say so and keep going.
      const err = toStormError(e);
      lastError = fullText('drawing the view', err);
      flash.setContent(`error drawing the view: ${err.message.slice(0, 120)}  (x: full text)`);
    }
    try {
      screen.render();
    } catch {
      /* the stream is gone; destroy follows */
    }
  }

  const say = (msg: string) => {
    flashText = msg;
    draw();
  };
  function fail(what: string, e: unknown): void {
    // A service error is shown, never fatal: the console stays up.
    const err = toStormError(e);
    lastError = fullText(what, err);
    say(`${what}: ${err.message.slice(0, 160)}  (x: full text)`);
  }

  // ---------- loading ----------
  let loading: Promise<void> | undefined;
  let reloadAgain = false;
  let generation = 0;

  let loadingGen = -1;

  /**
   * Load the current view. A load already running for this view is reused
   * (and repeated once after, so no change is missed); one for a view the
   * user has left is not waited for: its result is dropped.
   */
  function refresh(): Promise<void> {
    if (destroyed) return Promise.resolve();
    if (loading && loadingGen === generation) {
      reloadAgain = true;
      return loading;
    }
    const gen = generation;
    const f = frame();
    reloadAgain = false;
    loadingGen = gen;
    const p: Promise<void> = (async () => {
      try {
        if (f.view.kind === 'dashboard') f.dash = await loadDash(f.dash);
        else await loadTable(f, f.view);
      } catch (e) {
        if (gen === generation) fail(`loading ${f.view.title}`, e);
      }
    })().finally(() => {
      if (loading !== p) return;
      loading = undefined;
      if (gen === generation && !destroyed) draw();
      if (reloadAgain && !destroyed) {
        reloadAgain = false;
        void refresh();
      }
    });
    loading = p;
    return p;
  }

  const missing = (method: string) => available !== undefined && !available.has(method);
  const notAvailableText = (method: string, why?: string) =>
    `not available: this manager does not offer ${method} yet${why ? ` (${why})` : ''}.\nThe view lights up when the service is there.`;

  async function loadTable(f: Frame, v: TableView): Promise<void> {
    f.model ??= new TableModel(v.rows);
    if (missing(v.method)) {
      f.notAvailable = notAvailableText(v.method);
      return;
    }
    try {
      const rows = v.load ? await v.load(api, f.params) : await api.call<unknown[]>(v.method, f.params);
      f.notAvailable = undefined;
      f.model.setRows(Array.isArray(rows) ? rows : [], ((screen.width as number) ?? 80) > 140);
      f.summary = v.summary && Array.isArray(rows) ? v.summary(rows) : undefined;
    } catch (e) {
      const err = toStormError(e);
      if (err.code === 'not_found' && available === undefined) f.notAvailable = notAvailableText(v.method, err.message);
      else throw err;
    }
  }

  /** Health probes spawn tools: the dashboard re-runs them at most this often (r forces). */
  const HEALTH_EVERY_MS = 30_000;
  let healthAt = 0;
  let forceHealth = false;

  async function loadDash(prev?: Dash): Promise<Dash> {
    const get = async <T,>(method: string, params: Record<string, unknown> = {}): Promise<T | string> => {
      if (missing(method)) return `not available (${method})`;
      try {
        const r = await api.call<T>(method, params);
        return Array.isArray(r) ? r : `unexpected answer from ${method} (not a list)`;
      } catch (e) {
        const err = toStormError(e);
        return err.code === 'not_found' ? `not available (${method})` : `error: ${err.message}`;
      }
    };
    const fresh = forceHealth || !prev?.health || Date.now() - healthAt > HEALTH_EVERY_MS;
    forceHealth = false;
    if (fresh) healthAt = Date.now();
    const [hosts, instances, health, events] = await Promise.all([
      get<Record<string, unknown>[]>(METHODS.hosts),
      get<Record<string, unknown>[]>(METHODS.instances),
      fresh ? get<Health[]>(METHODS.doctor) : Promise.resolve(prev!.health!),
      get<StormEvent[]>(METHODS.events, { limit: 50 }),
    ]);
    return { hosts, instances, health, events: Array.isArray(events) ? events : [] };
  }

  // ---------- navigation ----------
  function go(id: string, params: Record<string, unknown> = {}, push = false): void {
    const v = VIEWS[id];
    if (!v) return say(`no view "${id}"`);
    generation++;
    const f: Frame = { view: v, params };
    stack = push ? [...stack, f] : [f];
    flashText = '';
    draw();
    void refresh();
  }

  function back(): void {
    const f = frame();
    if (f.model?.filter) {
      f.model.setFilter('');
      return draw();
    }
    if (f.model?.marks.size) {
      f.model.marks.clear();
      return draw();
    }
    if (stack.length > 1) {
      generation++;
      stack = stack.slice(0, -1);
      draw();
      void refresh();
    }
  }

  function open(): void {
    const f = frame();
    if (f.view.kind !== 'table' || !f.model) return;
    const row = f.model.selected();
    const name = f.model.selectedName();
    if (row === undefined || name === undefined) return;
    if (f.view.drill) return go(f.view.drill.view, f.view.drill.params(row, name), true);
    const head = `${f.view.title}: ${name}\n\n${detailText(f.view, row)}`;
    showOverlay('detail', detail, head);
    if (f.view.id === 'events') return;
    // More about the object (its events, and what the view adds), fetched without blocking the pane.
    const v = f.view;
    void (async () => {
      const parts: string[] = [];
      // Multi-line text (a console log) reads as lines, after the short facts and the events.
      let blocks = '';
      if (v.detail) {
        try {
          const facts: Record<string, unknown> = {};
          for (const [k, x] of Object.entries(await v.detail(api, name, row))) {
            if (typeof x === 'string' && x.includes('\n')) blocks += `\n${k}: |\n${x.replace(/\s+$/, '').split(/\r?\n/).map((l) => `  ${l}`).join('\n')}`;
            else facts[k] = x;
          }
          // Only multi-line blocks (a deployment's versions): no empty "{}" line.
          if (Object.keys(facts).length) parts.push(toYaml(facts));
        } catch (e) {
          parts.push(`(${toStormError(e).message})\n`);
        }
      }
      try {
        const evs = await api.call<StormEvent[]>(METHODS.events, { limit: 500 });
        const mine = evs.filter(eventMatches({ object: name })).slice(-20);
        parts.push(`events:\n${mine.length ? mine.map((e) => `  ${e.t.slice(0, 19)} ${e.kind} ${e.message}`).join('\n') : '  (none)'}`);
      } catch {
        /* no events: the pane shows the object alone */
      }
      parts.push(blocks);
      if (mode === 'detail' && !destroyed) {
        detail.setContent(clean(`${head}${parts.join('')}`));
        screen.render();
      }
    })();
  }

  /** The facts at the top of the detail pane: the view's show text, else (or for a malformed row) YAML. */
  function detailText(v: TableView, row: unknown): string {
    if (v.text && typeof row === 'object' && row !== null) {
      try {
        return v.text(row);
      } catch {
        /* a row the service sent malformed: its YAML */
      }
    }
    return toYaml(row);
  }

  function showOverlay(m: Mode, box: blessed.Widgets.BoxElement, content: string): void {
    mode = m;
    box.setContent(clean(content));
    box.setScroll(0);
    box.show();
    box.setFront();
    draw();
  }
  function closeOverlays(): void {
    for (const b of [help, detail, popup, dialog]) b.hide();
    mode = 'normal';
    draw();
  }

  function ask(prefix: string, initial: string, done: (v: string | undefined) => void, live?: (v: string) => void, words?: () => string[]): void {
    mode = 'input';
    input = { prefix, value: initial, done };
    inputLive = live;
    inputWords = words;
    draw();
  }
  let inputLive: ((v: string) => void) | undefined;
  let inputWords: (() => string[]) | undefined;

  function runCommand(line: string): void {
    const word = line.trim();
    if (!word) return;
    const action = COMMAND_ALIASES[word] ?? (VIEWS[word] ? `view:${word}` : undefined);
    if (action) return dispatch({ keys: [], label: word, action });
    say(`unknown command ":${word}" (tab completes; try :instances, :hosts, :dns, :q)`);
  }

  function sortKey(key: string): void {
    const m = frame().model;
    if (!m) return;
    m.sortBy(Number(key) - 1);
    draw();
  }

  /**
   * Call an op's method on the marked (or selected) objects; Ctrl ops ask first, naming them.
   * An op that needs a value (a snapshot name, a target host) asks for it first, for one object.
   */
  function op(b: KeyBinding, asked: Record<string, unknown> = {}): void {
    const f = frame();
    if (!f.model || !b.method) return;
    const targets = f.model.targets();
    if (targets.length === 0) return say(`${b.label}: nothing selected`);
    const names = targets.map((t) => t.name);
    const q = b.ask;
    if (q && !(q.param in asked)) {
      if (names.length !== 1) return say(`${b.label}: one at a time (${names.length} marked; esc clears the marks)`);
      const words = q.complete === 'hosts' ? namesOf(METHODS.hosts) : q.complete === 'snapshots' ? namesOf(METHODS.instanceSnapshots, { name: names[0] }) : [];
      return ask(`${b.label} ${names[0]} › ${q.prompt}: `, q.initial?.() ?? '', (v) => {
        if (!v?.trim()) return say(`${b.label}: cancelled`);
        op(b, { [q.param]: v.trim() });
      }, undefined, () => words);
    }
    const run = () => {
      const method = b.method!;
      say(`${b.label} ${names.join(', ')}…`);
      // Work on several objects (or a rollout) shows a gauge; keys keep working meanwhile.
      const opId = `op:${b.label}:${names.join(',')}`;
      const gauge = (done: number, err = false) =>
        trackProgress({ t: new Date().toISOString(), kind: 'progress', message: '', ...(err ? { level: 'error' as const } : {}), data: { operation: opId, progress: Math.round((done / names.length) * 100), label: `${b.label} ${done}/${names.length}` } });
      const showGauge = names.length > 1 || b.method === METHODS.updateApply;
      if (showGauge) gauge(0);
      void (async () => {
        let failed = 0;
        for (const [i, name] of names.entries()) {
          try {
            await api.call(method, { name, ...(b.params?.(name, targets[i]!.row) ?? {}), ...asked });
          } catch (e) {
            failed++;
            if (!destroyed) fail(`${b.label} ${name}`, e);
          }
          if (showGauge && !destroyed) gauge(i + 1, failed > 0 && i + 1 === names.length);
        }
        if (destroyed) return;
        f.model?.marks.clear();
        if (failed === 0) say(`${b.label}: done (${names.join(', ')})`);
        void refresh();
      })();
    };
    if (b.dangerous) {
      const what = `${names.length === 1 ? names[0] : countedNames('object', names)}${Object.values(asked).map((v) => ` to ${String(v)}`).join('')}`;
      confirmRun = run;
      mode = 'confirm';
      // "destroy instances web1?", "remove host hv1?": the object named, its kind once.
      dialog.setContent(clean(` ${b.label}${b.label.includes(' ') ? '' : ` ${f.view.title.toLowerCase()}`} ${what}?\n y: yes, any other key: no`));
      dialog.show();
      dialog.setFront();
      draw();
    } else run();
  }

  /** Names (or ids) a list method answers, filled in when it answers: for tab completion. */
  function namesOf(method: string, params: Record<string, unknown> = {}): string[] {
    const out: string[] = [];
    if (!missing(method)) api.call<unknown[]>(method, params).then((r) => void out.push(...(Array.isArray(r) ? r : []).map((x) => text((x as Record<string, unknown>)?.name ?? (x as Record<string, unknown>)?.id)).filter(Boolean))).catch(() => {});
    return out;
  }

  /**
   * New instance, by keys only: appliance → deployment (the site's
   * deployments of it, or its own published one: the default) → name →
   * parameters (the appliance's own, defaults filled in, checked) → host or
   * automatic placement → confirm (naming the deployment and its version).
   * The request is the CLI's (`instanceCreateParams`: `--deployment NAME`
   * replaces the appliance). Provisioning runs in the service; its progress
   * shows as a gauge while the console stays usable.
   */
  function wizard(): void {
    const apps = namesOf(METHODS.appliances);
    const hosts = namesOf(METHODS.hosts);
    // Started from a row: the appliances view names the appliance, the deployments view the appliance and the deployment.
    const vid = frame().view.id;
    const selRow = vid === 'appliances' || vid === 'deployments' ? (frame().model?.selected() as Record<string, unknown> | undefined) : undefined;
    const sel = selRow ? (vid === 'deployments' ? `${text(selRow.appliance)}@${text(selRow.applianceVersion)}` : `${text(selRow.id)}@${text(selRow.version)}`) : undefined;
    const selDeployment = selRow && vid === 'deployments' ? text(selRow.name) : '';
    const cancel = () => say('new instance: cancelled');
    // The catalog entry of an appliance reference (a manager without appliance.show: no checks, free-form parameters).
    const show = (ref: string) => (missing(METHODS.applianceShow) ? Promise.resolve(undefined) : api.call<Record<string, unknown>>(METHODS.applianceShow, { ref }));
    ask('new instance › appliance: ', sel ?? '', (ref) => {
      if (!ref?.trim()) return cancel();
      const appliance = ref.trim();
      say(`new instance › ${appliance}: looking it up…`);
      // A manager without deployments (an older one answers not_found): no deployment step, the appliance's own as before.
      const deployments = missing(METHODS.deployments)
        ? Promise.resolve(undefined)
        : api.call<unknown[]>(METHODS.deployments).catch((e) => {
            if (toStormError(e).code === 'not_found' && available === undefined) return undefined;
            throw e;
          });
      Promise.all([show(appliance), deployments]).then(
        ([entry, deps]) => {
          if (destroyed) return;
          const withDeployments = deps !== undefined;
          const w = wizardFacts(entry);
          const site = siteDeployments(deps, typeof entry?.id === 'string' ? entry.id : applianceId(appliance));
          const chosen = (pick: DeploymentPick) => {
            if (pick.kind === 'published') return rest(pick, w);
            // Its parameters are those of the appliance version it was made from.
            const d = pick.deployment;
            if (!entry || entry.version === d.applianceVersion) return rest(pick, w);
            say(`new instance › ${d.name}: looking up ${d.appliance}@${d.applianceVersion}…`);
            show(`${d.appliance}@${d.applianceVersion}`).then(
              (e) => !destroyed && rest(pick, wizardFacts(e)),
              (e) => fail(`new instance › ${d.name}`, e),
            );
          };
          const askDeployment = (initial: string) =>
            ask(deploymentPrompt(appliance, site, w.deployment), initial, (line) => {
              if (line === undefined) return cancel();
              const pick = pickDeployment(line, site, w.deploymentName);
              if (typeof pick === 'string') {
                say(`new instance: ${pick}`);
                return askDeployment(line);
              }
              chosen(pick);
            }, undefined, () => [...site.map((d) => d.name), ...(w.deploymentName ? [w.deploymentName] : [])]);
          if (withDeployments) askDeployment(selDeployment);
          else rest({ kind: 'published' }, w);
          // name → parameters → host → confirm, for the deployment picked.
          function rest(pick: DeploymentPick, facts: WizardFacts): void {
            const what = pickLabel(pick, appliance, facts.deployment);
            ask(`new instance › ${what} › name: `, '', (name) => {
              if (!name?.trim()) return cancel();
              const askHost = (parsed: Record<string, string>) =>
                ask(`new instance › ${name.trim()} › host (empty: automatic; tab completes): `, '', (host) => {
                  if (host === undefined) return cancel();
                  // The CLI's request: `--deployment NAME` instead of the appliance, no host = automatic placement.
                  const req = instanceCreateParams({ name: name.trim(), ...(pick.kind === 'site' ? { deployment: pick.deployment.name } : { appliance }), host: host.trim(), params: parsed });
                  confirmRun = () => {
                    say(`creating ${req.name}…`);
                    api.call(METHODS.instanceCreate, req).then(
                      () => {
                        if (frame().view.id !== 'instances') go('instances');
                        else void refresh();
                      },
                      (e) => fail(`new instance ${req.name}`, e),
                    );
                  };
                  mode = 'confirm';
                  const secret = new Set((facts.params ?? []).filter((p) => p.type === 'secret').map((p) => p.name));
                  const kv = Object.entries(parsed).map(([k, v]) => `${k}=${secret.has(k) ? SECRET_SHOWN : v}`).join(' ');
                  dialog.setContent(clean(` create instance ${req.name} of ${what} on ${req.host ?? 'a host chosen automatically'}${kv ? ` with ${kv}` : ''}?\n y: yes, any other key: no`));
                  dialog.show();
                  dialog.setFront();
                  draw();
                }, undefined, () => hosts);
              const askParams = (initial: string) =>
                ask(`new instance › ${name.trim()} › parameters (${paramsHint(facts)}): `, initial, (line) => {
                  if (line === undefined) return cancel();
                  const parsed = checkParams(line, facts);
                  if (typeof parsed === 'string') {
                    // Say what is wrong and ask again with the line as typed.
                    say(`new instance: ${parsed}`);
                    return askParams(line);
                  }
                  askHost(parsed);
                });
              // An appliance that declares no parameters is not asked for any.
              if (facts.params?.length === 0) askHost({});
              else askParams(facts.defaults);
            });
          }
        },
        (e) => fail(`new instance › ${appliance}`, e),
      );
    }, undefined, () => apps);
  }

  function dispatch(b: KeyBinding, key?: string): void {
    const a = b.action;
    const m = frame().model;
    if (a.startsWith('view:')) return go(a.slice(5));
    switch (a) {
      case 'help':
        return showOverlay('help', help, helpText(viewId(), readOnly, available));
      case 'command':
        return ask(':', '', (v) => v !== undefined && runCommand(v), undefined, () => [...Object.keys(COMMAND_ALIASES), ...VIEW_LIST.map((v) => v.id)]);
      case 'filter': {
        const before = m?.filter ?? '';
        return ask('/', before, (v) => {
          m?.setFilter(v ?? before);
          draw();
        }, (v) => {
          m?.setFilter(v);
        });
      }
      case 'back':
        return back();
      case 'open':
        return open();
      case 'mark':
        m?.toggleMark();
        return draw();
      case 'down':
      case 'up':
      case 'pagedown':
      case 'pageup': {
        const page = Math.max(1, (table.height as number) - 4);
        m?.move(a === 'down' ? 1 : a === 'up' ? -1 : a === 'pagedown' ? page : -page);
        return draw();
      }
      case 'home':
        m?.home();
        return draw();
      case 'end':
        m?.end();
        return draw();
      case 'sort':
        return sortKey(key ?? '1');
      case 'next':
      case 'prev': {
        const i = VIEW_LIST.findIndex((v) => v.id === stack[0]!.view.id);
        const n = VIEW_LIST.length;
        return go(VIEW_LIST[(i + (a === 'next' ? 1 : n - 1)) % n]!.id);
      }
      case 'refresh':
        flashText = '';
        forceHealth = true;
        return void refresh();
      case 'error':
        return showOverlay('popup', popup, lastError || 'no error so far');
      case 'quit':
        return destroy();
      case 'op':
        return op(b);
      case 'wizard':
        return wizard();
    }
  }

  // ---------- keys ----------
  function onKey(ch: string | undefined, key: { full?: string; name?: string } | undefined): void {
    if (destroyed) return;
    const name = key?.full ?? key?.name ?? ch ?? '';
    if (name === 'return') return; // blessed sends "return" and then "enter" for one CR
    try {
      if (mode === 'input') return onInputKey(ch, name);
      if (mode === 'confirm') {
        const run = confirmRun;
        confirmRun = undefined;
        dialog.hide();
        mode = 'normal';
        if (name === 'y' && run) run();
        else say('cancelled');
        return;
      }
      if (mode === 'help' || mode === 'detail' || mode === 'popup') {
        const box = mode === 'help' ? help : mode === 'detail' ? detail : popup;
        if (name === 'j' || name === 'down') return (box.scroll(1), void screen.render());
        if (name === 'k' || name === 'up') return (box.scroll(-1), void screen.render());
        if (name === 'C-c') return destroy();
        if (name === 'escape' || name === 'q' || name === 'enter' || (name === '?' && mode === 'help') || (name === 'x' && mode === 'popup')) return closeOverlays();
        return;
      }
      const b = keysNow().find((k) => k.keys.includes(name));
      if (b) dispatch(b, name);
    } catch (e) {
      fail('console', e);
    }
  }

  function onInputKey(ch: string | undefined, name: string): void {
    if (name === 'escape' || name === 'C-c') {
      mode = 'normal';
      const done = input.done;
      done(undefined);
      return draw();
    }
    if (name === 'enter') {
      mode = 'normal';
      flashText = '';
      input.done(input.value);
      return draw();
    }
    if (name === 'backspace') input.value = input.value.slice(0, -1);
    else if (name === 'tab' && (input.prefix === ':' || inputWords)) {
      const words = inputWords ? inputWords() : [...Object.keys(COMMAND_ALIASES), ...VIEW_LIST.map((v) => v.id)];
      const c = complete(input.value, words);
      input.value = c.line;
      if (c.matches.length > 1) {
        flashText = '';
        draw();
        return void (flash.setContent(`${input.prefix}${input.value}█   ${c.matches.slice(0, 12).join(' ')}`), screen.render());
      }
    } else if (ch && ch.length === 1 && ch >= ' ' && ch !== '\x7f' && input.value.length < 200) input.value += ch;
    else return;
    inputLive?.(input.value);
    draw();
  }

  screen.on('keypress', onKey);
  screen.on('resize', () => {
    if (!destroyed) draw();
  });

  // ---------- live updates ----------
  let pending: NodeJS.Timeout | undefined;
  const unsubscribe = api.subscribe((e) => {
    if (destroyed) return;
    trackProgress(e);
    pending ??= timer(() => {
      pending = undefined;
      void refresh();
    }, EVENT_DEBOUNCE_MS);
  });

  /** Events carrying `data.progress` (0..100) and `data.operation` drive the progress gauges. */
  function trackProgress(e: StormEvent): void {
    const d = e.data;
    // Provisioning reports states, not percentages: pending → provisioning → running (or failed).
    if (e.kind === 'instance.state' && d && typeof d.state === 'string' && e.object) {
      const id = `provision:${e.object}`;
      // Its layers' fetches have gauges of their own (layer.fetch events, by bytes).
      const step: Record<string, number> = { pending: 10, provisioning: 50 };
      if (d.state in step) {
        // A record saved again mid-way (its certificate noted) repeats the state: the gauge never goes back.
        if ((progress.get(id)?.percent ?? -1) < step[d.state]!) trackProgress({ ...e, kind: 'progress', data: { operation: id, progress: step[d.state]!, label: `provision ${e.object.replace(/^instance\//, '')}` } });
      }
      else if (progress.has(id)) trackProgress({ ...e, kind: 'progress', level: d.state === 'failed' ? 'error' : 'info', data: { operation: id, progress: 100, label: `provision ${e.object.replace(/^instance\//, '')}: ${d.state}` } });
      return;
    }
    // The manager's image store reports downloads by bytes (image.download/progress/retry/stored/failed).
    if (e.kind.startsWith('image.') && d && typeof d.sha256 === 'string' && /^image\.(download|progress|retry|stored|failed)$/.test(e.kind)) {
      const id = `image:${d.sha256}`;
      const size = typeof d.size === 'number' && d.size > 0 ? d.size : undefined;
      const got = typeof d.bytes === 'number' ? d.bytes : typeof d.from === 'number' ? d.from : undefined;
      const pct = e.kind === 'image.stored' ? 100 : size !== undefined && got !== undefined ? Math.min(99, Math.floor((got / size) * 100)) : (progress.get(id)?.percent ?? 0);
      trackProgress({ ...e, kind: 'progress', ...(e.kind === 'image.failed' ? { level: 'error' as const } : {}), data: { operation: id, progress: pct, label: `download ${text(d.what)}` } });
      return;
    }
    if (!d || typeof d.operation !== 'string' || typeof d.progress !== 'number') return;
    const id = d.operation;
    const done = d.progress >= 100 || d.done === true || e.level === 'error';
    progress.set(id, { label: `${text(d.label ?? e.object ?? id)}`.slice(0, 40), percent: d.progress, stroke: e.level === 'error' ? 'red' : 'yellow' });
    if (done) timer(() => {
      progress.delete(id);
      draw();
    }, 2000);
    draw();
  }

  function timer(fn: () => void, ms: number): NodeJS.Timeout {
    const t = setTimeout(() => {
      timers.delete(t);
      if (!destroyed) fn();
    }, ms);
    timers.add(t);
    return t;
  }
  const dashTick = setInterval(() => {
    if (!destroyed && frame().view.kind === 'dashboard' && mode === 'normal') void refresh();
  }, DASH_REFRESH_MS);

  function destroy(): void {
    if (destroyed) return;
    destroyed = true;
    unsubscribe();
    clearInterval(dashTick);
    for (const t of timers) clearTimeout(t);
    timers.clear();
    screen.removeAllListeners('keypress');
    try {
      screen.destroy();
    } catch {
      /* the stream may already be gone (client killed) */
    }
    o.onExit?.();
  }

  // ---------- start ----------
  const start = VIEWS[o.view ?? FIRST_VIEW] ? (o.view ?? FIRST_VIEW) : FIRST_VIEW;
  stack = [{ view: VIEWS[start]!, params: {} }];
  draw();
  const ready = api
    .call<{ name: string }[]>(METHODS.methods)
    .then((ms) => {
      available = new Set(ms.map((m) => m.name));
    })
    .catch(() => {
      /* an older manager: views find out method by method */
    });
  void ready.then(() => refresh());

  return {
    screen,
    settled: async () => {
      await ready;
      await new Promise((r) => setImmediate(r));
      while (loading && loadingGen === generation) await loading;
    },
    state: () => ({ view: viewId(), mode, flash: flashText, lastError, available, model: frame().model, notAvailable: frame().notAvailable, progress }),
    redraw: draw,
    destroy,
  };
}

/** Service text on its way to a terminal: escape sequences dropped whole (a guest's console has colours), then any other control character (no injection). */
const clean = (s: string) => s.replace(/\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]/g, '').replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '');

interface WizardFacts {
  /** "NAME VERSION" of the deployment layer, when the appliance has one. */
  deployment?: string;
  /** Its NAME alone (the deployment step accepts it for the default). */
  deploymentName?: string;
  /** Declared parameters; undefined when the catalog was not asked (anything goes). */
  params?: ParamSpec[];
  required: string[];
  /** The parameters line to start from: each declared parameter with its default. */
  defaults: string;
}

/** What the wizard needs from a catalog entry (appliance.show), tolerant of its shape. */
export function wizardFacts(entry: unknown): WizardFacts {
  const a = (entry as { appliance?: { layers?: unknown; parameters?: unknown } } | undefined)?.appliance;
  if (!a) return { required: [], defaults: '' };
  const dep = (Array.isArray(a.layers) ? a.layers : []).find((l) => (l as { role?: unknown })?.role === 'deployment') as { name?: unknown; version?: unknown } | undefined;
  const params = (Array.isArray(a.parameters) ? a.parameters : [])
    .filter((p): p is Record<string, unknown> => !!p && typeof (p as { name?: unknown }).name === 'string')
    .map((p) => ({
      name: String(p.name),
      type: (PARAM_TYPES as readonly unknown[]).includes(p.type) ? (p.type as ParamType) : 'string',
      required: p.required === true,
      ...(typeof p.default === 'string' ? { default: p.default } : {}),
      ...(Array.isArray(p.choices) ? { choices: p.choices.map(String) } : {}),
    }));
  return {
    ...(dep ? { deployment: `${text(dep.name)} ${text(dep.version)}`.trim(), ...(text(dep.name) ? { deploymentName: text(dep.name) } : {}) } : {}),
    params,
    required: params.filter((p) => p.required && p.default === undefined).map((p) => p.name),
    defaults: params.filter((p) => p.default !== undefined).map((p) => `${p.name}=${p.default}`).join(' '),
  };
}

/** What the parameters prompt says: the form, the required names, then the optional ones. */
export function paramsHint(w: WizardFacts): string {
  const optional = (w.params ?? []).map((p) => p.name).filter((n) => !w.required.includes(n));
  return ['key=value', ...(w.required.length ? [`required: ${w.required.join(', ')}`] : []), ...(optional.length ? [`optional: ${optional.join(', ')}`] : [])].join('; ');
}

/** Parse "k=v k=v" against the declared parameters: the map, or what is wrong in one sentence. */
export function checkParams(line: string, w: WizardFacts): Record<string, string> | string {
  const out: Record<string, string> = {};
  for (const word of line.trim().split(/\s+/).filter(Boolean)) {
    const i = word.indexOf('=');
    if (i <= 0) return `parameter "${word}" is not key=value`;
    out[word.slice(0, i)] = word.slice(i + 1);
  }
  if (!w.params) return out;
  // The manager's own rule, so what the wizard accepts is what create accepts.
  const r = resolveParams(w.params, out);
  return 'error' in r ? r.error : r.params;
}

function fullText(what: string, err: StormError): string {
  return [`${what}`, '', `code: ${err.code}`, `message: ${err.message}`, ...(err.hint ? [`hint: ${err.hint}`] : []), ...(err.details ? ['details:', toYaml(err.details)] : [])].join('\n');
}

export { showKey };
