import type { EventBus } from '../events.ts';
import type { Registry } from './registry.ts';

/**
 * The operations log: every state-changing call that ran becomes an event
 * (`operation`, or `operation.failed` with the error's code), naming who and
 * what. So the events view says who did what, and every console session
 * refreshes on any change, even one whose service emits nothing of its own.
 * Parameters other than the object's name are never copied (passwords).
 */
export function logOperations(reg: Registry, bus: EventBus): () => void {
  return reg.onOperation((op) => {
    const what = `${op.method}${op.object ? ` ${op.object}` : ''}`;
    bus.emit({
      kind: op.error ? 'operation.failed' : 'operation',
      ...(op.object ? { object: op.object } : {}),
      ...(op.error ? { level: 'warn' as const } : {}),
      message: op.error ? `${op.ctx.actor}: ${what} failed (${op.error.code}): ${op.error.message}` : `${op.ctx.actor}: ${what}`,
      data: { method: op.method, actor: op.ctx.actor, ...(op.error ? { code: op.error.code } : {}) },
    });
  });
}
