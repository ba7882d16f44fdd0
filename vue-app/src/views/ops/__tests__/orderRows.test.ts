import { describe, expect, it } from 'vitest'
import type { Order } from '@/api'
import { applyLiveOrder, matches } from '../orderRows'

const order = (id: string, over: Partial<Order> = {}): Order =>
  ({
    id,
    customer: 'alice',
    status: 'CREATED',
    version: 2,
    items: [{ sku: 'tea', name: 'Tea', qty: 1, unit_price: 500 }],
    currency: 'EUR',
    total: 500,
    created_at: '2026-01-01T10:00:00Z',
    updated_at: '2026-01-01T10:00:00Z',
    actions: ['pay', 'cancel'],
    ...over,
  }) as Order

describe('applyLiveOrder', () => {
  const rows = [order('b', { created_at: '2026-01-01T10:00:00Z' }), order('a', { created_at: '2026-01-01T09:00:00Z' })]

  it('replaces a shown order by its newer version, in place', () => {
    const paid = order('a', { status: 'PAID', version: 4, created_at: '2026-01-01T09:00:00Z' })
    const after = applyLiveOrder(rows, paid, {})
    expect(after.map((o) => [o.id, o.status])).toEqual([
      ['b', 'CREATED'],
      ['a', 'PAID'],
    ])
    expect(rows[1]!.status).toBe('CREATED') // the input is not changed
  })

  it('ignores a version at or below the one shown', () => {
    const shown = [order('a', { version: 5, status: 'SHIPPED' })]
    expect(applyLiveOrder(shown, order('a', { version: 4, status: 'PAID' }), {})).toBe(shown)
    expect(applyLiveOrder(shown, order('a', { version: 5, status: 'PAID' }), {})).toBe(shown)
  })

  it('keeps a shown row that no longer matches the status filter, updated', () => {
    const shown = [order('a', { status: 'PAID', version: 4 })]
    const after = applyLiveOrder(shown, order('a', { status: 'SHIPPED', version: 5 }), { status: 'PAID' })
    expect(after[0]!.status).toBe('SHIPPED')
  })

  it('puts a new order that matches the filters first', () => {
    const fresh = order('c', { created_at: '2026-01-01T11:00:00Z' })
    expect(applyLiveOrder(rows, fresh, {}).map((o) => o.id)).toEqual(['c', 'b', 'a'])
    expect(applyLiveOrder([], fresh, {}).map((o) => o.id)).toEqual(['c'])
  })

  it('leaves out a new order the filters exclude, and an old order not loaded', () => {
    const fresh = order('c', { created_at: '2026-01-01T11:00:00Z', customer: 'bob' })
    expect(applyLiveOrder(rows, fresh, { customer: 'alice' })).toBe(rows)
    expect(applyLiveOrder(rows, fresh, { status: 'PAID' })).toBe(rows)
    const old = order('z', { created_at: '2025-12-31T00:00:00Z', version: 7 })
    expect(applyLiveOrder(rows, old, {})).toBe(rows)
  })
})

describe('matches', () => {
  it('compares status exactly and the customer without surrounding blanks', () => {
    expect(matches(order('a'), {})).toBe(true)
    expect(matches(order('a'), { status: '' , customer: '' })).toBe(true)
    expect(matches(order('a'), { customer: ' alice ' })).toBe(true)
    expect(matches(order('a'), { status: 'PAID' })).toBe(false)
  })
})
