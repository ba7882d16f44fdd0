import { api, unwrap } from './client'
import type { components } from './schema'
import type { Order, OrderAction, OrderEvent, OrderStatus, Permission } from './types'

export type OrderPage = components['schemas']['OrderList']

// Orders: placing one, reading them, and the commands, POST /api/v1/orders/{id}/{action}. Which actions an order allows is
// the server's answer (Order.actions, from the state machine); which of them the user may
// send is their permission (the action's operationId, listed by /me). The app shows the
// intersection and never a copy of the rules.

/** The permission (API operationId) that sends each action. */
export const actionPermission: Record<OrderAction, Permission> = {
  pay: 'payOrder',
  'confirm-payment': 'confirmPaymentOrder',
  'fail-payment': 'failPaymentOrder',
  cancel: 'cancelOrder',
  ship: 'shipOrder',
  deliver: 'deliverOrder',
  refund: 'refundOrder',
}

/** The actions of `order` that a user with `can` may send, in the server's order. */
export function allowedActions(order: Pick<Order, 'actions'>, can: (p: Permission) => boolean): OrderAction[] {
  return order.actions.filter((a) => can(actionPermission[a]))
}

/**
 * sendAction sends `action` to order `id` with an optional reason and returns the order after
 * it. `idempotencyKey` identifies this one command: pass the same key when retrying the same
 * click (the server answers a replay like the first), a new one for a new click.
 */
export async function sendAction(
  id: string,
  action: OrderAction,
  opts: { reason?: string; idempotencyKey?: string } = {},
): Promise<Order> {
  const init = {
    params: { path: { id }, header: { 'Idempotency-Key': opts.idempotencyKey ?? crypto.randomUUID() } },
    body: opts.reason ? { reason: opts.reason } : {},
  }
  // One typed call per path: openapi-fetch types each path separately.
  switch (action) {
    case 'pay':
      return unwrap(api.POST('/api/v1/orders/{id}/pay', init)) as Promise<Order>
    case 'confirm-payment':
      return unwrap(api.POST('/api/v1/orders/{id}/confirm-payment', init)) as Promise<Order>
    case 'fail-payment':
      return unwrap(api.POST('/api/v1/orders/{id}/fail-payment', init)) as Promise<Order>
    case 'cancel':
      return unwrap(api.POST('/api/v1/orders/{id}/cancel', init)) as Promise<Order>
    case 'ship':
      return unwrap(api.POST('/api/v1/orders/{id}/ship', init)) as Promise<Order>
    case 'deliver':
      return unwrap(api.POST('/api/v1/orders/{id}/deliver', init)) as Promise<Order>
    case 'refund':
      return unwrap(api.POST('/api/v1/orders/{id}/refund', init)) as Promise<Order>
  }
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

/**
 * listOrders fetches one page of orders, newest first: a shopper's own, or (staff) everyone's,
 * optionally one customer's; pass next_cursor on for the next page.
 */
export async function listOrders(q: { status?: OrderStatus; customer?: string; cursor?: string; limit?: number }): Promise<OrderPage> {
  const query: { status?: OrderStatus; customer?: string; cursor?: string; limit?: number } = { limit: q.limit ?? 100 }
  if (q.status) query.status = q.status
  if (q.customer) query.customer = q.customer
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
