/** Moved to lib/ext4-read.ts (stormd reads instance layers with it too); kept for existing imports. */
export * from '../../lib/ext4-read.ts';
