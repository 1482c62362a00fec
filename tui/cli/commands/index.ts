import type { CommandDef } from '../command.ts';
import { instanceCommands, instanceOpsCommands } from './instance.ts';
import { systemCommands } from './system.ts';
import { dnsCommands } from './dns.ts';
import { dhcpCommands } from './dhcp.ts';

/** Every `storm <noun> <verb>`, in help order. Each noun's commands live in their own file. */
export const COMMANDS: CommandDef[] = [...systemCommands, ...instanceCommands, ...instanceOpsCommands, ...dnsCommands, ...dhcpCommands];
