import type { CommandDef } from '../command.ts';
import { hostCommands, pkiCommands } from './host.ts';
import { systemCommands } from './system.ts';

/** Every `storm <noun> <verb>`, in help order. Each noun's commands live in their own file. */
export const COMMANDS: CommandDef[] = [...systemCommands, ...hostCommands, ...pkiCommands];
