/**
 * The new-instance wizard's deployment step, as pure functions: which of the
 * site's deployments serve the chosen appliance, what the admin's line picks,
 * and how the choice reads on the prompts and the confirm screen.
 */
import type { DeploymentRecord } from '../../manager/deployments/model.ts';

/** The deployment step's outcome: the appliance's own published deployment (today's default), or one of the site's. */
export type DeploymentPick = { kind: 'published' } | { kind: 'site'; deployment: DeploymentRecord };

/** The catalog id in an appliance reference: `ID`, `ID@VERSION` or `CHANNEL/ID@VERSION` → `ID`. */
export const applianceId = (ref: string) => ref.trim().replace(/@.*$/, '').replace(/^.*\//, '');

/** The site's deployments of an appliance (by catalog id, as `deployment.list` records it), by name; junk rows are skipped. */
export function siteDeployments(list: unknown, id: string): DeploymentRecord[] {
  return (Array.isArray(list) ? list : [])
    .filter((d): d is DeploymentRecord => !!d && typeof d === 'object' && typeof (d as DeploymentRecord).name === 'string' && (d as DeploymentRecord).appliance === id)
    .sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Read the deployment step's line: empty (or the published deployment
 * layer's name, when no site deployment has that name) keeps the appliance's
 * own; a site deployment's name picks it; anything else is said in one
 * sentence, naming what there is.
 */
export function pickDeployment(line: string, site: readonly DeploymentRecord[], published?: string): DeploymentPick | string {
  const want = line.trim();
  if (want === '') return { kind: 'published' };
  const d = site.find((x) => x.name === want);
  if (d) return { kind: 'site', deployment: d };
  if (published !== undefined && want === published) return { kind: 'published' };
  const there = [...site.map((x) => x.name), ...(published ? [`${published} (its own)`] : [])];
  return `no deployment "${want}" of this appliance${there.length ? ` (there is: ${there.join(', ')})` : ''}; empty keeps its own`;
}

/** The deployment step's prompt: what empty means and what tab completes. */
export function deploymentPrompt(appliance: string, site: readonly DeploymentRecord[], published?: string): string {
  const own = published ? `its own, ${published}` : 'as published';
  const names = site.map((d) => d.name);
  const choices = names.length ? `tab completes: ${names.slice(0, 4).join(', ')}${names.length > 4 ? ', …' : ''}` : 'the site has none';
  return `new instance › ${appliance} › deployment (empty: ${own}; ${choices}): `;
}

/**
 * What is being created, for the prompts and the confirm screen: the
 * appliance with its published deployment layer (`wiki (deployment
 * wiki-example-corp 1.0)`), or the site deployment and the version new
 * instances get (`wiki@1.0 (site deployment corp version 3)`).
 */
export function pickLabel(pick: DeploymentPick, appliance: string, published?: string): string {
  if (pick.kind === 'site') {
    const d = pick.deployment;
    return `${d.appliance}@${d.applianceVersion} (site deployment ${d.name} version ${d.version})`;
  }
  return `${appliance}${published ? ` (deployment ${published})` : ''}`;
}
