/**
 * The one key table. The footer and the help overlay are generated from it;
 * lower-case keys read and navigate, upper-case change state, Ctrl keys
 * destroy and always confirm.
 */
export interface KeyBinding {
  /** blessed key names, e.g. ['?'], ['S-s'], ['C-d']. */
  keys: string[];
  /** What the footer and help show. */
  label: string;
  action: string;
  /** Views where it applies; absent = everywhere. */
  views?: string[];
  /** Changes state: hidden from read-only sessions. */
  mutates?: boolean;
  /** Destroys something: always asks for confirmation naming the object. */
  dangerous?: boolean;
  /** Shown in the footer (the help overlay shows all). */
  footer?: boolean;
}

export const KEYS: KeyBinding[] = [
  { keys: ['?'], label: 'help', action: 'help', footer: true },
  { keys: [':'], label: 'command', action: 'command', footer: true },
  { keys: ['/'], label: 'filter', action: 'filter', footer: true },
  { keys: ['escape'], label: 'back', action: 'back' },
  { keys: ['enter'], label: 'open', action: 'open' },
  { keys: ['j', 'down'], label: 'down', action: 'down' },
  { keys: ['k', 'up'], label: 'up', action: 'up' },
  { keys: ['r'], label: 'refresh', action: 'refresh' },
  { keys: ['d'], label: 'doctor', action: 'view:health', footer: true },
  { keys: ['e'], label: 'events', action: 'view:events', footer: true },
  { keys: ['q', 'C-c'], label: 'quit', action: 'quit', footer: true },
];

/** Bindings a session may use: read-only sessions never see state-changing ones. */
export function bindingsFor(view: string, readOnly: boolean): KeyBinding[] {
  return KEYS.filter((k) => (!k.views || k.views.includes(view)) && !(readOnly && (k.mutates || k.dangerous)));
}

const show = (k: string) => k.replace(/^C-/, '^').replace(/^S-/, '').replace('escape', 'esc');

export function footerText(view: string, readOnly: boolean): string {
  return bindingsFor(view, readOnly)
    .filter((b) => b.footer)
    .map((b) => `${show(b.keys[0]!)} ${b.label}`)
    .join('  ');
}

export function helpText(view: string, readOnly: boolean): string {
  return bindingsFor(view, readOnly)
    .map((b) => `${b.keys.map(show).join(',').padEnd(10)} ${b.label}${b.dangerous ? ' (confirms)' : ''}`)
    .join('\n');
}

/** `:` command aliases → actions. */
export const COMMAND_ALIASES: Record<string, string> = {
  doctor: 'view:health', health: 'view:health', hc: 'view:health',
  events: 'view:events', ev: 'view:events',
  q: 'quit', quit: 'quit',
};
