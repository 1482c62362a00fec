/**
 * The manager's SSH server: the administrator's door. Public-key auth only,
 * against STATE/ssh/authorized_keys (re-read on every attempt, so adding a
 * key needs no restart). `pty` + `shell` gets the console on its own screen;
 * `exec` runs the same headless command as the CLI and returns its exit code.
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import ssh2 from 'ssh2';
import type { Connection, ServerChannel, PublicKeyAuthContext } from 'ssh2';
import type { EnvSnapshot } from '../../lib/env.ts';
import { parseHostPort } from '../../lib/config.ts';
import { toStormError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import type { StormApi } from '../../manager/api.ts';
import type { CallContext } from '../../manager/services/registry.ts';
import { runCli } from '../cli/cli.ts';
import type { CommandDef } from '../cli/command.ts';
import { createConsole, type Console } from '../console/app.ts';
import { findKey, parseAuthorizedKeys, MAX_FILE_BYTES, type AuthorizedKey } from './authorized-keys.ts';
import { splitCommand } from './command-line.ts';
import { authorizedKeysPath, ensureHostKey } from './host-key.ts';

export interface SshServerOptions {
  /** HOST:PORT (port 0 picks one). */
  listen: string;
  /** The manager's state directory (host key and authorized_keys live in STATE/ssh). */
  state: string;
  /** An in-process API with the session's context (read-only keys get readOnly). */
  api: (ctx: CallContext) => StormApi;
  log: Logger;
  /** Environment the exec'd CLI sees (STORM_STATE is set to `state`). */
  env: EnvSnapshot;
  /** The CLI's command table (default: tui/cli/commands). */
  commands?: CommandDef[];
  /** Connections at once; more are closed at once. */
  maxConnections?: number;
  /** Unauthenticated connections are closed after this long. */
  authTimeoutMs?: number;
}

interface Session {
  console?: Console;
  api?: StormApi;
  close(): void;
}

export class SshServer {
  readonly #o: SshServerOptions;
  readonly #server: InstanceType<typeof ssh2.Server>;
  readonly #clients = new Set<Connection>();
  readonly #sessions = new Set<Session>();
  #port = 0;
  #host = '';

