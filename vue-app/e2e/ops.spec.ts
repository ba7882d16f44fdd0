// The operator and admin pages against the real cluster: the order list (live rows, find
// by id, deliver and refund), inventory adjustments, the fulfilment dead letters (a
// warehouse that always fails, then a retry), the users page, and who may open what.
// Each page is also checked with axe and photographed at desktop and phone width.
import { test, expect, type APIRequestContext, type Page } from '@playwright/test'
import AxeBuilder from '@axe-core/playwright'
import { apiLogin, nodes, screenshot, PASSWORD, type DemoUser } from './helpers'

const json = (token: string, key?: string) => ({
  Authorization: `Bearer ${token}`,
  ...(key ? { 'Idempotency-Key': key } : {}),
})
const key = () => `e2e-${crypto.randomUUID()}`

/** Logs in through the login form, arriving at `path` (the guard's ?redirect=). */
async function uiLogin(page: Page, user: DemoUser, path: string) {
  await page.goto(path)
  await expect(page).toHaveURL(/\/login/)
  await page.getByLabel('Username').fill(user)
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD)
  await page.getByRole('button', { name: 'Log in' }).click()
  // The pathname: the login page's own URL ends with ?redirect=<path>.
  await expect(page).toHaveURL((url) => url.pathname === path)
}

