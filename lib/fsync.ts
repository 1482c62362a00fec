import { open } from 'node:fs/promises';

/** Flush a file or a directory (a rename is durable once its directory is flushed). */
export async function fsyncPath(p: string, dataOnly = false): Promise<void> {
  const fh = await open(p, 'r');
  try {
    await (dataOnly ? fh.datasync() : fh.sync());
  } finally {
    await fh.close();
  }
}
