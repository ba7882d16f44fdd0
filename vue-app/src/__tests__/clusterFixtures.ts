import type { ClusterStatus, MemberStatus } from '@/api/cluster'

// Members and cluster answers for the cluster page's tests. Member "N" has the addresses
// 127.0.0.1:79N (gossip), :99N (remote) and :80N (HTTP, how the page names it).

export function member(id: string, extra: Partial<MemberStatus> = {}): MemberStatus {
  return {
    id,
    gossip: `127.0.0.1:79${id}`,
    remote: `127.0.0.1:99${id}`,
    http: `127.0.0.1:80${id}`,
    state: 'active',
    activations: 4,
    uptime_seconds: 75,
    started: '2026-01-01T00:00:00Z',
    payment_breaker: 'closed',
    requests_per_second: 1,
    latency_p50_ms: 1,
    latency_p99_ms: 9,
    ...extra,
  }
}

/** clusterStatus is GET /api/v1/cluster's data as the first member (or `self`) answers it. */
export function clusterStatus(members: MemberStatus[], self = members[0]?.id ?? ''): ClusterStatus {
  return { self, topology_version: 1, topology_hash: '0123456789abcdef', members }
}
