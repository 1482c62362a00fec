/**
 * The one key table. The footer and the help overlay are generated from it;
 * lower-case keys read and navigate, upper-case change state, Ctrl keys
 * destroy and always confirm.
 */
import { METHODS } from './methods.ts';

export interface KeyBinding {
  /** blessed key names, e.g. ['?'], ['S-s'] (upper-case S), ['C-d']. */
  keys: string[];
  /** What the footer and help show. */
  label: string;
  /** 'view:ID' switches view, 'op' calls `method` on the marked (or selected) objects, else a built-in. */
  action: string;
  /** Views where it applies; absent = everywhere. */
  views?: string[];
  /** Service method an 'op' calls with `{name}`; the key is hidden when the manager lacks it. */
  method?: string;
  /** Parameters for the method other than `{name}` (e.g. the row's appliance). */
  params?: (name: string, row: unknown) => Record<string, unknown>;
  /** Changes state: hidden from read-only sessions. */
  mutates?: boolean;
  /** Destroys something: always asks for confirmation naming the object. */
  dangerous?: boolean;
  /** Shown in the footer (the help overlay shows all). */
  footer?: boolean;
  /** One value asked first (one object only), sent as `param`; tab completes the `complete` list. */
  ask?: { param: string; prompt: string; initial?: () => string; complete?: 'hosts' | 'snapshots' };
}

/** A snapshot name from the time, for the snapshot key's prompt: `s-20261126-2210`. */
export const snapshotStamp = (d = new Date()): string => `s-${d.toISOString().slice(0, 16).replace(/[-:]/g, '').replace('T', '-')}`;

/** Views that are tables (navigation, marks, sorting, filter apply). */
export const TABLE_VIEWS = ['instances', 'hosts', 'channels', 'appliances', 'deployments', 'layers', 'updates', 'dns', 'dhcp', 'users', 'groups', 'principals', 'events', 'health'];

export const KEYS: KeyBinding[] = [
  { keys: ['?'], label: 'help', action: 'help', footer: true },
  { keys: [':'], label: 'command', action: 'command', footer: true },
  { keys: ['/'], label: 'filter', action: 'filter', views: TABLE_VIEWS, footer: true },
  { keys: ['escape'], label: 'back', action: 'back' },
  { keys: ['enter'], label: 'open', action: 'open', views: TABLE_VIEWS },
  { keys: ['space'], label: 'mark', action: 'mark', views: TABLE_VIEWS },
  { keys: ['j', 'down'], label: 'down', action: 'down' },
  { keys: ['k', 'up'], label: 'up', action: 'up' },
  { keys: ['pagedown'], label: 'page down', action: 'pagedown', views: TABLE_VIEWS },
  { keys: ['pageup'], label: 'page up', action: 'pageup', views: TABLE_VIEWS },
  { keys: ['home'], label: 'first', action: 'home', views: TABLE_VIEWS },
  { keys: ['end'], label: 'last', action: 'end', views: TABLE_VIEWS },
  { keys: ['1', '2', '3', '4', '5', '6', '7', '8', '9'], label: 'sort by column N (again: reverse)', action: 'sort', views: TABLE_VIEWS },
  { keys: ['tab'], label: 'next view', action: 'next' },
  { keys: ['S-tab'], label: 'previous view', action: 'prev' },
  { keys: ['r'], label: 'refresh', action: 'refresh' },
  { keys: ['x'], label: 'full text of the last error', action: 'error' },
  { keys: ['o'], label: 'dashboard', action: 'view:dashboard' },
  { keys: ['i'], label: 'instances', action: 'view:instances', footer: true },
  { keys: ['h'], label: 'hosts', action: 'view:hosts', footer: true },
  { keys: ['c'], label: 'channels', action: 'view:channels', footer: true },
  { keys: ['a'], label: 'appliances', action: 'view:appliances' },
  { keys: ['p'], label: 'deployments', action: 'view:deployments' },
  { keys: ['l'], label: 'layers', action: 'view:layers' },
  { keys: ['u'], label: 'layer updates', action: 'view:updates' },
  { keys: ['d'], label: 'health', action: 'view:health' },
  { keys: ['e'], label: 'events', action: 'view:events', footer: true },
  // State changes: upper-case; destruction: Ctrl, always confirmed by name.
  { keys: ['S-s'], label: 'start', action: 'op', method: METHODS.instanceStart, views: ['instances'], mutates: true, footer: true },
  { keys: ['S-t'], label: 'stop', action: 'op', method: METHODS.instanceStop, views: ['instances'], mutates: true, footer: true },
  { keys: ['S-r'], label: 'reboot', action: 'op', method: METHODS.instanceReboot, views: ['instances'], mutates: true },
  { keys: ['S-p'], label: 'power off', action: 'op', method: METHODS.instancePoweroff, views: ['instances'], mutates: true },
  { keys: ['S-z'], label: 'snapshot', action: 'op', method: METHODS.instanceSnapshotTake, views: ['instances'], mutates: true, ask: { param: 'snapshot', prompt: 'name', initial: () => snapshotStamp() } },
  { keys: ['S-m'], label: 'migrate', action: 'op', method: METHODS.instanceMigrate, views: ['instances'], mutates: true, ask: { param: 'host', prompt: 'to host', complete: 'hosts' } },
  { keys: ['C-r'], label: 'restore snapshot', action: 'op', method: METHODS.instanceSnapshotRestore, views: ['instances'], mutates: true, dangerous: true, ask: { param: 'snapshot', prompt: 'snapshot', complete: 'snapshots' } },
  { keys: ['S-b'], label: 'roll back update', action: 'op', method: METHODS.updateRollback, views: ['instances', 'updates'], mutates: true },
  { keys: ['S-a'], label: 'apply update (canary first)', action: 'op', method: METHODS.updateApply, views: ['updates'], mutates: true, footer: true, params: (_n, row) => ({ appliance: (row as { appliance?: unknown })?.appliance }) },
  { keys: ['S-n'], label: 'new instance', action: 'wizard', method: METHODS.instanceCreate, views: ['instances', 'dashboard', 'appliances', 'deployments'], mutates: true, footer: true },
  { keys: ['C-d'], label: 'destroy', action: 'op', method: METHODS.instanceDestroy, views: ['instances'], mutates: true, dangerous: true, footer: true },
  { keys: ['C-d'], label: 'remove host', action: 'op', method: METHODS.hostRemove, views: ['hosts'], mutates: true, dangerous: true, footer: true },
  { keys: ['S-u'], label: 'refresh feed', action: 'op', method: METHODS.channelRefresh, views: ['channels'], mutates: true, footer: true },
  { keys: ['C-d'], label: 'unsubscribe', action: 'op', method: METHODS.channelRemove, views: ['channels'], mutates: true, dangerous: true, footer: true },
  // Exactly the selected record (the name may have several).
  { keys: ['C-d'], label: 'remove record', action: 'op', method: METHODS.dnsRecordRemove, views: ['dns'], mutates: true, dangerous: true, footer: true, params: (_n, row) => ({ type: (row as { type?: unknown })?.type, value: (row as { value?: unknown })?.value }) },
  { keys: ['C-d'], label: 'release lease', action: 'op', method: METHODS.dhcpLeaseRelease, views: ['dhcp'], mutates: true, dangerous: true, footer: true },
  { keys: ['C-d'], label: 'remove user', action: 'op', method: METHODS.userRemove, views: ['users'], mutates: true, dangerous: true, footer: true },
  { keys: ['q', 'C-c'], label: 'quit', action: 'quit', footer: true },
];

