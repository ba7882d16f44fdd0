// A real ordermesh cluster for the browser tests: three node processes of ../bin/ordermesh
// on the embedded store in a throwaway directory, with the demo users, serving the built
// app (vue-app/dist). Global setup starts it, global teardown stops it; the tests only see
// ORDERMESH_NODES and ORDERMESH_BASE_URL (see helpers.ts).
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, openSync, closeSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

export const NODE_COUNT = 3

// The access-token secret every node gets (--jwt-secret, at least 32 bytes), so that a test
// can sign a token the nodes accept, e.g. an expired one.
export const JWT_SECRET = 'ordermesh-e2e-test-secret-0123456789abcdef'

// Environment shared between global setup, the workers and global teardown.
export const ENV_NODES = 'ORDERMESH_NODES' // comma-separated base URLs, node 0 first
export const ENV_BASE_URL = 'ORDERMESH_BASE_URL' // node 0
const ENV_PIDS = 'ORDERMESH_E2E_PIDS' // process group ids of the nodes we started
const ENV_DIR = 'ORDERMESH_E2E_DIR' // the throwaway store directory

// What the nodes are started with besides addresses and store. The simulated payment
// provider and warehouse never fail and answer quickly, so that a test's order moves
// the same way every run; a test that wants failures sets them (PUT /api/v1/simulation).
// The abuse limits are off: the tests log in many times from one address.
// ORDERMESH_E2E_NODE_ARGS adds flags (space-separated); a later flag wins.
const NODE_FLAGS = [
  '--demo',
  '--demo-stock', '1000000',
  '--fast-failure-detection',
  '--auth-rate', '0',
  '--api-rate', '0',
  '--sim-payment-delay', '500ms',
  '--sim-payment-failure-rate', '0',
  '--warehouse-latency', '200ms',
  '--warehouse-failure-rate', '0',
  '--jwt-secret', JWT_SECRET,
  // A task the warehouse keeps failing is dead-lettered after a second or so instead of
  // a minute (5 attempts from 1 s doubling), so the dead-letter test is quick.
  '--fulfilment-attempts', '3',
  '--fulfilment-backoff', '200ms',
]

export interface ClusterOptions {
  appDir: string // vue-app/
  logDir: string // where node-<i>.log go
}

/** Starts the cluster (or adopts one given in ORDERMESH_NODES) and exports its URLs. */
export async function startCluster(opts: ClusterOptions): Promise<string[]> {
  if (process.env[ENV_NODES]) {
    // A cluster someone already runs (go tool task up): use it, stop nothing later.
    const nodes = process.env[ENV_NODES]!.split(',').map((u) => u.trim().replace(/\/$/, ''))
    await waitForCluster(nodes)
    exportNodes(nodes)
    return nodes
  }
  const repo = resolve(opts.appDir, '..')
  const bin = process.env.ORDERMESH_BIN ?? join(repo, 'bin', 'ordermesh')
  if (!existsSync(bin)) {
    execFileSync('go', ['build', '-o', bin, './cmd/ordermesh'], { cwd: repo, stdio: 'inherit' })
  }
  const dir = mkdtempSync(join(tmpdir(), 'ordermesh-e2e-'))
  process.env[ENV_DIR] = dir
  mkdirSync(opts.logDir, { recursive: true })

  const http = await ports('ORDERMESH_E2E_HTTP_PORT')
  const gossip = await ports('ORDERMESH_E2E_GOSSIP_PORT')
  const remote = await ports('ORDERMESH_E2E_REMOTE_PORT')
  const nodes = http.map((p) => `http://127.0.0.1:${p}`)
  const extra = (process.env.ORDERMESH_E2E_NODE_ARGS ?? '').split(/\s+/).filter(Boolean)
  const started: ChildProcess[] = []
  // Stop what we started even if the runner dies before teardown.
  process.once('exit', () => stopPids(started.map((c) => c.pid!).filter(Boolean)))

  const launch = (i: number) => {
    const args = [
      'node', ...NODE_FLAGS,
      '--store', join(dir, 'ordermesh.db'),
      '--web-dir', join(opts.appDir, 'dist'),
      '--http', `127.0.0.1:${http[i]}`,
      '--gossip', `127.0.0.1:${gossip[i]}`,
      '--remote', `127.0.0.1:${remote[i]}`,
      ...(i > 0 ? ['--join', `127.0.0.1:${gossip[0]}`] : []),
      ...extra,
    ]
    const log = openSync(join(opts.logDir, `node-${i}.log`), 'w')
    // detached: its own process group, which teardown signals as a whole.
    const child = spawn(bin, args, { cwd: repo, detached: true, stdio: ['ignore', log, log] })
    closeSync(log)
    child.unref()
    started.push(child)
    process.env[ENV_PIDS] = started.map((c) => c.pid).join(',')
  }
  // Node 0 founds the cluster; the others join it once it serves.
  launch(0)
  await waitReady(nodes[0]!)
  for (let i = 1; i < NODE_COUNT; i++) launch(i)
  await waitForCluster(nodes)
  exportNodes(nodes)
  return nodes
}

