import { api, unwrap } from './client'
import { ApiError } from './errors'
import type { components } from './schema'
import type { Order, OrderEvent, OrderStatus } from './types'

// The shopper's calls: the catalog, placing an order, the own order list (keyset pages),
// one order and its history. Like the rest of src/api, the only code that knows the URLs.

export type Product = components['schemas']['Product']
export type OrderPage = components['schemas']['OrderList']

/** listCatalog returns the products with their prices and, when known, the units available. */
export async function listCatalog(): Promise<Product[]> {
  return (await unwrap(api.GET('/api/v1/catalog'))).products
}

/**
 * createOrder places an order of sku × qty lines. `idempotencyKey` names this submission:
 * a retry of the same submission passes the same key and reaches the same order (or the
 * same refusal), never a second one.
 */
export async function createOrder(items: { sku: string; qty: number }[], idempotencyKey: string): Promise<Order> {
  return unwrap(
    api.POST('/api/v1/orders', { params: { header: { 'Idempotency-Key': idempotencyKey } }, body: { items } }),
  ) as Promise<Order>
}

/** listOrders fetches one page of the caller's orders, newest first; pass next_cursor on for the next. */
export async function listOrders(q: { status?: OrderStatus; cursor?: string; limit?: number }): Promise<OrderPage> {
  const query: { status?: OrderStatus; cursor?: string; limit?: number } = { limit: q.limit ?? 100 }
  if (q.status) query.status = q.status
  if (q.cursor) query.cursor = q.cursor
  return unwrap(api.GET('/api/v1/orders', { params: { query } })) as Promise<OrderPage>
}

export async function getOrder(id: string): Promise<Order> {
  return unwrap(api.GET('/api/v1/orders/{id}', { params: { path: { id } } })) as Promise<Order>
}

/** listOrderEvents returns the order's history, oldest first. */
export async function listOrderEvents(id: string): Promise<OrderEvent[]> {
  const list = await unwrap(api.GET('/api/v1/orders/{id}/events', { params: { path: { id } } }))
  return (list as { events: OrderEvent[] }).events
}

/**
 * outOfStockSku returns the sku an out-of-stock refusal (409, code 40902) names, or null
 * for any other error. The server words it `out of stock: sku <sku> has fewer than <n>
 * available` or `sku "<sku>": <n> wanted, <m> available` (actors/stock, actors/order).
 */
export function outOfStockSku(e: unknown): string | null {
  if (!(e instanceof ApiError) || e.code !== 40902) return null
  const m = /sku\s+"?([^\s":]+)"?/.exec(e.serverMessage)
  return m?.[1] ?? ''
}
