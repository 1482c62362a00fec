/**
 * Test-only crash points in provisioning and destroying. Each point sits
 * right after a side effect and *before* the journal records it (the journal
 * lags reality: the harshest moment to die), or right after a state write.
 * The service calls its checkpoint at each one, in this order; a manager
 * started with `STORM_TEST_CRASH_AT=OP:POINT` SIGKILLs itself there, and
 * test/e2e/crash-recovery.test.ts iterates over every point listed here.
 * A new step in the service needs its point here (the checkpoint's type
 * demands it) and service.test.ts checks the order against a real run.
 */
import type { Logger } from '../../lib/logger.ts';

export const CRASH_POINTS = {
  provision: [
    'record', // the pending record and its journal entry are written (create, before answering)
    'layers', // every layer, kernel and initrd is on the host
    'certificate', // the instance certificate is issued and its serial saved
    'instance-layer', // stormd built the instance layer
    'define', // the domain is defined
    'start', // the domain is started
    'started', // the journal says every step is done; the record still says provisioning
    'running', // the record says running and the entry is gone: nothing left to repair
  ],
  destroy: [
    'deleting', // the record says deleting and the destroy entry is written
    'poweroff', // the domain is powered off
    'undefine', // the domain is undefined
    'instance-layer', // the instance layer is removed
    'certificate', // the certificate is revoked
    'forgotten', // the record and the entry are gone (before the destroyed event)
  ],
} as const;

export type CrashOp = keyof typeof CRASH_POINTS;
export type CrashPoint<O extends CrashOp = CrashOp> = (typeof CRASH_POINTS)[O][number];
/**
 * Called (and awaited) by the service at each point; a no-op unless a test asked for a crash.
 * Unit tests freeze an operation at a point by returning a promise that never settles.
 */
export type Checkpoint = <O extends CrashOp>(op: O, point: CrashPoint<O>) => void | Promise<void>;

/** Every point as `OP:POINT`, in order: what STORM_TEST_CRASH_AT accepts. */
export function crashPointNames(): string[] {
  return (Object.keys(CRASH_POINTS) as CrashOp[]).flatMap((op) => CRASH_POINTS[op].map((p) => `${op}:${p}`));
}

/** A checkpoint that kills this process with SIGKILL at `at` (OP:POINT), after one log line. */
export function crashAt(at: string, log: Logger, kill: () => void = () => process.kill(process.pid, 'SIGKILL')): Checkpoint {
  if (!crashPointNames().includes(at)) throw new Error(`unknown crash point "${at}"`);
  return (op, point) => {
    if (`${op}:${point}` !== at) return;
    log.error('test crash point reached: SIGKILL', { crashAt: at });
    kill();
  };
}
