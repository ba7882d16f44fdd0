import { stopCluster } from './cluster'

// Stops the nodes global setup started (not an adopted ORDERMESH_NODES cluster) and
// removes their store; their logs stay in test-results/cluster-logs.
export default async function globalTeardown() {
  await stopCluster()
}
