import type { CommandDef } from '../command.ts';
import { applianceCommands } from './appliance.ts';
import { channelCommands } from './channel.ts';
import { imageCommands } from './image.ts';
import { instanceCommands, instanceOpsCommands } from './instance.ts';
import { hostCommands, pkiCommands } from './host.ts';
import { systemCommands } from './system.ts';
import { dnsCommands } from './dns.ts';
import { dhcpCommands } from './dhcp.ts';
import { layerCommands } from './layer.ts';
import { userCommands } from './user.ts';
import { groupCommands } from './group.ts';
import { principalCommands } from './principal.ts';
import { grantCommands } from './grant.ts';
import { apiCommands } from './api.ts';
import { deploymentCommands } from './deployment.ts';

/** Every `storm <noun> <verb>`, in help order. Each noun's commands live in their own file. */
export const COMMANDS: CommandDef[] = [...systemCommands, ...instanceCommands, ...instanceOpsCommands, ...deploymentCommands, ...channelCommands, ...applianceCommands, ...imageCommands, ...hostCommands, ...pkiCommands, ...layerCommands, ...dnsCommands, ...dhcpCommands, ...userCommands, ...groupCommands, ...principalCommands, ...grantCommands, ...apiCommands];
