import { describe, expect, it } from 'vitest'
import { defineComponent } from 'vue'
import type { RouteRecordRaw } from 'vue-router'
import type { Permission } from '@/api'
import { homePath, menuFor } from '@/router/menu'
import { featureRoutes } from '@/router/routes'
import { permissionsOf } from '@/__tests__/fakeServer'

const Page = defineComponent({ render: () => null })
const has = (ps: string[]) => (p: Permission) => ps.includes(p)

describe('menu', () => {
  const routes: RouteRecordRaw[] = [
    { path: '/', component: Page, meta: { requires: 'listCatalog', menu: { label: 'nav.catalog', order: 10, for: 'createOrder' } } },
    { path: '/cart', component: Page, meta: { requires: 'createOrder', menu: { label: 'nav.cart', order: 11 } } },
    { path: '/ops/orders', component: Page, meta: { requires: 'shipOrder', menu: { label: 'nav.opsOrders', order: 20 } } },
    { path: '/orders/:id', component: Page, meta: { requires: 'getOrder' } },
  ]

  it('lists the pages a user may open, in order, and no page without a menu entry', () => {
    expect(menuFor(has(['listCatalog', 'createOrder', 'getOrder']), routes).map((m) => m.path)).toEqual(['/', '/cart'])
  })

  it('leaves out an entry meant for another role, and starts the user on their own first page', () => {
    const staff = has(['listCatalog', 'shipOrder', 'getOrder'])
    expect(menuFor(staff, routes).map((m) => m.path)).toEqual(['/ops/orders'])
    expect(homePath(staff, routes)).toBe('/ops/orders')
  })

  it('gives each role of the app its own first page', () => {
    expect(homePath(has(permissionsOf.shopper))).toBe('/')
    expect(homePath(has(permissionsOf.operator))).toBe('/ops/orders')
    expect(featureRoutes.length).toBeGreaterThan(5)
  })
})
