import { vi } from 'vitest'
import type { Session } from '@/api'

// A stand-in for the server behind fetch: tests route requests by "METHOD /path" to
// handlers and read back what was sent.

export type Handler = (req: Request) => Response | Promise<Response>

export function envelope(data: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ code: 0, message: 'ok', data }), {
    status,
    headers: { 'Content-Type': 'application/json', ...headers },
  })
}

export function failure(status: number, code: number, message: string, requestId = 'srv-req-id'): Response {
  return new Response(JSON.stringify({ code, message }), {
    status,
    headers: { 'Content-Type': 'application/json', 'X-Request-ID': requestId },
  })
}

export function session(name: string, role: Session['role'], n = 1): Session {
  return {
    access_token: `access-${name}-${n}`,
    token_type: 'Bearer',
    expires_in: 900,
    refresh_token: `refresh-${name}-${n}`,
    refresh_expires_in: 86400,
    role,
    username: name,
  } as Session
}

export const permissionsOf = {
  shopper: ['getMe', 'listCatalog', 'createOrder', 'listOrders', 'getOrder', 'payOrder', 'cancelOrder', 'openLiveUpdates'],
  operator: ['getMe', 'listOrders', 'getOrder', 'shipOrder', 'listInventory', 'listFulfilment', 'getCluster', 'openLiveUpdates'],
  admin: ['getMe', 'listOrders', 'getOrder', 'shipOrder', 'listInventory', 'getCluster', 'listUsers', 'openLiveUpdates'],
}

/** fakeServer stubs global fetch; `requests` records every request (cloned, bodies readable). */
export function fakeServer(routes: Record<string, Handler>) {
  const requests: Request[] = []
  const fetch = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = input instanceof Request ? input : new Request(input, init)
    requests.push(req.clone())
    const key = `${req.method} ${new URL(req.url).pathname}`
    const h = routes[key]
    if (!h) return failure(404, 40401, `no route ${key}`)
    return h(req)
  })
  vi.stubGlobal('fetch', fetch)
  const sent = (key: string) => requests.filter((r) => `${r.method} ${new URL(r.url).pathname}` === key)
  return { fetch, requests, sent }
}
