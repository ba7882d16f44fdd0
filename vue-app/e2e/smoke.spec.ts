// Every node serves the app: the HTML shell with its security policy on any app route,
// its hashed files for a year, and the API's own 404 under /api.
import { test, expect } from '@playwright/test'
import { nodes } from './helpers'

test('every node answers / with the HTML shell and its CSP', async ({ request }) => {
  expect(nodes()).toHaveLength(3)
  for (const base of nodes()) {
    const res = await request.get(`${base}/`)
    expect(res.status()).toBe(200)
    expect(res.headers()['content-type']).toContain('text/html')
    expect(res.headers()['cache-control']).toBe('no-cache')
    const csp = res.headers()['content-security-policy']
    expect(csp).toContain("default-src 'self'")
    expect(csp).toContain("script-src 'self'")
    expect(csp).toContain("frame-ancestors 'none'")
    expect(await res.text()).toContain('<div id="app"')
  }
})

test('a deep link answers the shell, for the app to route', async ({ request }) => {
  const shell = await (await request.get('/')).text()
  const res = await request.get('/orders/xyz')
  expect(res.status()).toBe(200)
  expect(await res.text()).toBe(shell)
})

test("the shell's hashed files are cached for good", async ({ request }) => {
  const shell = await (await request.get('/')).text()
  const asset = shell.match(/(?:src|href)="(\/assets\/[^"]+)"/)?.[1]
  expect(asset, 'the shell loads a file from /assets').toBeTruthy()
  const res = await request.get(asset!)
  expect(res.status()).toBe(200)
  expect(res.headers()['cache-control']).toBe('public, max-age=31536000, immutable')
})

test('an unknown API path is the JSON 404, not the shell', async ({ request }) => {
  const res = await request.get('/api/v1/nope')
  expect(res.status()).toBe(404)
  expect(res.headers()['content-type']).toContain('application/json')
  const body = await res.json()
  expect(body.code).toBe(40401)
  expect(typeof body.message).toBe('string')
})

test('the app loads in the browser without breaking its CSP', async ({ page }) => {
  const violations: string[] = []
  page.on('console', (m) => {
    if (m.text().includes('Content Security Policy')) violations.push(m.text())
  })
  await page.goto('/orders/xyz')
  await expect(page.locator('#app')).toBeAttached()
  expect(violations).toEqual([])
})
