import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { api, unwrap, ApiError, tokens, sessionExpired, setTokens, clearTokens, clientVersion } from '@/api'
import { i18n, setLocale } from '@/i18n'
import { envelope, failure, fakeServer, session } from '@/__tests__/fakeServer'

const me = { username: 'alice', role: 'shopper', permissions: ['getMe'] }
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

beforeEach(() => {
  clearTokens()
  setLocale('en')
})
afterEach(() => vi.unstubAllGlobals())

describe('api client', () => {
  it('sends the bearer token, a fresh request id and the client version', async () => {
    const srv = fakeServer({ 'GET /api/v1/me': () => envelope(me) })
    setTokens(session('alice', 'shopper'))
    await expect(unwrap(api.GET('/api/v1/me'))).resolves.toEqual(me)
    await unwrap(api.GET('/api/v1/me'))
    const [a, b] = srv.requests
    expect(a!.headers.get('Authorization')).toBe('Bearer access-alice-1')
    expect(a!.headers.get('X-Client-Version')).toBe(clientVersion)
    expect(clientVersion).toMatch(/^\d+\.\d+\.\d+/)
    expect(a!.headers.get('X-Request-ID')).toMatch(uuid)
    expect(b!.headers.get('X-Request-ID')).not.toBe(a!.headers.get('X-Request-ID'))
  })

  it('sends no token to /auth endpoints and does not refresh on their 401', async () => {
    const srv = fakeServer({ 'POST /auth/login': () => failure(401, 40100, 'wrong username or password') })
    setTokens(session('alice', 'shopper'))
    const err = await unwrap(api.POST('/auth/login', { body: { username: 'a', password: 'b' } })).catch((e) => e)
    expect(err).toBeInstanceOf(ApiError)
    expect(err.code).toBe(40100)
    expect(srv.requests).toHaveLength(1)
    expect(srv.requests[0]!.headers.get('Authorization')).toBeNull()
  })

  it('on 401 refreshes once for concurrent calls, then retries each with the new token', async () => {
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    const srv = fakeServer({
      'GET /api/v1/me': (req) =>
        req.headers.get('Authorization') === 'Bearer access-alice-2' ? envelope(me) : failure(401, 40100, 'expired'),
      'POST /auth/refresh': async () => {
        await gate // hold the refresh so that all three calls are waiting on it
        return envelope(session('alice', 'shopper', 2))
      },
    })
    setTokens(session('alice', 'shopper', 1))
    const calls = [1, 2, 3].map(() => unwrap(api.GET('/api/v1/me')))
    await vi.waitFor(() => expect(srv.sent('POST /auth/refresh')).toHaveLength(1))
    release()
    await expect(Promise.all(calls)).resolves.toEqual([me, me, me])
    expect(srv.sent('POST /auth/refresh')).toHaveLength(1)
    expect(await srv.sent('POST /auth/refresh')[0]!.json()).toEqual({ refresh_token: 'refresh-alice-1' })
    const retries = srv.sent('GET /api/v1/me').filter((r) => r.headers.get('Authorization') === 'Bearer access-alice-2')
    expect(retries).toHaveLength(3)
    expect(tokens.value?.refreshToken).toBe('refresh-alice-2')
  })

  it('marks the session expired when the refresh is refused', async () => {
    const srv = fakeServer({
      'GET /api/v1/me': () => failure(401, 40100, 'expired'),
      'POST /auth/refresh': () => failure(401, 40100, 'the refresh token is invalid'),
    })
    setTokens(session('alice', 'shopper'))
    const err = await unwrap(api.GET('/api/v1/me')).catch((e) => e)
    expect(err).toBeInstanceOf(ApiError)
    expect(err.status).toBe(401)
    expect(srv.sent('GET /api/v1/me')).toHaveLength(1) // no retry without a new token
    expect(tokens.value).toBeNull()
    expect(sessionExpired.value).toBe(true)
  })

  it('turns the error envelope into an ApiError with a translated message and the request id', async () => {
    fakeServer({
      'GET /api/v1/orders/{id}': () => failure(404, 40400, 'order not found'),
      'GET /api/v1/orders/o1': () => failure(409, 40900, 'cannot ship a PAYING order', 'req-123'),
      'GET /api/v1/orders/o2': () => failure(418, 41800, 'a code the app does not know', 'req-456'),
    })
    setTokens(session('olga', 'operator'))
    const get = (id: string) => unwrap(api.GET('/api/v1/orders/{id}', { params: { path: { id } } })).catch((e) => e)

    const e1 = await get('o1')
    expect(e1).toMatchObject({ status: 409, code: 40900, requestId: 'req-123', serverMessage: 'cannot ship a PAYING order' })
    expect(e1.message).toBe(i18n.global.t('errors.40900'))
    expect(e1.message).not.toBe('cannot ship a PAYING order')

    setLocale('zh-CN')
    expect((await get('o1')).message).toBe('订单当前状态下无法执行此操作。')

    const e2 = await get('o2')
    expect(e2).toMatchObject({ code: 41800, requestId: 'req-456', message: 'a code the app does not know' })
  })

  it('reports a request that got no answer as code network, with the request id it sent', async () => {
    const srv = fakeServer({})
    srv.fetch.mockRejectedValueOnce(new TypeError('Failed to fetch'))
    const err = await unwrap(api.GET('/api/v1/catalog')).catch((e) => e)
    expect(err).toBeInstanceOf(ApiError)
    expect(err).toMatchObject({ status: 0, code: 'network', message: i18n.global.t('errors.network') })
    expect(err.requestId).toMatch(uuid)
  })

  it('sends a call the server answered 503 with Retry-After again, same key and body, and gives up after a few', async () => {
    const busy = () =>
      new Response(JSON.stringify({ code: 50300, message: 'node draining' }), {
        status: 503,
        headers: { 'Content-Type': 'application/json', 'Retry-After': '0' },
      })
    let answers = [busy(), busy()]
    const order = { id: 'o1' }
    const srv = fakeServer({ 'POST /api/v1/orders/o1/pay': () => answers.shift() ?? envelope(order) })
    setTokens(session('alice', 'shopper'))
    const pay = () =>
      unwrap(api.POST('/api/v1/orders/{id}/pay', { params: { path: { id: 'o1' }, header: { 'Idempotency-Key': 'k-7' } }, body: { reason: 'x' } }))
    await expect(pay()).resolves.toEqual(order)
    const sent = srv.sent('POST /api/v1/orders/o1/pay')
    expect(sent).toHaveLength(3)
    for (const r of sent) {
      expect(r.headers.get('Idempotency-Key')).toBe('k-7')
      expect(await r.json()).toEqual({ reason: 'x' })
    }

    answers = Array.from({ length: 10 }, busy)
    const err = await pay().catch((e) => e)
    expect(err).toMatchObject({ status: 503, code: 50300 })
    expect(srv.sent('POST /api/v1/orders/o1/pay')).toHaveLength(3 + 4) // the first try and three more
  })

  it('does not resend a 503 without Retry-After', async () => {
    const srv = fakeServer({ 'GET /api/v1/catalog': () => failure(503, 50300, 'no inventory here') })
    await unwrap(api.GET('/api/v1/catalog')).catch(() => null)
    expect(srv.sent('GET /api/v1/catalog')).toHaveLength(1)
  })
})
