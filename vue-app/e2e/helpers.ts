// What the browser tests share: the cluster's nodes, logging in through the API, and
// screenshots at the two widths the app is designed for.
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { test, expect, type APIRequestContext, type Page } from '@playwright/test'

export { JWT_SECRET } from './cluster'

export const PASSWORD = 'ordermesh' // every demo user's
export type DemoUser = 'alice' | 'bob' | 'olga' | 'ada'

/** The nodes' base URLs (http://127.0.0.1:port), node 0 first: the test's baseURL. */
export function nodes(): string[] {
  const list = process.env.ORDERMESH_NODES
  if (!list) throw new Error('ORDERMESH_NODES is not set: run the tests through playwright.config.ts')
  return list.split(',')
}

/** POST /auth/login's answer (edge/openapi.json, LoginResponse). */
export interface Tokens {
  access_token: string
  token_type: string
  expires_in: number
  refresh_token: string
  refresh_expires_in: number
  role: 'shopper' | 'operator' | 'admin'
  username: string
}

/** Logs user in through the API of node base (default node 0) and returns the tokens. */
export async function apiLogin(request: APIRequestContext, user: DemoUser | string, base = nodes()[0]): Promise<Tokens> {
  const res = await request.post(`${base}/auth/login`, { data: { username: user, password: PASSWORD } })
  expect(res.status(), `login as ${user}`).toBe(200)
  return (await res.json()).data as Tokens
}

export const VIEWPORTS = {
  desktop: { width: 1280, height: 800 },
  phone: { width: 390, height: 844 },
} as const

/**
 * Saves e2e/screenshots/<name>-desktop.png and <name>-phone.png of the page as it is,
 * at 1280x800 and 390x844, and puts the page back at the size it had.
 */
export async function screenshot(page: Page, name: string): Promise<void> {
  const dir = join(test.info().project.testDir, 'screenshots')
  mkdirSync(dir, { recursive: true })
  const before = page.viewportSize()
  for (const [kind, size] of Object.entries(VIEWPORTS)) {
    await page.setViewportSize(size)
    await page.screenshot({ path: join(dir, `${name}-${kind}.png`), fullPage: true, animations: 'disabled' })
  }
  if (before) await page.setViewportSize(before)
}
