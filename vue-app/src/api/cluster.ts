import { api, unwrap } from './client'
import type { components } from './schema'

// The cluster API (operators): the members as the answering node sees them, and asking a
// member to drain. See README "Operating a cluster".

export type ClusterStatus = components['schemas']['ClusterStatus']
export type MemberStatus = components['schemas']['MemberStatus']
export type MemberState = MemberStatus['state']

/** getCluster reads GET /api/v1/cluster. */
export function getCluster(signal?: AbortSignal): Promise<ClusterStatus> {
  return unwrap(api.GET('/api/v1/cluster', { signal }))
}

/**
 * drainNode asks member `id` to hand its orders to the others, leave and exit (202: it
 * leaves later; the cluster view shows it `leaving`, then no more).
 */
export async function drainNode(id: string): Promise<void> {
  await unwrap(api.POST('/api/v1/cluster/nodes/{id}/drain', { params: { path: { id } } }))
}
