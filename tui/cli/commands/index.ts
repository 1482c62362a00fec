import type { CommandDef } from '../command.ts';
import { systemCommands } from './system.ts';
import { userCommands } from './user.ts';
import { groupCommands } from './group.ts';
import { principalCommands } from './principal.ts';

/** Every `storm <noun> <verb>`, in help order. Each noun's commands live in their own file. */
export const COMMANDS: CommandDef[] = [...systemCommands, ...userCommands, ...groupCommands, ...principalCommands];
