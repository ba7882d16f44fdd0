import { dirname, join } from 'node:path'
import type { FullConfig } from '@playwright/test'
import { startCluster } from './cluster'

// Starts the 3-node cluster the tests run against; its URLs reach the workers through
// process.env (ORDERMESH_NODES, ORDERMESH_BASE_URL), which Playwright passes on.
export default async function globalSetup(config: FullConfig) {
  const appDir = dirname(config.configFile ?? join(process.cwd(), 'playwright.config.ts'))
  const nodes = await startCluster({ appDir, logDir: join(appDir, 'test-results', 'cluster-logs') })
  console.log(`ordermesh cluster: ${nodes.join(' ')}`)
}
