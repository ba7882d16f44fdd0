import { getCurrentScope, onScopeDispose, readonly, ref, shallowReactive, watch } from 'vue'
import { tokens, refreshSession } from '@/api'
import type { Order, WsEvent } from '@/api'

// useLive: the app's one WebSocket (GET /ws, protocol in edge/ws.go and README "Live
// push"). State is module-level, so every component shares the socket and the latest
// orders; the socket opens when something is watched and a session exists, and closes on
// logout or a while after the last watcher stops.
//
// - Auth: the first frame is {"type":"auth","token":...}; the server answers "ready".
//   Tokens never go in the URL. The server closes a socket with 4401 when its token
//   expires, so shortly before that we refresh the session (the shared refresh of the API
//   layer) and send a new auth frame; any refresh (also one caused by an HTTP 401) is
//   sent on as well.
// - Subscriptions: {"type":"subscribe","orders":{id: last version seen}}; the server
//   replays what came after that version, so after a reconnect we resubscribe with the
//   last version seen of each order and miss nothing. Events at or below the last version
//   seen are dropped (a replay may overlap with what arrived live).
// - Reconnect: exponential backoff with jitter (0.5 s doubling to 30 s, each delay drawn
//   between half and all of it, so clients dropped together do not return together).
//   4401 refreshes first; 4403 (not allowed) does not retry.

export type LiveStatus = 'connecting' | 'open' | 'reconnecting' | 'closed'

export const liveTuning = {
  baseDelayMs: 500,
  maxDelayMs: 30_000,
  /** Refresh and re-auth this long before the access token expires. */
  reauthBeforeMs: 60_000,
  /** Keep the socket this long after the last watcher stops (a page change re-watches). */
  lingerMs: 10_000,
}

const status = ref<LiveStatus>('closed')
/** The latest order seen per id. */
const orders = shallowReactive(new Map<string, Order>())
const versions = new Map<string, number>()
const watchers = new Map<string, number>() // order id -> number of watchers
let allWatchers = 0
const eventListeners = new Set<(e: WsEvent) => void>()
const openListeners = new Set<(reconnected: boolean) => void>()

let socket: WebSocket | null = null
let ready = false // the current socket has been authenticated
let sentToken: string | null = null
let attempt = 0
let everOpened = false
let retryTimer: ReturnType<typeof setTimeout> | undefined
let reauthTimer: ReturnType<typeof setTimeout> | undefined
let lingerTimer: ReturnType<typeof setTimeout> | undefined

const wanted = () => watchers.size > 0 || allWatchers > 0

function wsUrl(): string {
  const l = globalThis.location
  return `${l.protocol === 'https:' ? 'wss' : 'ws'}://${l.host}/ws`
}

function send(frame: object) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame))
}

function subscribe(ids: Iterable<string>) {
  const list = [...ids]
  if (!ready || list.length === 0) return
  send({ type: 'subscribe', orders: Object.fromEntries(list.map((id) => [id, versions.get(id) ?? 0])) })
}

function connect() {
  clearTimeout(retryTimer)
  retryTimer = undefined
  const t = tokens.value
  if (!t || !wanted() || socket) return
  status.value = everOpened || attempt > 0 ? 'reconnecting' : 'connecting'
  const ws = new WebSocket(wsUrl(), 'ordermesh.v1')
  socket = ws
  ready = false
  ws.onopen = () => {
    sentToken = tokens.value?.accessToken ?? null
    if (!sentToken) return ws.close(1000)
    send({ type: 'auth', token: sentToken })
  }
  ws.onmessage = (m: MessageEvent) => {
    if (socket === ws) handle(JSON.parse(String(m.data)))
  }
  ws.onclose = (e: CloseEvent) => {
    if (socket !== ws) return // one we closed on purpose
    socket = null
    ready = false
    clearTimeout(reauthTimer)
    void closed(e.code)
  }
}

interface ServerFrame {
  type: string
  order_id?: string
  version?: number
  order?: Order
}

function handle(frame: ServerFrame) {
  switch (frame.type) {
    case 'ready': {
      if (ready) return scheduleReauth() // an answer to a re-auth
      ready = true
      attempt = 0
      status.value = 'open'
      scheduleReauth()
      if (allWatchers > 0) send({ type: 'subscribe', all: true })
      subscribe(watchers.keys())
      const again = everOpened
      everOpened = true
      openListeners.forEach((cb) => cb(again))
      return
    }
    case 'event': {
      const e = frame as WsEvent
      if (e.version <= (versions.get(e.order_id) ?? 0)) return
      versions.set(e.order_id, e.version)
      orders.set(e.order_id, e.order)
      eventListeners.forEach((cb) => cb(e))
      return
    }
  }
  // "subscribed", "unsubscribed", and "error" for an order the user may not see: nothing
  // to do; that order simply gets no events.
}

async function closed(code: number) {
  if (!tokens.value || !wanted()) {
    status.value = 'closed'
    return
  }
  if (code === 4403) {
    // Not allowed (a shopper subscribing to all): retrying would be refused again.
    status.value = 'closed'
    return
  }
  if (code === 4401) {
    // The token expired or was refused: get a fresh one before coming back.
    try {
      if (!(await refreshSession())) {
        status.value = 'closed'
        return
      }
    } catch {
      // The server could not be reached; the backoff below tries again.
    }
  }
  retry()
}

