import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { createMemoryHistory, type Router } from 'vue-router'
import { defineComponent } from 'vue'
import { clearTokens, setTokens } from '@/api'
import { makeRouter } from '@/router'
import { envelope, fakeServer, permissionsOf, session } from '@/__tests__/fakeServer'

const Page = defineComponent({ render: () => null })

function routerWithPages(): Router {
  const router = makeRouter(createMemoryHistory())
  // Feature routes as the shopper and operator pages declare them.
  router.addRoute({ path: '/cart', name: 'cart', component: Page, meta: { requires: 'createOrder' } })
  router.addRoute({ path: '/ops/cluster', name: 'ops-cluster', component: Page, meta: { requires: 'getCluster' } })
  return router
}

function meServer(username: string, role: 'shopper' | 'operator') {
  return fakeServer({ 'GET /api/v1/me': () => envelope({ username, role, permissions: permissionsOf[role] }) })
}

beforeEach(() => {
  clearTokens()
  setActivePinia(createPinia())
})
afterEach(() => vi.unstubAllGlobals())

describe('router guard', () => {
  it('sends an anonymous user to /login with the wanted URL', async () => {
    const router = routerWithPages()
    await router.push('/ops/cluster?tab=nodes')
    expect(router.currentRoute.value.name).toBe('login')
    expect(router.currentRoute.value.query.redirect).toBe('/ops/cluster?tab=nodes')
  })

  it('lets anyone open public pages', async () => {
    const router = routerWithPages()
    await router.push('/signup')
    expect(router.currentRoute.value.name).toBe('signup')
    await router.push('/no/such/page')
    expect(router.currentRoute.value.name).toBe('not-found')
  })

  it('sends a shopper who types an operator URL to the not-allowed page', async () => {
    meServer('alice', 'shopper')
    setTokens(session('alice', 'shopper'))
    const router = routerWithPages()
    await router.push('/ops/cluster')
    expect(router.currentRoute.value.name).toBe('forbidden')
    expect(router.currentRoute.value.query.from).toBe('/ops/cluster')
    await router.push('/cart')
    expect(router.currentRoute.value.name).toBe('cart')
  })

  it('lets an operator open operator pages but not the shopper cart', async () => {
    const srv = meServer('olga', 'operator')
    setTokens(session('olga', 'operator'))
    const router = routerWithPages()
    await router.push('/ops/cluster')
    expect(router.currentRoute.value.name).toBe('ops-cluster')
    await router.push('/cart')
    expect(router.currentRoute.value.name).toBe('forbidden')
    expect(srv.sent('GET /api/v1/me')).toHaveLength(1) // /me is loaded once
  })

  it('shows the error page with the request id when /me cannot be loaded', async () => {
    const srv = fakeServer({})
    srv.fetch.mockRejectedValue(new TypeError('Failed to fetch'))
    setTokens(session('alice', 'shopper'))
    const router = routerWithPages()
    await router.push('/cart')
    expect(router.currentRoute.value.name).toBe('error')
    expect(router.currentRoute.value.query.code).toBe('network')
    expect(router.currentRoute.value.query.requestId).toMatch(/^[0-9a-f-]{36}$/)
  })
})
