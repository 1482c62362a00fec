/**
 * Every service method the console calls, in one table, so the names can be
 * aligned with the services in one place. A view whose method the manager
 * does not offer (yet) says "not available" instead of failing; a key whose
 * method is missing is not offered.
 *
 * List methods take `{}` (or the drill-down filter shown) and return an array
 * of plain objects; each object has a `name` (the key for marks, confirmations
 * and the `{name}` parameter that actions receive).
 */
export const METHODS = {
  // system (exists)
  status: 'system.status',
  doctor: 'system.doctor',
  events: 'events.recent',
  methods: 'system.methods',
  // hosts: HostRecord[] (the dashboard's gauges read info.memoryBytes/freeMemoryBytes, info.diskTotalBytes/diskFreeBytes)
  hosts: 'host.list',
  hostRemove: 'host.remove',
  // channels and the appliance catalog
  channels: 'channel.list',
  channelRefresh: 'channel.refresh',
  channelRemove: 'channel.remove',
  appliances: 'appliance.list', // params {channel?}
  applianceShow: 'appliance.show', // {ref: ID@VERSION} → CatalogEntry (its layers' names and versions)
  // the site's deployments (manager/services/deployments.ts): DeploymentRecord[]
  deployments: 'deployment.list',
  deploymentShow: 'deployment.show', // {name} → DeploymentRecord (an instance's deployment layer named in its detail pane)
  // layers in the image store: [{sha256, size, usedBy, storedAt}]
  layers: 'image.list',
  // instances (manager/services/instances.ts): InstanceRecord[]
  instances: 'instance.list', // params {host?}
  instanceCreate: 'instance.create', // {name, appliance | deployment, host?, params}: instanceCreateParams (manager/services/instances.ts), as the CLI sends it
  instanceStart: 'instance.start',
  instanceStop: 'instance.stop',
  instanceReboot: 'instance.reboot',
  instancePoweroff: 'instance.poweroff',
  instanceDestroy: 'instance.destroy',
  instanceSnapshots: 'instance.snapshot.list', // {name}
  instanceSnapshotTake: 'instance.snapshot.take', // {name, snapshot}
  instanceSnapshotRestore: 'instance.snapshot.restore', // {name, snapshot}
  instanceMigrate: 'instance.migrate', // {name, host}
  instanceConsole: 'instance.console', // {name, bytes} → {instance, host, text}: the console log tail
  // layer updates: plan per appliance, canary rollout, rollback per instance
  updatePlan: 'update.plan', // {appliance} → [{instance, host, from, to, changes}]
  updateApply: 'update.apply', // {appliance}
  updateRollback: 'update.rollback', // {name}
  // network services
  dnsRecords: 'dns.record.list',
  dnsRecordRemove: 'dns.record.remove',
  dhcpLeases: 'dhcp.lease.list',
  dhcpLeaseRelease: 'dhcp.lease.release',
  users: 'user.list',
  userRemove: 'user.remove',
  groups: 'group.list',
  principals: 'principal.list',
} as const;

export type MethodName = (typeof METHODS)[keyof typeof METHODS];