/** Stops the nodes started by startCluster and removes their store. */
export async function stopCluster(): Promise<void> {
  const pids = (process.env[ENV_PIDS] ?? '').split(',').filter(Boolean).map(Number)
  stopPids(pids, 'SIGTERM')
  const deadline = Date.now() + 10_000
  while (pids.some(alive) && Date.now() < deadline) await sleep(100)
  stopPids(pids.filter(alive), 'SIGKILL')
  delete process.env[ENV_PIDS]
  const dir = process.env[ENV_DIR]
  if (dir) rmSync(dir, { recursive: true, force: true })
  delete process.env[ENV_DIR]
}

function exportNodes(nodes: string[]) {
  process.env[ENV_NODES] = nodes.join(',')
  process.env[ENV_BASE_URL] = nodes[0]
}

function stopPids(pids: number[], signal: NodeJS.Signals = 'SIGKILL') {
  for (const pid of pids) {
    try {
      process.kill(-pid, signal) // the node's process group
    } catch {
      // already gone
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(-pid, 0)
    return true
  } catch {
    return false
  }
}

// NODE_COUNT consecutive ports from the named variable, or free ones.
async function ports(variable: string): Promise<number[]> {
  const first = Number(process.env[variable])
  if (first) return Array.from({ length: NODE_COUNT }, (_, i) => first + i)
  return Promise.all(Array.from({ length: NODE_COUNT }, freePort))
}

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer()
    srv.unref()
    srv.on('error', fail)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      srv.close(() => (typeof addr === 'object' && addr ? ok(addr.port) : fail(new Error('no port'))))
    })
  })
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function poll(what: string, within: number, cond: () => Promise<boolean>) {
  const deadline = Date.now() + within
  for (;;) {
    try {
      if (await cond()) return
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${within / 1000}s waiting for ${what}`)
    await sleep(200)
  }
}

async function waitReady(base: string) {
  await poll(`${base}/readyz`, 60_000, async () => (await fetch(`${base}/readyz`)).ok)
}

// Every node ready, and node 0 seeing NODE_COUNT active members.
async function waitForCluster(nodes: string[]) {
  await Promise.all(nodes.map(waitReady))
  const login = await fetch(`${nodes[0]}/auth/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: 'olga', password: 'ordermesh' }),
  })
  if (!login.ok) throw new Error(`logging in as olga: ${login.status} ${await login.text()}`)
  const token = (await login.json()).data.access_token as string
  await poll(`${nodes.length} active members`, 60_000, async () => {
    const res = await fetch(`${nodes[0]}/api/v1/cluster`, { headers: { Authorization: `Bearer ${token}` } })
    const members = (await res.json()).data?.members ?? []
    return members.filter((m: { state: string }) => m.state === 'active').length === nodes.length
  })
}
