import type { Order, OrderStatus } from '@/api'

// How a live change of an order (useLive, every order for staff) lands in the operators'
// order list, which is newest first and may be filtered by status and customer.

export interface OrderFilter {
  status?: OrderStatus | ''
  customer?: string
}

export function matches(order: Order, f: OrderFilter): boolean {
  if (f.status && order.status !== f.status) return false
  if (f.customer && order.customer !== f.customer.trim()) return false
  return true
}

/**
 * applyLiveOrder returns the rows after `order` changed, or the same array if nothing shows:
 * - a row already shown is replaced by a newer version (an older one, say a live event
 *   overtaken by the page's own fetch, is ignored). It stays even if it no longer matches
 *   the status filter, so that a row does not vanish under the operator's pointer;
 * - an order not shown is put first when it matches the filters and is at least as new as
 *   the newest row (a new order); an older order changing is on a page not loaded yet.
 */
export function applyLiveOrder(rows: Order[], order: Order, filter: OrderFilter): Order[] {
  const i = rows.findIndex((r) => r.id === order.id)
  if (i >= 0) {
    if (order.version <= rows[i]!.version) return rows
    const copy = rows.slice()
    copy[i] = order
    return copy
  }
  if (!matches(order, filter)) return rows
  const newest = rows[0]
  if (newest && Date.parse(order.created_at) < Date.parse(newest.created_at)) return rows
  return [order, ...rows]
}
