import { defineConfig } from '@playwright/test'

// The browser tests run against a real 3-node cluster that e2e/global-setup.ts starts
// (e2e/cluster.ts); ORDERMESH_NODES set beforehand makes them use a running one instead.
// Global setup exports the nodes' URLs before the workers load this file again, so that
// baseURL is node 0 in the tests.
const CI = !!process.env.CI

export default defineConfig({
  testDir: './e2e',
  outputDir: './test-results/output', // beside test-results/cluster-logs, which setup writes
  globalSetup: './e2e/global-setup.ts',
  globalTeardown: './e2e/global-teardown.ts',
  timeout: 60_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1, // a 2-core machine runs three nodes and Chromium besides
  retries: CI ? 1 : 0,
  forbidOnly: CI,
  reporter: [['list'], ['html', { open: 'never' }]],
  use: {
    baseURL: process.env.ORDERMESH_BASE_URL,
    trace: 'on-first-retry',
    viewport: { width: 1280, height: 800 },
    launchOptions: {
      // The system's Chromium; npm installs no browser (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD).
      executablePath: '/usr/bin/chromium',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-dev-shm-usage',
      ],
    },
  },
  projects: [
    { name: 'chromium', grepInvert: /@cluster-change/ },
    // Drains and other changes of the membership, after everything else has run.
    { name: 'cluster-change', grep: /@cluster-change/, dependencies: ['chromium'] },
  ],
})