/**
 * Bindings a session may use in a view: read-only sessions never see
 * state-changing ones, and ops whose method the manager lacks are hidden
 * (`available` is the manager's method list; undefined = not known yet).
 */
export function bindingsFor(view: string, readOnly: boolean, available?: ReadonlySet<string>): KeyBinding[] {
  return KEYS.filter(
    (k) => (!k.views || k.views.includes(view)) && !(readOnly && (k.mutates || k.dangerous)) && !(k.method && available && !available.has(k.method)),
  );
}

/** How a key is written for people: C-d → ^D, S-s → S, escape → esc. */
export function showKey(k: string): string {
  if (/^C-.$/.test(k)) return '^' + k.slice(2).toUpperCase();
  if (/^S-.$/.test(k)) return k.slice(2).toUpperCase();
  if (k === 'S-tab') return 'shift-tab';
  return k.replace('escape', 'esc').replace('pagedown', 'pgdn').replace('pageup', 'pgup');
}

export function footerText(view: string, readOnly: boolean, available?: ReadonlySet<string>): string {
  return bindingsFor(view, readOnly, available)
    .filter((b) => b.footer)
    .map((b) => `${showKey(b.keys[0]!)} ${b.label}`)
    .join('  ');
}

export function helpText(view: string, readOnly: boolean, available?: ReadonlySet<string>): string {
  return bindingsFor(view, readOnly, available)
    .map((b) => {
      const ks = b.keys.length > 4 ? `${showKey(b.keys[0]!)}-${showKey(b.keys.at(-1)!)}` : b.keys.map(showKey).join(',');
      return `${ks.padEnd(12)} ${b.label}${b.dangerous ? ' (confirms)' : ''}`;
    })
    .join('\n');
}

/** `:` command aliases → actions (view ids are commands too). */
export const COMMAND_ALIASES: Record<string, string> = {
  dash: 'view:dashboard', dashboard: 'view:dashboard', overview: 'view:dashboard',
  instances: 'view:instances', instance: 'view:instances', inst: 'view:instances', vm: 'view:instances', vms: 'view:instances',
  hosts: 'view:hosts', host: 'view:hosts', hv: 'view:hosts',
  channels: 'view:channels', channel: 'view:channels', ch: 'view:channels',
  appliances: 'view:appliances', appliance: 'view:appliances', app: 'view:appliances', catalog: 'view:appliances',
  deployments: 'view:deployments', deployment: 'view:deployments', deploy: 'view:deployments', dep: 'view:deployments',
  layers: 'view:layers', layer: 'view:layers', images: 'view:layers', cache: 'view:layers',
  updates: 'view:updates', update: 'view:updates', rollout: 'view:updates',
  dns: 'view:dns', records: 'view:dns',
  dhcp: 'view:dhcp', leases: 'view:dhcp',
  users: 'view:users', user: 'view:users', ldap: 'view:users',
  groups: 'view:groups', group: 'view:groups',
  principals: 'view:principals', principal: 'view:principals', kerberos: 'view:principals', krb: 'view:principals',
  doctor: 'view:health', health: 'view:health', hc: 'view:health',
  events: 'view:events', ev: 'view:events', log: 'view:events',
  help: 'help',
  q: 'quit', quit: 'quit', exit: 'quit',
};

/** Tab completion for `:`: the longest common prefix of the matching commands, and the matches. */
export function complete(line: string, words: Iterable<string> = Object.keys(COMMAND_ALIASES)): { line: string; matches: string[] } {
  const prefix = line.trimStart();
  const matches = [...new Set(words)].filter((w) => w.startsWith(prefix)).sort();
  if (matches.length === 0) return { line, matches };
  let common = matches[0]!;
  for (const m of matches) while (!m.startsWith(common)) common = common.slice(0, -1);
  return { line: matches.length === 1 ? matches[0]! : common.length > prefix.length ? common : line, matches };
}
