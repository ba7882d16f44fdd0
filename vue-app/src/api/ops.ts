import { api, unwrap } from './client'
import type { components } from './schema'
import type { Role } from './types'

// The operators' and admins' calls besides orders (orders.ts) and the cluster (cluster.ts):
// stock, the fulfilment queue, and users. Like the rest of src/api, the only code that
// knows the URLs.

type S = components['schemas']
export type StockLevel = S['InventoryView']
export type FulfilmentTask = S['FulfilmentTask']
export type FulfilmentState = FulfilmentTask['state']
export type FulfilmentPage = S['FulfilmentTaskList']
export type User = S['User']

/** listInventory returns the stock of every sku. */
export async function listInventory(): Promise<StockLevel[]> {
  return (await unwrap(api.GET('/api/v1/inventory'))).items
}

/**
 * adjustStock adds delta (negative: removes) units to sku's stock, with an optional reason,
 * and returns the stock after it. Each call is one adjustment (its own idempotency key).
 */
export async function adjustStock(sku: string, delta: number, reason?: string): Promise<StockLevel> {
  return unwrap(
    api.POST('/api/v1/inventory/{sku}/adjust', {
      params: { path: { sku }, header: { 'Idempotency-Key': crypto.randomUUID() } },
      body: { delta, ...(reason ? { reason } : {}) },
    }),
  ) as Promise<StockLevel>
}

/** listFulfilment fetches one page of fulfilment tasks, optionally of one state or order. */
export async function listFulfilment(q: { state?: FulfilmentState; order_id?: string; cursor?: string; limit?: number }): Promise<FulfilmentPage> {
  return unwrap(api.GET('/api/v1/fulfilment', { params: { query: q } })) as Promise<FulfilmentPage>
}

/** retryFulfilment puts a dead (or pending) task back to run now. */
export async function retryFulfilment(id: string): Promise<FulfilmentTask> {
  return unwrap(api.POST('/api/v1/fulfilment/{id}/retry', { params: { path: { id } } })) as Promise<FulfilmentTask>
}

/** cancelFulfilment ends a task without shipping, with an optional note. */
export async function cancelFulfilment(id: string, reason?: string): Promise<FulfilmentTask> {
  const body = reason ? { reason } : {}
  return unwrap(api.POST('/api/v1/fulfilment/{id}/cancel', { params: { path: { id } }, body })) as Promise<FulfilmentTask>
}

/** listUsers returns every account. */
export async function listUsers(): Promise<User[]> {
  return (await unwrap(api.GET('/api/v1/users'))).users
}

/** createUser makes an account with a role. */
export async function createUser(u: { username: string; password: string; role: Role }): Promise<User> {
  return unwrap(api.POST('/api/v1/users', { body: u })) as Promise<User>
}

/** updateUser changes an account's role or disables/enables it, and returns it after. */
export async function updateUser(username: string, change: { role?: Role; disabled?: boolean }): Promise<User> {
  return unwrap(api.PATCH('/api/v1/users/{username}', { params: { path: { username } }, body: change })) as Promise<User>
}
