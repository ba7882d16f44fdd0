import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { ApiError, clearTokens, tokens } from '@/api'
import { useSessionStore } from '@/stores/session'
import { envelope, failure, fakeServer, permissionsOf, session } from '@/__tests__/fakeServer'

function server() {
  return fakeServer({
    'POST /auth/login': async (req) => {
      const { username, password } = await req.json()
      if (password !== 'ordermesh') return failure(401, 40100, 'wrong username or password')
      return envelope(session(username, username === 'olga' ? 'operator' : 'shopper'))
    },
    'POST /auth/register': async (req) => {
      const { username } = await req.json()
      if (username === 'alice') return failure(409, 40901, 'the username "alice" is taken')
      return envelope({ username, role: 'shopper', disabled: false, created_at: '2026-01-01T00:00:00Z' }, 201)
    },
    'POST /auth/logout': () => envelope(undefined),
    'GET /api/v1/me': (req) => {
      // session() issues tokens named access-<user>-<n>.
      const username = req.headers.get('Authorization')!.split('-')[1]
      const role = username === 'olga' ? 'operator' : 'shopper'
      return envelope({ username, role, permissions: permissionsOf[role] })
    },
  })
}

beforeEach(() => {
  clearTokens()
  setActivePinia(createPinia())
})
afterEach(() => vi.unstubAllGlobals())

describe('session store', () => {
  it('logs in, loads /me and answers can() from its permissions', async () => {
    server()
    const s = useSessionStore()
    expect(s.isLoggedIn).toBe(false)
    await s.login('olga', 'ordermesh')
    expect(s.isLoggedIn).toBe(true)
    expect(s.username).toBe('olga')
    expect(s.role).toBe('operator')
    expect(s.can('listFulfilment')).toBe(true)
    expect(s.can('createOrder')).toBe(false)
    expect(s.can('listUsers')).toBe(false)
    expect(JSON.parse(sessionStorage.getItem('ordermesh.session')!).refreshToken).toBe('refresh-olga-1')
  })

  it('keeps the user logged out on wrong credentials', async () => {
    server()
    const s = useSessionStore()
    const err = await s.login('alice', 'nope').catch((e) => e)
    expect(err).toBeInstanceOf(ApiError)
    expect(err.code).toBe(40100)
    expect(s.isLoggedIn).toBe(false)
    expect(s.me).toBeNull()
  })

  it('registers a shopper and logs it in; a taken name is an ApiError', async () => {
    const srv = server()
    const s = useSessionStore()
    await s.register('carol', 'ordermesh')
    expect(await srv.sent('POST /auth/register')[0]!.json()).toEqual({ username: 'carol', password: 'ordermesh' })
    expect(srv.sent('POST /auth/login')).toHaveLength(1)
    expect(s.username).toBe('carol')
    expect(s.can('createOrder')).toBe(true)
    await s.logout()
    await expect(s.register('alice', 'ordermesh')).rejects.toMatchObject({ code: 40901 })
  })

  it('logs out: forgets the tokens and revokes the refresh token on the server', async () => {
    const srv = server()
    const s = useSessionStore()
    await s.login('alice', 'ordermesh')
    await s.logout()
    expect(s.isLoggedIn).toBe(false)
    expect(s.me).toBeNull()
    expect(s.can('createOrder')).toBe(false)
    expect(tokens.value).toBeNull()
    expect(sessionStorage.getItem('ordermesh.session')).toBeNull()
    const [logout] = srv.sent('POST /auth/logout')
    expect(await logout!.json()).toEqual({ refresh_token: 'refresh-alice-1' })
  })
})
