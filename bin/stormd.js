#!/usr/bin/env node
// Entry shim: load TypeScript through tsx, then hand over to the composition root.
import { register } from 'tsx/esm/api';
register();
await import('./stormd.ts');
