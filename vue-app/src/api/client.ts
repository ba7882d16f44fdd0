import createClient, { type Middleware } from 'openapi-fetch'
import type { paths } from './schema'
import { ApiError, fromResponse, networkError } from './errors'
import { tokens, setTokens, clearTokens } from './tokens'

// The API client: the only code that knows the server's URLs (typed by schema.d.ts, which
// `npm run gen:api` generates from edge/openapi.json). Every request gets
//   X-Request-ID      a fresh UUID, echoed by the server and in its logs; shown on errors,
//   X-Client-Version  this app's version (package.json), counted by the server,
//   Authorization     the access token, except on /auth/* (login, refresh... take none).
// A 503 with Retry-After (a draining node, a moving order) is sent again, the same request
// with the same Idempotency-Key, a few times before it stands (sendPatiently).
// A 401 on any other call refreshes the session once — concurrent 401s share the one
// in-flight refresh, because refreshing a token twice ends the session (edge/sessions.go)
// — and retries the call once with the new token. A refused refresh ends the session:
// tokens are cleared and sessionExpired is set, which sends the app to /session-expired.

export const clientVersion: string = __APP_VERSION__

const isAuthPath = (url: string) => new URL(url).pathname.startsWith('/auth/')

function stamp(request: Request, accessToken: string | undefined): Request {
  request.headers.set('X-Request-ID', crypto.randomUUID())
  request.headers.set('X-Client-Version', clientVersion)
  if (accessToken && !isAuthPath(request.url)) request.headers.set('Authorization', `Bearer ${accessToken}`)
  return request
}

const headers: Middleware = {
  onRequest({ request }) {
    return stamp(request, tokens.value?.accessToken)
  },
}

async function send(request: Request): Promise<Response> {
  try {
    return await globalThis.fetch(request)
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e
    throw networkError(e, request.headers.get('X-Request-ID'))
  }
}

/** How often a call answered 503 with Retry-After is sent again before its answer stands. */
export const busyRetries = 3

// sendPatiently sends, and while the server answers 503 with Retry-After (a node is
// draining or an order is moving: edge/retry.go says to send the same request again,
// same Idempotency-Key), waits as told (at most 2 s, plus up to 250 ms so that clients
// turned away together do not return together) and sends a copy again, up to busyRetries
// times. A user never sees a drain that the next second would have hidden.
async function sendPatiently(request: Request): Promise<Response> {
  for (let attempt = 0; ; attempt++) {
    const copy = attempt < busyRetries ? request.clone() : null
    const response = await send(request)
    const after = response.headers.get('Retry-After')
    if (response.status !== 503 || after === null || !copy) return response
    await new Promise((ok) => setTimeout(ok, Math.min(Number(after) || 0, 2) * 1000 + Math.random() * 250))
    request = copy
  }
}

// fetchWithRefresh is the client's fetch: it sends (patiently), and on a 401 for a call
// that carried a token, refreshes (shared) and sends a copy again with the new token.
async function fetchWithRefresh(request: Request): Promise<Response> {
  const sentToken = tokens.value?.accessToken
  const copy = sentToken && !isAuthPath(request.url) ? request.clone() : null
  const response = await sendPatiently(request)
  if (response.status !== 401 || !copy) return response
  // Another call may have refreshed while this one was in flight: then just retry.
  if (tokens.value?.accessToken === sentToken && !(await refreshSession())) return response
  const fresh = tokens.value?.accessToken
  if (!fresh) return response
  return sendPatiently(stamp(copy, fresh))
}

/** api is the typed client: `api.GET('/api/v1/orders/{id}', { params: { path: { id } } })`. Wrap calls in unwrap(). */
export const api = createClient<paths>({
  baseUrl: globalThis.location?.origin ?? '',
  fetch: fetchWithRefresh,
})
api.use(headers)

type Result<T> = { data?: T; error?: unknown; response: Response }
/** The `data` member of an envelope type (undefined for envelopes without data). */
export type Payload<T> = T extends { data?: infer D } ? D : undefined

/**
 * unwrap awaits an api call and returns the envelope's data, or throws ApiError (server
 * error envelope, or code 'network' when no answer came).
 */
export async function unwrap<T>(pending: Promise<Result<T>>): Promise<Payload<T>> {
  let result: Result<T>
  try {
    result = await pending
  } catch (e) {
    if (e instanceof ApiError || (e instanceof DOMException && e.name === 'AbortError')) throw e
    throw networkError(e, null)
  }
  if (!result.response.ok) throw fromResponse(result.response, result.error)
  return (result.data as { data?: unknown } | undefined)?.data as Payload<T>
}

let inflight: Promise<boolean> | null = null

/**
 * refreshSession trades the refresh token for a new session, once at a time: concurrent
 * callers share the same request. It resolves true with new tokens in the holder, false
 * when the server refused (the session is over: tokens cleared, sessionExpired set), and
 * throws ApiError when the server could not answer (the session may still be fine).
 */
export function refreshSession(): Promise<boolean> {
  inflight ??= doRefresh().finally(() => {
    inflight = null
  })
  return inflight
}

async function doRefresh(): Promise<boolean> {
  const before = tokens.value
  if (!before) return false
  try {
    const s = await unwrap(api.POST('/auth/refresh', { body: { refresh_token: before.refreshToken } }))
    // A logout while the refresh was in flight wins: do not bring the session back.
    if (tokens.value !== before) return tokens.value !== null
    setTokens(s)
    return true
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 400)) {
      if (tokens.value === before) clearTokens(true)
      return false
    }
    throw e
  }
}
