import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { nextTick } from 'vue'
import { clearTokens, setTokens, type Order } from '@/api'
import { closeLive, liveTuning, useLive } from '@/composables/useLive'
import { envelope, fakeServer, session } from '@/__tests__/fakeServer'

// A WebSocket the test drives: it records what the client sends and lets the test open,
// answer and close it.
class FakeSocket {
  static readonly CONNECTING = 0
  static readonly OPEN = 1
  static readonly CLOSING = 2
  static readonly CLOSED = 3
  static all: FakeSocket[] = []

  readyState = FakeSocket.CONNECTING
  sent: Record<string, unknown>[] = []
  closedWith: number | null = null
  onopen: (() => void) | null = null
  onmessage: ((m: { data: string }) => void) | null = null
  onclose: ((e: { code: number }) => void) | null = null
  onerror: (() => void) | null = null

  constructor(
    readonly url: string,
    readonly protocols?: string | string[],
  ) {
    FakeSocket.all.push(this)
  }
  send(data: string) {
    this.sent.push(JSON.parse(data))
  }
  close(code = 1000) {
    this.closedWith = code
    this.readyState = FakeSocket.CLOSED
    this.onclose?.({ code })
  }
  // Test side.
  open() {
    this.readyState = FakeSocket.OPEN
    this.onopen?.()
  }
  receive(frame: object) {
    this.onmessage?.({ data: JSON.stringify(frame) })
  }
  drop(code = 1006) {
    this.readyState = FakeSocket.CLOSED
    this.onclose?.({ code })
  }
  /** open and authenticate, as the server does. */
  ready() {
    this.open()
    this.receive({ type: 'ready', node: 'n1', subject: 'alice', role: 'shopper' })
  }
}

const last = () => FakeSocket.all[FakeSocket.all.length - 1]!
const order = (id: string, version: number) => ({ id, version, status: 'PAID' }) as Order
const event = (id: string, version: number) => ({
  type: 'event',
  order_id: id,
  version,
  event: { type: 'PaymentConfirmed', version },
  order: order(id, version),
})

beforeEach(() => {
  vi.useFakeTimers()
  vi.spyOn(Math, 'random').mockReturnValue(1) // the longest delay of each backoff step
  FakeSocket.all = []
  vi.stubGlobal('WebSocket', FakeSocket)
  closeLive()
  setTokens(session('alice', 'shopper'))
})
afterEach(() => {
  closeLive()
  clearTokens()
  vi.useRealTimers()
  vi.restoreAllMocks()
  vi.unstubAllGlobals()
})

