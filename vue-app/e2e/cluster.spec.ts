// The cluster page against the real 3-node cluster of global setup: what an operator sees
// (nodes, charts, the live feed), and draining a node from the page while a shopper keeps
// ordering (@cluster-change: runs last, in its own project, since it removes a node).
import { test, expect, type APIRequestContext, type Page } from '@playwright/test'
import AxeBuilder from '@axe-core/playwright'
import { apiLogin, nodes, PASSWORD, screenshot, type DemoUser } from './helpers'

const hostOf = (base: string) => new URL(base).host // 127.0.0.1:port, as the page shows a node

/** Logs in through the login form and waits for the page it redirects to. */
async function loginUI(page: Page, user: DemoUser, to: string) {
  await page.goto(`/login?redirect=${encodeURIComponent(to)}`)
  await page.getByLabel('Username').fill(user)
  await page.getByLabel('Password').fill(PASSWORD)
  await page.getByRole('button', { name: 'Log in' }).click()
  await expect(page).toHaveURL(new RegExp(`${to.replace(/\//g, '\\/')}$`))
}

/** The table row of the node whose base URL is base. */
const nodeRow = (page: Page, base: string) => page.getByRole('row').filter({ hasText: hostOf(base) })

let sku = ''
async function aSku(request: APIRequestContext, token: string): Promise<string> {
  if (sku) return sku
  const res = await request.get(`${nodes()[0]}/api/v1/catalog`, { headers: { Authorization: `Bearer ${token}` } })
  expect(res.status()).toBe(200)
  sku = (await res.json()).data.products[0].sku
  return sku
}

let keys = 0
const newKey = (what: string) => `e2e-cluster-${what}-${Date.now()}-${++keys}`

/** Creates an order as the token's user through node base and returns its id. */
async function createOrder(request: APIRequestContext, token: string, base = nodes()[0]): Promise<string> {
  const res = await request.post(`${base}/api/v1/orders`, {
    headers: { Authorization: `Bearer ${token}`, 'Idempotency-Key': newKey('order') },
    data: { items: [{ sku: await aSku(request, token), qty: 1 }] },
  })
  expect(res.status(), await res.text()).toBe(201)
  return (await res.json()).data.id as string
}

test('an operator sees the three nodes, live charts and the feed of changes', async ({ page, request }) => {
  await loginUI(page, 'olga', '/ops/cluster')
  await expect(page.getByRole('heading', { level: 1, name: 'Cluster' })).toBeVisible()

  for (const base of nodes()) {
    const row = nodeRow(page, base)
    await expect(row).toHaveCount(1)
    await expect(row.locator('[data-state="active"]')).toHaveText('active')
    await expect(row.getByRole('button', { name: `Drain node ${hostOf(base)}` })).toBeVisible()
  }
  await expect(nodeRow(page, nodes()[0]!).getByText('this node')).toBeVisible()
  await expect(page.locator('[data-stat="active"] dd')).toHaveText('3')

  for (const name of [/Requests per second by node/, /Latency p99 by node/, /Latency p50 by node/]) {
    await expect(page.getByRole('img', { name }).locator('canvas').first()).toBeVisible()
  }

  // The feed follows all orders once the socket is live; orders made on another node show.
  await expect(page.getByText('live', { exact: true })).toBeVisible()
  const alice = await apiLogin(request, 'alice')
  const ids: string[] = []
  for (let i = 0; i < 3; i++) ids.push(await createOrder(request, alice.access_token, nodes()[i % 3]))
  const feed = page.getByRole('list', { name: 'Live changes' })
  for (const id of ids) {
    const link = feed.getByRole('link', { name: id }).first()
    await expect(link).toBeVisible()
    await expect(link).toHaveAttribute('href', `/orders/${id}`)
  }
  await expect(feed.getByRole('listitem').filter({ hasText: ids[0]! }).filter({ hasText: 'Order placed' })).toHaveCount(1)

  // Some requests have been served by now; the rate chart has had a few polls.
  await expect(page.locator('[data-stat="rps"] dd')).not.toHaveText('0')

  // The shared header (AppLayout's brand link, AppMenu's active entry) has primary-blue
  // text under 4.5:1, reported to its owners; this checks the cluster page's own content.
  const axe = await new AxeBuilder({ page }).exclude('.el-header').analyze()
  const bad = axe.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
  expect(bad.flatMap((v) => v.nodes.map((n) => `${v.id}: ${n.html}`))).toEqual([])

  await screenshot(page, 'ops-cluster')
})

test('a shopper (role) typing the cluster URL is not allowed', async ({ page }) => {
  await loginUI(page, 'alice', '/')
  await page.goto('/ops/cluster')
  await expect(page.getByRole('heading', { name: 'Not allowed' })).toBeVisible()
})

interface OrderingLog {
  /** Every API answer the shopper's page got: "METHOD path -> status". */
  requests: { what: string; status: number }[]
  /** What went wrong as the shopper saw it: failed answers, error messages, page errors. */
  failures: string[]
  /** The orders placed and paid. */
  orders: string[]
}

/**
 * keepOrdering has the shopper order and pay through the shop's pages, one order after
 * another, until stopped() says so: catalog, add to cart, cart, place order, pay on the
 * order's page. Everything the page asked of the API is logged as it goes (the test reads
 * the log meanwhile), and so is anything the shopper would see go wrong: an answer of 400
 * or more, an error message, an error page, a script error.
 */
