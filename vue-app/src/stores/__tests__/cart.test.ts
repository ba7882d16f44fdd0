import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { nextTick } from 'vue'
import { createPinia, setActivePinia } from 'pinia'
import { ApiError, clearTokens, setTokens } from '@/api'
import { cartKey, placeOrderError, RejectedOrderError, useCartStore } from '@/stores/cart'
import { envelope, failure, fakeServer, session } from '@/__tests__/fakeServer'

const tea = { sku: 'tea-sencha', name: 'Sencha green tea, 100 g', unit_price: 1290, currency: 'EUR' }
const mug = { sku: 'mug-stoneware', name: 'Stoneware mug', unit_price: 1850, currency: 'EUR' }

function order(status: string, id = 'o-1') {
  return {
    id,
    customer: 'alice',
    status,
    version: 2,
    items: [{ sku: tea.sku, name: tea.name, qty: 2, unit_price: 1290 }],
    currency: 'EUR',
    total: 2580,
    created_at: '2026-01-01T00:00:00Z',
    updated_at: '2026-01-01T00:00:00Z',
    actions: ['pay', 'cancel'],
  }
}

beforeEach(() => {
  localStorage.clear()
  clearTokens()
  setTokens(session('alice', 'shopper'))
  setActivePinia(createPinia())
})
afterEach(() => vi.unstubAllGlobals())

describe('cart store', () => {
  it('adds, merges lines of the same sku, changes quantities, removes and totals', () => {
    const cart = useCartStore()
    cart.add(tea, 2)
    cart.add(mug)
    cart.add(tea, 3)
    expect(cart.lines.map((l) => [l.sku, l.qty])).toEqual([
      [tea.sku, 5],
      [mug.sku, 1],
    ])
    expect(cart.count).toBe(6)
    expect(cart.total).toBe(5 * 1290 + 1850)
    cart.setQty(mug.sku, 4)
    expect(cart.total).toBe(5 * 1290 + 4 * 1850)
    cart.setQty(mug.sku, 0) // at least 1
    cart.setQty(tea.sku, 5000) // at most 1000, what one line may hold
    expect(cart.lines.map((l) => l.qty)).toEqual([1000, 1])
    cart.remove(tea.sku)
    expect(cart.lines.map((l) => l.sku)).toEqual([mug.sku])
    expect(cart.total).toBe(1850)
  })

  it('keeps each user their own cart in localStorage', async () => {
    const cart = useCartStore()
    cart.add(tea, 2)
    await nextTick()
    expect(JSON.parse(localStorage.getItem(cartKey('alice'))!)).toMatchObject([{ sku: tea.sku, qty: 2 }])

    setTokens(session('bob', 'shopper')) // another user on this browser
    await nextTick()
    expect(cart.lines).toEqual([])
    cart.add(mug)
    await nextTick()
    expect(JSON.parse(localStorage.getItem(cartKey('bob'))!)).toMatchObject([{ sku: mug.sku, qty: 1 }])

    setTokens(session('alice', 'shopper', 2))
    await nextTick()
    expect(cart.lines.map((l) => [l.sku, l.qty])).toEqual([[tea.sku, 2]])
    // A fresh store (a reload) reads the same.
    setActivePinia(createPinia())
    expect(useCartStore().lines.map((l) => l.sku)).toEqual([tea.sku])
  })

  it('places the order with one Idempotency-Key per submission and empties the cart on success', async () => {
    let calls = 0
    const srv = fakeServer({
      'POST /api/v1/orders': () => (++calls === 1 ? failure(503, 50300, 'try again') : envelope(order('CREATED'), 201)),
    })
    const cart = useCartStore()
    cart.add(tea, 2)
    await expect(cart.placeOrder()).rejects.toBeInstanceOf(ApiError)
    expect(cart.lines).toHaveLength(1) // kept for the retry
    const placed = await cart.placeOrder()
    expect(placed.id).toBe('o-1')
    const [a, b] = srv.sent('POST /api/v1/orders')
    expect(a!.headers.get('Idempotency-Key')).toBeTruthy()
    expect(b!.headers.get('Idempotency-Key')).toBe(a!.headers.get('Idempotency-Key'))
    expect(await b!.json()).toEqual({ items: [{ sku: tea.sku, qty: 2 }] })
    expect(cart.lines).toEqual([])
    await nextTick()
    expect(localStorage.getItem(cartKey('alice'))).toBeNull()
  })

  it('starts a new submission when the cart changes', async () => {
    const srv = fakeServer({ 'POST /api/v1/orders': () => failure(409, 40902, 'out of stock: sku tea-sencha has fewer than 2 available') })
    const cart = useCartStore()
    cart.add(tea, 2)
    await expect(cart.placeOrder()).rejects.toBeInstanceOf(ApiError)
    cart.setQty(tea.sku, 1)
    await expect(cart.placeOrder()).rejects.toBeInstanceOf(ApiError)
    const [a, b] = srv.sent('POST /api/v1/orders')
    expect(b!.headers.get('Idempotency-Key')).not.toBe(a!.headers.get('Idempotency-Key'))
  })

  it('treats an order that comes back REJECTED as out of stock, naming its products', async () => {
    fakeServer({ 'POST /api/v1/orders': () => envelope(order('REJECTED'), 201) })
    const cart = useCartStore()
    cart.add(tea, 2)
    const e = await cart.placeOrder().catch((x) => x)
    expect(e).toBeInstanceOf(RejectedOrderError)
    expect(e.message).toContain(tea.name)
    expect(cart.lines).toHaveLength(1)
  })
})

describe('placeOrderError', () => {
  const names = (sku: string) => ({ [tea.sku]: tea.name, [mug.sku]: mug.name })[sku]

  it('names the product of an out-of-stock refusal (40902), from the sku the server names', () => {
    for (const message of [
      'out of stock: sku mug-stoneware has fewer than 3 available',
      'sku "mug-stoneware": 3 wanted, 0 available',
      'out of stock: sku mug-stoneware is no longer reserved for this order',
    ]) {
      const text = placeOrderError(new ApiError(409, 40902, message, 'r1'), names)
      expect(text).toContain('Stoneware mug')
      expect(text).toMatch(/out of stock/i)
    }
  })

  it('falls back to the sku when the product is unknown, and to the message for other errors', () => {
    expect(placeOrderError(new ApiError(409, 40902, 'out of stock: sku gone-1 has fewer than 1 available', null), names)).toContain(
      'gone-1',
    )
    expect(placeOrderError(new ApiError(422, 42200, 'unknown sku', null), names)).toBe('Some values are not valid.')
    expect(placeOrderError(new Error('boom'), names)).toBe('Unexpected error.')
  })
})
