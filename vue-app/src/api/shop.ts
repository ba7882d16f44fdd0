import { api, unwrap } from './client'
import { ApiError } from './errors'
import type { components } from './schema'

// The catalog, and what an out-of-stock refusal names. Like the rest of src/api, the only
// code that knows the URLs (orders: orders.ts).

export type Product = components['schemas']['Product']

/** listCatalog returns the products with their prices and, when known, the units available. */
export async function listCatalog(): Promise<Product[]> {
  return (await unwrap(api.GET('/api/v1/catalog'))).products
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
