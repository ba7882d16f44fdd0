import { computed, ref, watch } from 'vue'
import { defineStore } from 'pinia'
import { createOrder } from '@/api'
import { outOfStockSku, type Product } from '@/api/shop'
import { ApiError } from '@/api'
import type { Order } from '@/api'
import { i18n } from '@/i18n'
import { useSessionStore } from './session'

// The shopper's cart: lines of sku and quantity with the product's name and price as the
// catalog showed them (the server prices the order itself; these are for display). It is
// kept per user in localStorage (key ordermesh.cart.<username>), so it survives a reload
// and a new tab, and one user's cart never shows up for another on the same browser.
//
// Placing the order keeps one Idempotency-Key per submission: a retry of the same cart
// (after a network failure, a 503, a double click) sends the same key and so reaches the
// same order; changing the cart starts a new submission with a new key.

export interface CartLine {
  sku: string
  name: string
  unitPrice: number
  currency: string
  qty: number
}

/** The most of one sku on one line (CreateOrderRequest: qty 1..1000). */
export const MAX_QTY = 1000

export const cartKey = (username: string) => `ordermesh.cart.${username}`

function load(username: string | null): CartLine[] {
  if (!username) return []
  try {
    const raw = globalThis.localStorage?.getItem(cartKey(username))
    const lines = raw ? (JSON.parse(raw) as CartLine[]) : []
    return Array.isArray(lines) ? lines.filter((l) => l && typeof l.sku === 'string' && l.qty > 0) : []
  } catch {
    return []
  }
}

const clamp = (qty: number) => Math.max(1, Math.min(MAX_QTY, Math.floor(qty)))

/**
 * placeOrderError turns a refused order into what the shopper reads: an out-of-stock
 * refusal names the product (the server names the sku; `names` maps sku to name), any
 * other error its translated message.
 */
export function placeOrderError(e: unknown, names: (sku: string) => string | undefined): string {
  const t = i18n.global.t
  const sku = outOfStockSku(e)
  if (sku !== null) {
    const product = (sku && names(sku)) || sku || t('shop.cart.product')
    return t('shop.cart.outOfStock', { product })
  }
  return e instanceof ApiError ? e.message : t('errors.unknown')
}

/** The error of an order that was created but came back REJECTED (a line out of stock). */
export class RejectedOrderError extends Error {
  constructor(readonly order: Order) {
    super(i18n.global.t('shop.cart.rejected', { products: order.items.map((l) => l.name).join(', ') }))
    this.name = 'RejectedOrderError'
  }
}

export const useCartStore = defineStore('cart', () => {
  const session = useSessionStore()
  const lines = ref<CartLine[]>([])
  let owner: string | null = null
  /** The Idempotency-Key of the submission in progress (kept until the cart changes or the order stands). */
  const submissionKey = ref<string | null>(null)

  // Follow the logged-in user: their own cart, saved on every change.
  watch(
    () => session.username,
    (name) => {
      owner = name
      lines.value = load(name)
      submissionKey.value = null
    },
    { immediate: true },
  )
  watch(
    lines,
    (l) => {
      if (!owner) return
      if (l.length) globalThis.localStorage?.setItem(cartKey(owner), JSON.stringify(l))
      else globalThis.localStorage?.removeItem(cartKey(owner))
    },
    { deep: true },
  )

  const count = computed(() => lines.value.reduce((n, l) => n + l.qty, 0))
  const total = computed(() => lines.value.reduce((s, l) => s + l.qty * l.unitPrice, 0))
  const currency = computed(() => lines.value[0]?.currency ?? 'EUR')

  function changed() {
    submissionKey.value = null
  }

  /** add puts qty of product in the cart, on its existing line if there is one. */
  function add(p: Pick<Product, 'sku' | 'name' | 'unit_price' | 'currency'>, qty = 1) {
    const line = lines.value.find((l) => l.sku === p.sku)
    if (line) line.qty = clamp(line.qty + qty)
    else lines.value.push({ sku: p.sku, name: p.name, unitPrice: p.unit_price, currency: p.currency, qty: clamp(qty) })
    changed()
  }

  function setQty(sku: string, qty: number) {
    const line = lines.value.find((l) => l.sku === sku)
    if (!line || !Number.isFinite(qty)) return
    line.qty = clamp(qty)
    changed()
  }

  function remove(sku: string) {
    lines.value = lines.value.filter((l) => l.sku !== sku)
    changed()
  }

  function clear() {
    lines.value = []
    changed()
  }

  /**
   * placeOrder orders the cart's lines. On success the cart is emptied and the order
   * returned; a refusal throws (ApiError, or RejectedOrderError for an order that came
   * back REJECTED) and keeps the cart and the key, so that "Place order" again is a retry.
   */
  async function placeOrder(): Promise<Order> {
    submissionKey.value ??= crypto.randomUUID()
    const order = await createOrder(
      lines.value.map((l) => ({ sku: l.sku, qty: l.qty })),
      submissionKey.value,
    )
    if (order.status === 'REJECTED') throw new RejectedOrderError(order)
    clear()
    return order
  }

  return { lines, count, total, currency, submissionKey, add, setQty, remove, clear, placeOrder }
})