  private constructor(o: SshServerOptions, hostKey: Buffer) {
    this.#o = o;
    // Keepalives drop a client that vanished without closing (a cut network) within about a minute.
    this.#server = new ssh2.Server({ hostKeys: [hostKey], ident: 'storm', keepaliveInterval: 15_000, keepaliveCountMax: 4 } as ConstructorParameters<typeof ssh2.Server>[0], (client, info) =>
      this.#connection(client, info.ip),
    );
    this.#server.on('error', (e: Error) => o.log.warn('ssh server error', { error: e.message }));
  }

  /** Make or load the host key and listen. */
  static async start(o: SshServerOptions): Promise<SshServer> {
    const hp = parseHostPort(o.listen);
    if (!hp) throw new Error(`ssh listen address "${o.listen}" is not HOST:PORT`);
    const hk = ensureHostKey(o.state);
    if (hk.created) o.log.info('ssh host key created', { publicKey: hk.publicKey });
    const s = new SshServer(o, hk.key);
    await new Promise<void>((resolve, reject) => {
      const onErr = (e: Error) => reject(e);
      s.#server.once('error', onErr);
      s.#server.listen(hp.port, hp.host, () => {
        s.#server.off('error', onErr);
        resolve();
      });
    });
    const a = s.#server.address() as AddressInfo;
    s.#port = a.port;
    s.#host = a.address;
    o.log.info('ssh listening', { address: `${s.#host}:${s.#port}`, authorizedKeys: authorizedKeysPath(o.state) });
    return s;
  }

  get port(): number {
    return this.#port;
  }
  get address(): string {
    return `${this.#host}:${this.#port}`;
  }
  /** Open console and exec sessions (tests check that closing frees them). */
  get sessionCount(): number {
    return this.#sessions.size;
  }
  get connectionCount(): number {
    return this.#clients.size;
  }

  async close(): Promise<void> {
    for (const s of [...this.#sessions]) s.close();
    for (const c of [...this.#clients]) c.end();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #keys(): AuthorizedKey[] {
    const path = authorizedKeysPath(this.#o.state);
    let text = '';
    try {
      const buf = readFileSync(path);
      text = buf.subarray(0, MAX_FILE_BYTES + 1).toString('utf8');
    } catch (e) {
      this.#o.log.warn('cannot read authorized_keys', { path, error: (e as Error).message });
      return [];
    }
    const { keys, warnings } = parseAuthorizedKeys(text);
    for (const w of warnings) this.#o.log.warn(w, { path });
    return keys;
  }

  #connection(client: Connection, ip: string): void {
    const log = this.#o.log.child({ peer: ip });
    if (this.#clients.size >= (this.#o.maxConnections ?? 256)) {
      log.warn('ssh connection refused: too many connections');
      client.on('error', () => {});
      client.end();
      return;
    }
    this.#clients.add(client);
    // Keystrokes and screen updates are small writes: don't let Nagle hold them back.
    (client as unknown as { setNoDelay(v: boolean): void }).setNoDelay(true);
    let who: { user: string; key: AuthorizedKey } | undefined;
    const mine = new Set<Session>();
    const authTimer = setTimeout(() => {
      if (!who) client.end();
    }, this.#o.authTimeoutMs ?? 30_000);

    client.on('authentication', (ctx) => {
      if (ctx.method !== 'publickey') return ctx.reject(['publickey']);
      const pk = ctx as PublicKeyAuthContext;
      const entry = findKey(this.#keys(), pk.key.data);
      if (!entry) {
        log.info('ssh key refused', { user: ctx.username, type: pk.key.algo });
        return ctx.reject(['publickey']);
      }
      if (pk.signature && pk.blob) {
        const parsed = ssh2.utils.parseKey(`${entry.type} ${entry.blob.toString('base64')}`);
        const key = Array.isArray(parsed) ? parsed[0] : parsed;
        if (!key || key instanceof Error || key.verify(pk.blob, pk.signature, pk.hashAlgo) !== true) return ctx.reject(['publickey']);
        who = { user: ctx.username, key: entry };
      }
      ctx.accept();
    });

    client.on('ready', () => {
      clearTimeout(authTimer);
      if (!who) return client.end();
      const id = who;
      log.info('ssh session', { user: id.user, key: id.key.comment || `line ${id.key.line}`, readOnly: id.key.readOnly });
      const ctx: CallContext = { actor: `ssh:${id.user}${id.key.comment ? ` (${id.key.comment})` : ''}`, readOnly: id.key.readOnly };
      client.on('session', (accept) => {
        const session = accept();
        let pty: { cols: number; rows: number; term: string } | undefined;
        let live: { stream: ServerChannel; sess: Session } | undefined;
        session.on('pty', (acc, rej, info) => {
          if (id.key.noPty) return rej?.();
          pty = { cols: info.cols || 80, rows: info.rows || 24, term: info.term || 'xterm' };
          acc?.();
        });
        session.on('window-change', (acc, _rej, info) => {
          if (pty) pty = { ...pty, cols: info.cols || pty.cols, rows: info.rows || pty.rows };
          if (live) {
            const s = live.stream as ServerChannel & { columns: number; rows: number };
            s.columns = info.cols || s.columns;
            s.rows = info.rows || s.rows;
            s.emit('resize');
          }
          acc?.();
        });
        session.on('env', (acc) => acc?.());
        session.on('shell', (acc, rej) => {
          if (!pty || id.key.noPty) {
            // No terminal: nothing to draw on. Say so instead of drawing garbage.
            const stream = acc();
            stream.on('error', () => {});
            stream.stderr.write('storm: the console needs a terminal (ssh -t); for commands use: ssh HOST storm <noun> <verb>\r\n');
            stream.exit(2);
            stream.end();
            return;
          }
          void rej;
          live = this.#shell(acc(), pty, ctx, mine, log);
        });
        session.on('exec', (acc, _rej, info) => {
          // `ssh -t manager storm tui` means the console, as locally.
          if (pty && !id.key.noPty && /^\s*(storm\s+)?tui\s*$/.test(info.command)) {
            live = this.#shell(acc(), pty, ctx, mine, log);
            return;
          }
          this.#exec(acc(), info.command, ctx, Boolean(pty), mine, log);
        });
        session.on('subsystem', (_acc, rej) => rej?.());
      });
    });

    const cleanup = () => {
      clearTimeout(authTimer);
      this.#clients.delete(client);
      for (const s of [...mine]) s.close();
    };
    client.on('error', (e: Error) => log.debug('ssh client error', { error: e.message }));
    client.on('close', cleanup);
    client.on('end', cleanup);
  }

  #track(sess: Session, mine: Set<Session>): void {
    this.#sessions.add(sess);
    mine.add(sess);
    const close = sess.close;
    sess.close = () => {
      this.#sessions.delete(sess);
      mine.delete(sess);
      close();
    };
  }

  #shell(stream: ServerChannel, pty: { cols: number; rows: number; term: string }, ctx: CallContext, mine: Set<Session>, log: Logger): { stream: ServerChannel; sess: Session } {
    // blessed reads these from its output before it lays anything out.
    Object.assign(stream, { columns: pty.cols, rows: pty.rows, isTTY: true });
    stream.on('error', () => {});
    const api = this.#o.api(ctx);
    let closed = false;
    const sess: Session = {
      api,
      close: () => {
        if (closed) return;
        closed = true;
        sess.console?.destroy();
        api.close();
        stream.removeAllListeners('data');
        if (!(stream as unknown as { destroyed?: boolean }).destroyed) {
          try {
            stream.exit(0);
            stream.end();
          } catch {
            /* the client is gone */
          }
        }
      },
    };
    this.#track(sess, mine);
    try {
      sess.console = createConsole({
        api,
        input: stream,
        output: stream,
        terminal: pty.term,
        readOnly: ctx.readOnly,
        who: ctx.actor.replace(/^ssh:/, ''),
        onExit: () => sess.close(),
      });
    } catch (e) {
      log.error('console failed to start', { error: toStormError(e).message });
      stream.stderr.write(`storm: the console failed to start: ${toStormError(e).message}\r\n`);
      sess.close();
    }
    stream.on('close', () => sess.close());
    return { stream, sess };
  }

  #exec(stream: ServerChannel, command: string, ctx: CallContext, tty: boolean, mine: Set<Session>, log: Logger): void {
    stream.on('error', () => {});
    const api = this.#o.api(ctx);
    let closed = false;
    const sess: Session = {
      api,
      close: () => {
        if (closed) return;
        closed = true;
        api.close();
      },
    };
    this.#track(sess, mine);
    stream.on('close', () => sess.close());
    const nl = (s: string) => (tty ? s.replace(/\r?\n/g, '\r\n') : s);
    void (async () => {
      let code: number;
      try {
        let argv = splitCommand(command);
        if (argv[0] === 'storm') argv = argv.slice(1);
        log.info('ssh exec', { actor: ctx.actor, argv: argv.slice(0, 8) });
        code = await runCli(
          argv,
          { stdout: (s) => void (!closed && stream.write(nl(s))), stderr: (s) => void (!closed && stream.stderr.write(nl(s))), stdinIsTty: tty, env: { ...this.#o.env, STORM_STATE: this.#o.state }, closed: new Promise<void>((r) => stream.on('close', () => r())) },
          { api: async () => api, remote: true, ...(this.#o.commands ? { commands: this.#o.commands } : {}) },
        );
      } catch (e) {
        const err = toStormError(e);
        if (!closed) stream.stderr.write(`error: ${err.message}\n`);
        code = 2;
      }
      if (!closed) {
        try {
          stream.exit(code);
          stream.end();
        } catch {
          /* the client is gone */
        }
      }
      sess.close();
    })();
  }
}
