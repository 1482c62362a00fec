import type { CommandDef } from '../command.ts';
import { instanceCommands, instanceOpsCommands } from './instance.ts';
import { hostCommands, pkiCommands } from './host.ts';
import { systemCommands } from './system.ts';
import { dnsCommands } from './dns.ts';
import { dhcpCommands } from './dhcp.ts';
import { layerCommands } from './layer.ts';
import { grantCommands } from './grant.ts';
import { apiCommands } from './api.ts';

/** Every `storm <noun> <verb>`, in help order. Each noun's commands live in their own file. */
export const COMMANDS: CommandDef[] = [...systemCommands, ...instanceCommands, ...instanceOpsCommands, ...hostCommands, ...pkiCommands, ...layerCommands, ...dnsCommands, ...dhcpCommands, ...grantCommands, ...apiCommands];
