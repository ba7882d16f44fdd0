import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { allowedActions, sendAction, setTokens, clearTokens, ApiError } from '@/api'
import type { Order, Permission } from '@/api'
import { setLocale } from '@/i18n'
import { envelope, failure, fakeServer, session } from '@/__tests__/fakeServer'

const order = (over: Partial<Order> = {}): Order => ({
  id: 'o1',
  customer: 'alice',
  status: 'PAID',
  version: 3,
  items: [{ sku: 'tea', qty: 1 }],
  currency: 'EUR',
  total: 500,
  created_at: '2026-01-01T00:00:00Z',
  updated_at: '2026-01-01T00:00:00Z',
  actions: ['cancel', 'ship', 'refund'],
  ...over,
}) as Order

beforeEach(() => {
  clearTokens()
  setLocale('en')
  setTokens(session('olga', 'operator'))
})
afterEach(() => vi.unstubAllGlobals())

describe('order actions', () => {
  it('offers the server’s actions that the user may send, in the server’s order', () => {
    const has = (...ps: Permission[]) => (p: Permission) => ps.includes(p)
    expect(allowedActions(order(), has('shipOrder', 'refundOrder', 'payOrder'))).toEqual(['ship', 'refund'])
    expect(allowedActions(order(), has('payOrder', 'cancelOrder'))).toEqual(['cancel'])
    expect(allowedActions(order({ actions: [] }), () => true)).toEqual([])
  })

  it('posts the action with a reason and an idempotency key, and returns the order after it', async () => {
    const after = order({ status: 'REFUNDED', version: 4, actions: [] })
    const srv = fakeServer({ 'POST /api/v1/orders/o1/refund': () => envelope(after) })
    await expect(sendAction('o1', 'refund', { reason: 'damaged', idempotencyKey: 'k-1' })).resolves.toEqual(after)
    const [req] = srv.sent('POST /api/v1/orders/o1/refund')
    expect(req!.headers.get('Idempotency-Key')).toBe('k-1')
    expect(await req!.json()).toEqual({ reason: 'damaged' })
  })

  it('makes a fresh key per command when none is given', async () => {
    const srv = fakeServer({ 'POST /api/v1/orders/o1/ship': () => envelope(order({ status: 'SHIPPED' })) })
    await sendAction('o1', 'ship')
    await sendAction('o1', 'ship')
    const [a, b] = srv.sent('POST /api/v1/orders/o1/ship')
    expect(a!.headers.get('Idempotency-Key')).toBeTruthy()
    expect(a!.headers.get('Idempotency-Key')).not.toBe(b!.headers.get('Idempotency-Key'))
    expect(await a!.json()).toEqual({})
  })

  it('turns a refused transition into a translated ApiError', async () => {
    fakeServer({ 'POST /api/v1/orders/o1/deliver': () => failure(409, 40900, 'illegal transition') })
    const err = await sendAction('o1', 'deliver').catch((e) => e)
    expect(err).toBeInstanceOf(ApiError)
    expect(err.code).toBe(40900)
    expect(err.message).toBe('This is not possible in the order’s current state.')
  })
})