describe('useLive', () => {
  it('authenticates in the first frame and subscribes with the versions it was given', async () => {
    const live = useLive()
    live.watchOrders({ o1: 3 })
    expect(FakeSocket.all).toHaveLength(1)
    expect(last().url).toBe(`ws://${location.host}/ws`)
    expect(live.status.value).toBe('connecting')
    last().open()
    expect(last().sent).toEqual([{ type: 'auth', token: 'access-alice-1' }])
    last().receive({ type: 'ready' })
    expect(live.status.value).toBe('open')
    expect(last().sent[1]).toEqual({ type: 'subscribe', orders: { o1: 3 } })

    live.watchOrders(['o2'])
    expect(last().sent[2]).toEqual({ type: 'subscribe', orders: { o2: 0 } })
  })

  it('keeps the latest order per id and drops events it has seen', () => {
    const live = useLive()
    const seen: number[] = []
    live.onEvent((e) => seen.push(e.version))
    live.watchOrders(['o1'])
    last().ready()
    last().receive(event('o1', 1))
    last().receive(event('o1', 2))
    last().receive(event('o1', 2)) // a replay overlapping the live stream
    expect(seen).toEqual([1, 2])
    expect(live.orders.get('o1')?.version).toBe(2)
  })

  it('reconnects with growing, capped delays and resubscribes with the last versions seen', () => {
    const live = useLive()
    live.watchOrders({ o1: 3, o2: 0 })
    last().ready()
    last().receive(event('o1', 4))
    last().receive(event('o2', 7))

    last().drop()
    expect(live.status.value).toBe('reconnecting')
    // Attempt 1 waits up to baseDelay; attempt 2 up to twice that.
    vi.advanceTimersByTime(liveTuning.baseDelayMs - 1)
    expect(FakeSocket.all).toHaveLength(1)
    vi.advanceTimersByTime(1)
    expect(FakeSocket.all).toHaveLength(2)
    last().drop()
    vi.advanceTimersByTime(2 * liveTuning.baseDelayMs - 1)
    expect(FakeSocket.all).toHaveLength(2)
    vi.advanceTimersByTime(1)
    expect(FakeSocket.all).toHaveLength(3)
    // Many failures later the delay stops growing at maxDelay.
    for (let i = 0; i < 12; i++) {
      last().drop()
      vi.advanceTimersByTime(liveTuning.maxDelayMs)
    }
    expect(FakeSocket.all).toHaveLength(15)

    last().ready()
    expect(live.status.value).toBe('open')
    expect(last().sent).toEqual([
      { type: 'auth', token: 'access-alice-1' },
      { type: 'subscribe', orders: { o1: 4, o2: 7 } },
    ])
    // A success resets the backoff.
    last().drop()
    vi.advanceTimersByTime(liveTuning.baseDelayMs)
    expect(FakeSocket.all).toHaveLength(16)
  })

  it('tells listeners when it reconnected, so that pages watching all orders refetch', () => {
    const live = useLive()
    const opens: boolean[] = []
    live.onOpen((again) => opens.push(again))
    live.watchAll()
    last().ready()
    expect(last().sent[1]).toEqual({ type: 'subscribe', all: true })
    last().drop(1001) // the node drains
    vi.advanceTimersByTime(liveTuning.baseDelayMs)
    last().ready()
    expect(opens).toEqual([false, true])
  })

  it('sends a refreshed token on the open socket, and refreshes before the token expires', async () => {
    const srv = fakeServer({ 'POST /auth/refresh': () => envelope(session('alice', 'shopper', 3)) })
    const live = useLive()
    live.watchOrders(['o1'])
    last().ready()
    setTokens(session('alice', 'shopper', 2)) // e.g. an API call refreshed
    await nextTick()
    expect(last().sent.at(-1)).toEqual({ type: 'auth', token: 'access-alice-2' })

    // session() tokens live 900 s; the socket refreshes reauthBefore ahead of that.
    last().receive({ type: 'ready' })
    await vi.advanceTimersByTimeAsync(900_000 - liveTuning.reauthBeforeMs)
    expect(srv.sent('POST /auth/refresh')).toHaveLength(1)
    await vi.waitFor(() => expect(last().sent.at(-1)).toEqual({ type: 'auth', token: 'access-alice-3' }))
    expect(FakeSocket.all).toHaveLength(1)
  })

  it('refreshes the token before reconnecting after 4401', async () => {
    const srv = fakeServer({ 'POST /auth/refresh': () => envelope(session('alice', 'shopper', 2)) })
    const live = useLive()
    live.watchOrders(['o1'])
    last().ready()
    last().drop(4401)
    await vi.advanceTimersByTimeAsync(liveTuning.baseDelayMs)
    expect(srv.sent('POST /auth/refresh')).toHaveLength(1)
    expect(FakeSocket.all).toHaveLength(2)
    last().open()
    expect(last().sent[0]).toEqual({ type: 'auth', token: 'access-alice-2' })
  })

  it('closes on logout and does not come back', async () => {
    const live = useLive()
    live.watchOrders(['o1'])
    const socket = last()
    socket.ready()
    socket.receive(event('o1', 1))
    clearTokens()
    await nextTick()
    expect(socket.closedWith).toBe(1000)
    expect(live.status.value).toBe('closed')
    expect(live.orders.size).toBe(0)
    vi.advanceTimersByTime(liveTuning.maxDelayMs * 2)
    expect(FakeSocket.all).toHaveLength(1)
  })

  it('closes a while after the last watcher stops', () => {
    const live = useLive()
    const stop = live.watchOrders(['o1'])
    const socket = last()
    socket.ready()
    stop()
    expect(socket.sent.at(-1)).toEqual({ type: 'unsubscribe', orders: ['o1'] })
    vi.advanceTimersByTime(liveTuning.lingerMs)
    expect(socket.closedWith).toBe(1000)
    expect(live.status.value).toBe('closed')
  })
})