function keepOrdering(shopper: Page, stopped: () => boolean): { log: OrderingLog; done: Promise<void> } {
  const log: OrderingLog = { requests: [], failures: [], orders: [] }
  shopper.on('response', (res) => {
    const url = new URL(res.url())
    if (!url.pathname.startsWith('/api/') && !url.pathname.startsWith('/auth/')) return
    const what = `${res.request().method()} ${url.pathname} -> ${res.status()}`
    log.requests.push({ what, status: res.status() })
    if (res.status() >= 400) log.failures.push(what)
  })
  shopper.on('pageerror', (e) => log.failures.push(`page error: ${e.message}`))
  const tea = 'Sencha green tea, 100 g'
  const run = async () => {
    while (!stopped()) {
      await shopper.getByRole('menuitem', { name: 'Catalog' }).click()
      await shopper.getByRole('listitem', { name: tea, exact: true }).getByRole('button', { name: 'Add to cart' }).click()
      await shopper.getByRole('menuitem', { name: 'Cart' }).click()
      await shopper.getByRole('button', { name: 'Place order' }).click()
      await expect(shopper).toHaveURL(/\/orders\/[A-Za-z0-9_-]+$/)
      const status = shopper.getByTestId('order-status').locator('[data-status]')
      await expect(status).toHaveAttribute('data-status', 'CREATED')
      await shopper.getByRole('button', { name: 'Pay' }).click()
      await expect(status).toHaveAttribute('data-status', /PAYING|PAID|SHIPPED|DELIVERED/)
      log.orders.push(new URL(shopper.url()).pathname.split('/').pop()!)
      // Error messages and alerts (a success message is role=alert too: not those).
      const shown = shopper.locator('.el-message--error, .el-alert--error')
      if (await shown.count()) log.failures.push(`shown: ${await shown.allInnerTexts()}`)
      if (await shopper.getByRole('heading', { name: 'Something went wrong' }).count()) log.failures.push('the error page')
    }
  }
  // A step that fails stops the loop; the test sees why among the failures.
  return { log, done: run().catch((e: Error) => void log.failures.push(`stopped: ${e.message.split('\n')[0]}`)) }
}

test('an operator drains a node from the page while a shopper keeps ordering @cluster-change', async ({ page, browser, request }) => {
  test.setTimeout(120_000)
  const [node0, , target] = nodes() as [string, string, string]
  const olga = await apiLogin(request, 'olga')
  const asOlga = { Authorization: `Bearer ${olga.access_token}` }
  const cluster = (await (await request.get(`${node0}/api/v1/cluster`, { headers: asOlga })).json()).data
  const targetId = cluster.members.find((m: { http: string }) => m.http === hostOf(target)).id as string

  // Orders owned by the node to drain (the node that wrote their last event), made before.
  const alice = await apiLogin(request, 'alice')
  const owned: string[] = []
  await test.step('orders owned by the node to drain', async () => {
    for (let i = 0; i < 60 && owned.length < 3; i++) {
      const id = await createOrder(request, alice.access_token)
      const res = await request.get(`${node0}/api/v1/orders/${id}/events`, { headers: asOlga })
      const events = (await res.json()).data.events as { node?: string }[]
      if (events.at(-1)?.node === targetId) owned.push(id)
    }
    expect(owned.length).toBeGreaterThan(0)
  })

  // The shopper, in a browser context of her own on node 0, on the catalog.
  const shopperContext = await browser.newContext({ baseURL: node0 })
  const shopper = await shopperContext.newPage()
  await loginUI(shopper, 'alice', '/')
  await expect(shopper.getByRole('heading', { name: 'Catalog' })).toBeVisible()

  await loginUI(page, 'olga', '/ops/cluster')
  await expect(nodeRow(page, target).locator('[data-state="active"]')).toBeVisible()

  let stop = false
  const ordering = keepOrdering(shopper, () => stop)
  let atDrain = 0
  try {
    await test.step('drain with confirmation', async () => {
      await nodeRow(page, target).getByRole('button', { name: `Drain node ${hostOf(target)}` }).click()
      const dialog = page.getByRole('dialog', { name: `Drain node ${hostOf(target)}?` })
      await expect(dialog).toContainText('hands its orders over to the other nodes')
      await dialog.getByRole('button', { name: 'Drain' }).click()
      await expect(page.getByText(`Node ${hostOf(target)} is draining.`)).toBeVisible()
      atDrain = ordering.log.requests.length
    })
    await test.step('the node is shown gone', async () => {
      // Leaving while it hands over (often too brief for a 2 s poll), then gone.
      await expect(nodeRow(page, target).locator('[data-state="left"]')).toBeVisible({ timeout: 30_000 })
      await expect(page.locator('[data-stat="members"] dd')).toHaveText('2')
      await expect(nodeRow(page, target).getByRole('button', { name: /Drain/ })).toHaveCount(0)
    })
  } finally {
    stop = true
  }
  await test.step('the shopper stops', () => ordering.done)
  await shopperContext.close()
  const log = ordering.log
  test.info().annotations.push({
    type: 'shopper',
    description: `${log.orders.length} orders placed and paid in ${log.requests.length} requests, ${log.requests.length - atDrain} after the drain was accepted`,
  })

  // The shopper kept ordering while the node left, and saw no failure.
  expect(log.requests.length - atDrain, 'shopper requests after the drain was accepted').toBeGreaterThan(0)
  expect(log.orders.length, 'orders placed and paid').toBeGreaterThan(0)
  expect(log.failures, 'what went wrong for the shopper').toEqual([])

  // The drained process has exited, and its orders answer from the other nodes.
  await expect
    .poll(async () => (await request.get(`${target}/healthz`, { timeout: 2000 }).catch(() => null))?.status() ?? 'gone', { timeout: 30_000 })
    .toBe('gone')
  for (const id of owned) {
    const res = await request.get(`${node0}/api/v1/orders/${id}`, { headers: { Authorization: `Bearer ${alice.access_token}` } })
    expect(res.status(), `GET order ${id} owned by the drained node`).toBe(200)
  }
})