function retry() {
  if (!tokens.value || !wanted()) return
  status.value = 'reconnecting'
  const ceiling = Math.min(liveTuning.maxDelayMs, liveTuning.baseDelayMs * 2 ** attempt)
  attempt++
  const delay = ceiling / 2 + Math.random() * (ceiling / 2)
  clearTimeout(retryTimer)
  retryTimer = setTimeout(connect, delay)
}

function scheduleReauth() {
  clearTimeout(reauthTimer)
  const t = tokens.value
  if (!t) return
  const wait = Math.max(0, t.accessExpiresAt - liveTuning.reauthBeforeMs - Date.now())
  reauthTimer = setTimeout(() => {
    // The new token reaches the socket through the watch below.
    refreshSession().catch(() => undefined)
  }, wait)
}

function drop() {
  clearTimeout(retryTimer)
  clearTimeout(reauthTimer)
  clearTimeout(lingerTimer)
  retryTimer = reauthTimer = lingerTimer = undefined
  const ws = socket
  socket = null
  ready = false
  if (ws && ws.readyState !== WebSocket.CLOSED) ws.close(1000)
  status.value = 'closed'
}

// Follow the session: a logout closes the socket and forgets everything; a new access
// token (refresh) is sent on an authenticated socket; a login connects if anything waits.
watch(tokens, (t) => {
  if (!t) {
    closeLive()
    return
  }
  if (ready && t.accessToken !== sentToken) {
    sentToken = t.accessToken
    send({ type: 'auth', token: t.accessToken })
  } else if (!socket && wanted() && !retryTimer) {
    connect()
  }
})

function wake() {
  clearTimeout(lingerTimer)
  lingerTimer = undefined
  if (!socket && !retryTimer) connect()
}

function release() {
  if (wanted()) return
  clearTimeout(lingerTimer)
  lingerTimer = setTimeout(drop, liveTuning.lingerMs)
}

function autoStop(stop: () => void) {
  if (getCurrentScope()) onScopeDispose(stop)
  return stop
}

/**
 * watchOrders follows orders by id: pass ids, or {id: version} with the version the caller
 * already has (from a REST fetch) so that only later changes are sent. Returns a stop
 * function; inside a component's setup it also stops when the component unmounts.
 */
function watchOrders(ids: string[] | Record<string, number>): () => void {
  const entries: [string, number][] = Array.isArray(ids) ? ids.map((id) => [id, 0]) : Object.entries(ids)
  const fresh: string[] = []
  for (const [id, v] of entries) {
    if (v > (versions.get(id) ?? 0)) versions.set(id, v)
    const n = watchers.get(id) ?? 0
    watchers.set(id, n + 1)
    if (n === 0) fresh.push(id)
  }
  subscribe(fresh)
  wake()
  let stopped = false
  return autoStop(() => {
    if (stopped) return
    stopped = true
    const gone: string[] = []
    for (const [id] of entries) {
      const n = watchers.get(id)
      if (n === undefined) continue // forgotten at logout
      if (n > 1) watchers.set(id, n - 1)
      else {
        watchers.delete(id)
        gone.push(id)
      }
    }
    if (gone.length && ready) send({ type: 'unsubscribe', orders: gone })
    if (allWatchers === 0) gone.forEach((id) => (versions.delete(id), orders.delete(id)))
    release()
  })
}

/** watchAll follows every order (operators and admins; a shopper's socket is closed with 4403). */
function watchAll(): () => void {
  allWatchers++
  if (allWatchers === 1 && ready) send({ type: 'subscribe', all: true })
  wake()
  let stopped = false
  return autoStop(() => {
    if (stopped || allWatchers === 0) return
    stopped = true
    allWatchers--
    if (allWatchers === 0 && ready) send({ type: 'unsubscribe', all: true })
    release()
  })
}

/** onEvent calls cb with each new event; returns a function that stops it (automatic in a component). */
function onEvent(cb: (e: WsEvent) => void): () => void {
  eventListeners.add(cb)
  return autoStop(() => eventListeners.delete(cb))
}

/**
 * onOpen calls cb each time the socket is ready, with reconnected = true after a loss.
 * Pages that watch all orders refetch their list then: the all stream does not replay.
 */
function onOpen(cb: (reconnected: boolean) => void): () => void {
  openListeners.add(cb)
  return autoStop(() => openListeners.delete(cb))
}

/** closeLive closes the socket and forgets all subscriptions and orders (logout). */
export function closeLive() {
  drop()
  watchers.clear()
  allWatchers = 0
  versions.clear()
  orders.clear()
  attempt = 0
  everOpened = false
}

export function useLive() {
  return {
    /** 'connecting' | 'open' | 'reconnecting' | 'closed'; the banner shows 'reconnecting'. */
    status: readonly(status),
    /** Latest order per id, as the last event carried it. */
    orders: readonly(orders),
    watchOrders,
    watchAll,
    onEvent,
    onOpen,
    close: closeLive,
  }
}