/** No accessibility violation of impact serious or critical on the page as it is. */
async function expectAccessible(page: Page) {
  // As the page rests: no pointer over a button, no focus ring (their hover tints are lighter).
  await page.mouse.move(0, 0)
  await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur())
  const { violations } = await new AxeBuilder({ page }).analyze()
  const bad = violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`)
  expect(bad).toEqual([])
}

async function firstSku(request: APIRequestContext, last = false): Promise<string> {
  const res = await request.get('/api/v1/catalog')
  const products = (await res.json()).data.products as { sku: string }[]
  return products[last ? products.length - 1 : 0]!.sku
}

/** alice creates an order of one unit of sku (and pays it when pay is set); returns its id. */
async function placeOrder(request: APIRequestContext, sku: string, pay: boolean): Promise<string> {
  const { access_token: token } = await apiLogin(request, 'alice')
  const created = await request.post('/api/v1/orders', {
    headers: json(token, key()),
    data: { items: [{ sku, qty: 1 }] },
  })
  expect(created.status(), await created.text()).toBe(201)
  const id = (await created.json()).data.id as string
  if (pay) await payOrder(request, token, id)
  return id
}

async function payOrder(request: APIRequestContext, token: string, id: string) {
  const paid = await request.post(`/api/v1/orders/${id}/pay`, { headers: json(token, key()), data: {} })
  expect(paid.status(), await paid.text()).toBe(200)
}

async function orderStatus(request: APIRequestContext, token: string, id: string): Promise<string> {
  const res = await request.get(`/api/v1/orders/${id}`, { headers: json(token) })
  return (await res.json()).data.status
}

const orderRow = (page: Page, id: string) => page.getByRole('row').filter({ hasText: id })

test.describe('operator orders', () => {
  test('a shopper’s new order appears and follows its status live; find by id opens it', async ({ page, request }) => {
    await uiLogin(page, 'olga', '/ops/orders')
    await expect(page.getByRole('heading', { level: 1, name: 'Orders' })).toBeVisible()
    // The socket is subscribed to every order before the order exists.
    await expect(page.getByRole('status').filter({ hasText: /^Live$/ })).toBeVisible()

    const { access_token: alice } = await apiLogin(request, 'alice')
    const sku = await firstSku(request)
    const created = await request.post('/api/v1/orders', { headers: json(alice, key()), data: { items: [{ sku, qty: 1 }] } })
    expect(created.status()).toBe(201)
    const id = (await created.json()).data.id as string

    const row = orderRow(page, id)
    await expect(row.locator('[data-status]')).toHaveAttribute('data-status', 'CREATED')
    await expect(row).toContainText('alice')
    await payOrder(request, alice, id)
    // Paid by the simulated provider, then shipped by the fulfilment pool: no reload.
    await expect(row.locator('[data-status]')).toHaveAttribute('data-status', 'SHIPPED', { timeout: 20_000 })
    await expect(row.getByRole('button', { name: 'Mark delivered' })).toBeVisible()

    await page.getByRole('textbox', { name: 'Order id' }).fill(id)
    await page.getByRole('button', { name: 'Find' }).click()
    const drawer = page.getByRole('dialog', { name: `Order ${id}` })
    await expect(drawer).toBeVisible()
    await expect(drawer.locator('[data-status]')).toHaveAttribute('data-status', 'SHIPPED')
    await expect(drawer.getByText('Shipped', { exact: true }).first()).toBeVisible()
    await drawer.getByRole('button', { name: /close/i }).click()
    await expect(drawer).toBeHidden()

    await page.getByRole('textbox', { name: 'Order id' }).fill('no-such-order')
    await page.getByRole('button', { name: 'Find' }).click()
    await expect(page.getByRole('alert')).toContainText('There is no order with id “no-such-order”.')

    await expectAccessible(page)
  })

  test('the operator delivers and refunds an order with a reason; the shopper sees it live', async ({ page, request, browser }) => {
    const id = await placeOrder(request, await firstSku(request), true)
    const { access_token: olga } = await apiLogin(request, 'olga')
    await expect.poll(() => orderStatus(request, olga, id), { timeout: 20_000 }).toBe('SHIPPED')

    // alice has her order open, on another node than the operator's.
    const aliceContext = await browser.newContext({ baseURL: nodes()[1] })
    const alice = await aliceContext.newPage()
    await uiLogin(alice, 'alice', `/orders/${id}`)
    const aliceStatus = alice.getByTestId('order-status').locator('[data-status]')
    await expect(aliceStatus).toHaveAttribute('data-status', 'SHIPPED')
    await alice.evaluate(() => ((window as unknown as { __noReload: boolean }).__noReload = true))

    await uiLogin(page, 'olga', '/ops/orders')
    const row = orderRow(page, id)
    await expect(row.locator('[data-status]')).toHaveAttribute('data-status', 'SHIPPED')
    await row.getByRole('button', { name: 'Mark delivered' }).click()
    await expect(row.locator('[data-status]')).toHaveAttribute('data-status', 'DELIVERED')

    await row.getByRole('button', { name: 'Refund' }).click()
    const dialog = page.getByRole('dialog', { name: 'Refund the order' })
    // The reason is required: confirming without one is refused in the dialog.
    await dialog.getByRole('button', { name: 'Refund' }).click()
    await expect(dialog.getByText('A refund needs a reason.')).toBeVisible()
    await dialog.getByRole('textbox').fill('e2e: parcel arrived damaged')
    await dialog.getByRole('button', { name: 'Refund' }).click()
    await expect(row.locator('[data-status]')).toHaveAttribute('data-status', 'REFUNDED')

    // alice's open page follows both changes without a reload; the reason is the staff's
    // note, which a shopper's history leaves out (edge/listing.go).
    await expect(aliceStatus).toHaveAttribute('data-status', 'REFUNDED')
    const history = alice.getByRole('list', { name: 'History' })
    await expect(history.getByText('Delivered', { exact: true })).toBeVisible()
    await expect(history.getByText('Refunded', { exact: true })).toBeVisible()
    await expect(alice.getByText('e2e: parcel arrived damaged')).toHaveCount(0)
    expect(await alice.evaluate(() => (window as unknown as { __noReload?: boolean }).__noReload)).toBe(true)
    await aliceContext.close()

    const res = await request.get(`/api/v1/orders/${id}/events`, { headers: json(olga) })
    const events = (await res.json()).data.events as { type: string; reason?: string; by: string }[]
    const refund = events.find((e) => e.type === 'OrderRefunded')
    expect(refund?.reason).toBe('e2e: parcel arrived damaged')
    expect(refund?.by).toBe('olga')

    // One more order, left unpaid, for the picture: the list with orders in three states.
    const unpaid = await placeOrder(request, await firstSku(request), false)
    await expect(orderRow(page, unpaid).locator('[data-status]')).toHaveAttribute('data-status', 'CREATED')
    await expect(page.getByText('Refund: done.')).toBeHidden() // the toast, out of the picture
    await screenshot(page, 'ops-orders')
  })
})

test('inventory: an adjustment changes the stock shown', async ({ page, request }) => {
  const sku = await firstSku(request, true)
  const { access_token: olga } = await apiLogin(request, 'olga')
  const before = (await (await request.get(`/api/v1/inventory/${sku}`, { headers: json(olga) })).json()).data as {
    on_hand: number
  }

  await uiLogin(page, 'olga', '/ops/inventory')
  await expect(page.getByRole('heading', { level: 1, name: 'Inventory' })).toBeVisible()
  const row = page.getByRole('row').filter({ hasText: sku })
  await expect(row.getByRole('cell').nth(2)).toHaveText(String(before.on_hand))
  await expectAccessible(page)
  await screenshot(page, 'ops-inventory')

  await row.getByRole('button', { name: `Adjust ${sku}` }).click()
  const dialog = page.getByRole('dialog', { name: `Adjust the stock of ${sku}` })
  await expect(dialog).toBeVisible()
  // 0 is not a change: the form says so and sends nothing.
  await dialog.getByRole('button', { name: 'Adjust' }).click()
  await expect(dialog.getByText('Enter a whole number other than 0.')).toBeVisible()
  await dialog.getByLabel('Change of units on hand').fill('7')
  await dialog.getByLabel('Reason').fill('e2e: delivery from supplier')
  await dialog.getByRole('button', { name: 'Adjust' }).click()
  await expect(dialog).toBeHidden()
  // Columns: sku, product, on hand, reserved, available, ...
  await expect(row.getByRole('cell').nth(2)).toHaveText(String(before.on_hand + 7))

  const after = (await (await request.get(`/api/v1/inventory/${sku}`, { headers: json(olga) })).json()).data
  expect(after.on_hand).toBe(before.on_hand + 7)
})

test.describe('fulfilment dead letters', () => {
  // The simulation is per node: every node's warehouse is set, and put back afterwards.
  const saved = new Map<string, unknown>()
  let admin = ''

  async function setWarehouse(request: APIRequestContext, failureRate: number) {
    for (const base of nodes()) {
      const res = await request.put(`${base}/api/v1/simulation`, {
        headers: json(admin),
        data: { warehouse: { latency_ms: 50, failure_rate: failureRate } },
      })
      expect(res.status(), await res.text()).toBe(200)
    }
  }

  test.afterAll(async ({ request }) => {
    for (const [base, sim] of saved) {
      await request.put(`${base}/api/v1/simulation`, { headers: json(admin), data: sim })
    }
  })

  test('a task the warehouse keeps failing is dead-lettered, then retried to done', async ({ page, request }) => {
    admin = (await apiLogin(request, 'ada')).access_token
    for (const base of nodes()) {
      const res = await request.get(`${base}/api/v1/simulation`, { headers: json(admin) })
      saved.set(base, (await res.json()).data)
    }
    await setWarehouse(request, 1)
    const id = await placeOrder(request, await firstSku(request), true)
    const taskOf = async () => {
      const res = await request.get(`/api/v1/fulfilment?order_id=${id}`, { headers: json(admin) })
      return (await res.json()).data.tasks[0] as { id: string; state: string; attempts: number } | undefined
    }
    await expect.poll(async () => (await taskOf())?.state, { timeout: 30_000 }).toBe('dead')

    await uiLogin(page, 'olga', '/ops/fulfilment')
    await expect(page.getByRole('heading', { level: 1, name: 'Fulfilment' })).toBeVisible()
    await expect(page.getByRole('radio', { name: 'Dead letters' })).toBeChecked()
    const row = page.getByRole('row').filter({ hasText: id })
    await expect(row.locator('[data-state]')).toHaveAttribute('data-state', 'dead')
    await expect(row).toContainText('3') // attempts
    await expectAccessible(page)
    await screenshot(page, 'ops-fulfilment')

    await setWarehouse(request, 0)
    const task = (await taskOf())!
    await row.getByRole('button', { name: `Retry ${task.id}` }).click()
    await page.getByRole('dialog', { name: 'Retry the task' }).getByRole('button', { name: 'Retry' }).click()
    // The page follows the retried task until it ends.
    await expect(row.locator('[data-state]')).toHaveAttribute('data-state', 'done', { timeout: 20_000 })
    await expect(row.getByRole('button', { name: `Retry ${task.id}` })).toHaveCount(0)

    await page.goto('/ops/orders')
    await page.getByRole('textbox', { name: 'Order id' }).fill(id)
    await page.getByRole('button', { name: 'Find' }).click()
    const drawer = page.getByRole('dialog', { name: `Order ${id}` })
    await expect(drawer.locator('[data-status]')).toHaveAttribute('data-status', 'SHIPPED')
  })
})

test.describe('users', () => {
  test('an admin creates a user and changes its role', async ({ page, request }) => {
    const name = `e2e-${Date.now().toString(36)}`
    await uiLogin(page, 'ada', '/admin/users')
    await expect(page.getByRole('heading', { level: 1, name: 'Users' })).toBeVisible()
    await expect(page.getByRole('row').filter({ hasText: 'olga' })).toBeVisible()
    await expectAccessible(page)
    await screenshot(page, 'admin-users')

    await page.getByRole('button', { name: 'Create user' }).click()
    const dialog = page.getByRole('dialog', { name: 'Create a user' })
    await dialog.getByLabel('Username').fill('X!')
    await dialog.getByLabel('Password', { exact: true }).fill('short')
    await dialog.getByRole('button', { name: 'Create' }).click()
    await expect(dialog.getByText('A username has 3 to 32 characters')).toBeVisible()
    await expect(dialog.getByText('A password has 10 to 72 characters.')).toBeVisible()
    await dialog.getByLabel('Username').fill(name)
    await dialog.getByLabel('Password', { exact: true }).fill('e2e-password-1')
    await dialog.getByLabel('Role').selectOption('shopper')
    await dialog.getByRole('button', { name: 'Create' }).click()
    await expect(dialog).toBeHidden()

    const row = page.getByRole('row').filter({ hasText: name })
    const role = row.getByRole('combobox', { name: `Role of ${name}` })
    await expect(role).toHaveValue('shopper')
    await role.selectOption('operator')
    await expect(page.getByText(`${name} is now operator`)).toBeVisible()

    // Creating the same name again is refused by the server, translated.
    await page.getByRole('button', { name: 'Create user' }).click()
    await dialog.getByLabel('Username').fill(name)
    await dialog.getByLabel('Password', { exact: true }).fill('e2e-password-1')
    await dialog.getByRole('button', { name: 'Create' }).click()
    await expect(dialog.getByRole('alert')).toHaveText('It exists already.')

    const { access_token: ada } = await apiLogin(request, 'ada')
    const users = (await (await request.get('/api/v1/users', { headers: json(ada) })).json()).data.users as {
      username: string
      role: string
    }[]
    expect(users.find((u) => u.username === name)?.role).toBe('operator')
    // The new account logs in with its new role.
    const login = await request.post('/auth/login', { data: { username: name, password: 'e2e-password-1' } })
    expect((await login.json()).data.role).toBe('operator')
  })

  test('an operator opening the users page lands on "Not allowed"', async ({ page }) => {
    await uiLogin(page, 'olga', '/ops/orders')
    await page.goto('/admin/users')
    await expect(page.getByRole('heading', { level: 1, name: 'Not allowed' })).toBeVisible()
    await expect(page).toHaveURL(/\/forbidden/)
  })
})
