/**
 * Layer fetches as progress events: a HostAgent whose `ensureLayer` reports
 * a gauge per file being fetched into a hypervisor's cache (by bytes when the
 * agent reports its downloads, as stormd's `layer.downloads` does), so every
 * console shows provisioning's long part without the instance service
 * knowing about screens. A file already cached (done within `quietMs`) makes
 * no event at all.
 */
import type { EventBus } from '../events.ts';
import type { HostAgent, LayerRef } from '../instances/host-agent.ts';

/** An agent that can say what it is downloading (StormdHostAgent). */
interface Downloads {
  downloads(): Promise<{ sha256: string; received: number; total: number | undefined }[]>;
}

export interface LayerProgressOptions {
  /** Before this, no event (a cached file returns at once). */
  quietMs?: number;
  /** How often the agent's downloads are asked while one runs. */
  pollMs?: number;
}

const hasDownloads = (a: unknown): a is Downloads => typeof (a as Partial<Downloads>)?.downloads === 'function';
const MiB = 1024 * 1024;

export function withLayerProgress(agent: HostAgent, bus: EventBus, o: LayerProgressOptions = {}): HostAgent {
  const quietMs = o.quietMs ?? 300;
  const pollMs = o.pollMs ?? 500;
  const ensureLayer = async (ref: LayerRef): Promise<void> => {
    const operation = `layer:${agent.host}:${ref.sha256}`;
    const label = `fetch ${ref.role} → ${agent.host}`;
    let shown = -1;
    let finished = false;
    const emit = (progress: number, message: string, level?: 'error') => {
      shown = progress;
      bus.emit({ kind: 'layer.fetch', object: `host/${agent.host}`, message, ...(level ? { level } : {}), data: { operation, progress, label, sha256: ref.sha256 } });
    };
    let polling = false;
    const poll = async () => {
      if (polling) return;
      polling = true;
      try {
        const d = hasDownloads(agent) ? (await agent.downloads()).find((x) => x.sha256 === ref.sha256) : undefined;
        if (finished) return; // an answer that arrives after the end says nothing new
        const total = d?.total && d.total > 0 ? d.total : ref.size;
        const pct = d && total > 0 ? Math.min(99, Math.floor((d.received / total) * 100)) : Math.max(shown, 0);
        // A step of 5 points or the first sight: the events log is not flooded by a long download.
        if (shown < 0 || pct >= shown + 5) emit(pct, `${agent.host}: fetching ${ref.role} ${ref.sha256.slice(0, 12)}${d ? ` (${(d.received / MiB).toFixed(1)} of ${(total / MiB).toFixed(1)} MiB)` : ''}`);
      } catch {
        /* progress is best effort: the fetch itself decides */
      } finally {
        polling = false;
      }
    };
    let timer: NodeJS.Timeout | undefined;
    const first = setTimeout(() => {
      void poll();
      timer = setInterval(() => void poll(), pollMs);
      timer.unref();
    }, quietMs);
    first.unref();
    try {
      await agent.ensureLayer(ref).finally(() => (finished = true));
      if (shown >= 0) emit(100, `${agent.host}: ${ref.role} ${ref.sha256.slice(0, 12)} cached`);
    } catch (e) {
      if (shown >= 0) emit(shown, `${agent.host}: fetching ${ref.role} ${ref.sha256.slice(0, 12)} failed: ${(e as Error).message}`, 'error');
      throw e;
    } finally {
      clearTimeout(first);
      clearInterval(timer);
    }
  };
  return new Proxy(agent, {
    get(target, prop) {
      if (prop === 'ensureLayer') return ensureLayer;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
