import type { CommandDef } from '../command.ts';
import { applianceCommands } from './appliance.ts';
import { channelCommands } from './channel.ts';
import { imageCommands } from './image.ts';
import { instanceCommands, instanceOpsCommands } from './instance.ts';
import { systemCommands } from './system.ts';

/** Every `storm <noun> <verb>`, in help order. Each noun's commands live in their own file. */
export const COMMANDS: CommandDef[] = [...systemCommands, ...instanceCommands, ...instanceOpsCommands, ...channelCommands, ...applianceCommands, ...imageCommands];
