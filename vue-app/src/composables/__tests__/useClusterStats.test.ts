import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { effectScope } from 'vue'
import type { MemberStatus } from '@/api/cluster'
import { clusterStatus, member as fixture } from '@/__tests__/clusterFixtures'
import { useClusterStats } from '@/composables/useClusterStats'
import { envelope, failure, fakeServer } from '@/__tests__/fakeServer'

const GET = 'GET /api/v1/cluster'

const member = (id: string, rps: number, extra: Partial<MemberStatus> = {}) =>
  fixture(id, { requests_per_second: rps, ...extra })
const status = (...members: MemberStatus[]) => clusterStatus(members)

// Runs the composable in an effect scope, as a component would; stop() is the unmount.
function mount(opts = { intervalMs: 2000, windowMs: 10_000 }) {
  const scope = effectScope()
  const stats = scope.run(() => useClusterStats(opts))!
  return { stats, unmount: () => scope.stop() }
}

let visibility: DocumentVisibilityState = 'visible'

beforeEach(() => {
  vi.useFakeTimers()
  visibility = 'visible'
  vi.spyOn(document, 'visibilityState', 'get').mockImplementation(() => visibility)
})

afterEach(() => {
  vi.useRealTimers()
  vi.restoreAllMocks()
  vi.unstubAllGlobals()
})

function setVisibility(v: DocumentVisibilityState) {
  visibility = v
  document.dispatchEvent(new Event('visibilitychange'))
}

describe('useClusterStats', () => {
  it('polls at once, then every interval, and stops when unmounted', async () => {
    const server = fakeServer({ [GET]: () => envelope(status(member('1', 5))) })
    const { stats, unmount } = mount()
    await vi.advanceTimersByTimeAsync(0)
    expect(server.sent(GET)).toHaveLength(1)
    expect(stats.cluster.value?.members[0]?.requests_per_second).toBe(5)

    await vi.advanceTimersByTimeAsync(1999)
    expect(server.sent(GET)).toHaveLength(1)
    await vi.advanceTimersByTimeAsync(1)
    expect(server.sent(GET)).toHaveLength(2)
    await vi.advanceTimersByTimeAsync(4000)
    expect(server.sent(GET)).toHaveLength(4)

    unmount()
    await vi.advanceTimersByTimeAsync(20_000)
    expect(server.sent(GET)).toHaveLength(4)
  })

  it('never has two requests out: the next poll waits for the slow answer', async () => {
    let answer: (r: Response) => void = () => {}
    const server = fakeServer({ [GET]: () => new Promise<Response>((ok) => (answer = ok)) })
    const { stats, unmount } = mount()
    await vi.advanceTimersByTimeAsync(10_000) // five intervals while the first is out
    expect(server.sent(GET)).toHaveLength(1)
    void stats.refresh() // joins the poll in flight
    await vi.advanceTimersByTimeAsync(0)
    expect(server.sent(GET)).toHaveLength(1)

    answer(envelope(status(member('1', 1))))
    await vi.advanceTimersByTimeAsync(0)
    expect(stats.cluster.value).not.toBeNull()
    await vi.advanceTimersByTimeAsync(2000)
    expect(server.sent(GET)).toHaveLength(2)
    unmount()
  })

  it('keeps one series per member, trimmed to the window', async () => {
    let rps = 0
    fakeServer({ [GET]: () => envelope(status(member('1', ++rps), member('2', 100 + rps))) })
    const { stats, unmount } = mount({ intervalMs: 2000, windowMs: 10_000 })
    await vi.advanceTimersByTimeAsync(0)
    await vi.advanceTimersByTimeAsync(20_000) // 11 polls in all, 2 s apart
    const one = stats.history.value.get('1')!
    // Samples at most 10 s old: the last poll and the five before it.
    expect(one.map((s) => s.rps)).toEqual([6, 7, 8, 9, 10, 11])
    expect(stats.history.value.get('2')!.map((s) => s.rps)).toEqual([106, 107, 108, 109, 110, 111])
    expect(one.at(-1)!.at - one[0]!.at).toBeLessThanOrEqual(10_000)
    unmount()
  })

  it('forgets the series of a member that left once it is older than the window, and lists it as departed', async () => {
    let members = [member('1', 1), member('2', 2)]
    fakeServer({ [GET]: () => envelope(status(...members)) })
    const { stats, unmount } = mount({ intervalMs: 2000, windowMs: 10_000 })
    await vi.advanceTimersByTimeAsync(0)
    members = [member('1', 1)]
    await vi.advanceTimersByTimeAsync(2000)
    expect(stats.departed.value.map((m) => m.id)).toEqual(['2'])
    expect(stats.history.value.has('2')).toBe(true) // its last minutes still show
    await vi.advanceTimersByTimeAsync(12_000)
    expect(stats.history.value.has('2')).toBe(false)
    expect(stats.departed.value.map((m) => m.id)).toEqual(['2'])
    expect(stats.member('2')?.http).toBe('127.0.0.1:802')
    unmount()
  })

  it('records no figures for a member that did not answer', async () => {
    fakeServer({ [GET]: () => envelope(status(member('1', 4), member('2', 0, { activations: -1 }))) })
    const { stats, unmount } = mount()
    await vi.advanceTimersByTimeAsync(0)
    expect(stats.history.value.get('2')).toEqual([{ at: expect.any(Number), rps: null, p50: null, p99: null }])
    unmount()
  })

  it('keeps the last data when a poll fails, reports the error, and clears it on the next success', async () => {
    let fail = false
    const server = fakeServer({
      [GET]: () => (fail ? failure(503, 50300, 'busy', 'req-1') : envelope(status(member('1', 7)))),
    })
    const { stats, unmount } = mount()
    await vi.advanceTimersByTimeAsync(0)
    const before = stats.updatedAt.value
    fail = true
    await vi.advanceTimersByTimeAsync(2000)
    expect(stats.error.value?.code).toBe(50300)
    expect(stats.error.value?.requestId).toBe('req-1')
    expect(stats.cluster.value?.members[0]?.requests_per_second).toBe(7)
    expect(stats.updatedAt.value).toBe(before)
    expect(stats.history.value.get('1')).toHaveLength(1)

    // It keeps polling after a failure.
    fail = false
    await vi.advanceTimersByTimeAsync(2000)
    expect(server.sent(GET)).toHaveLength(3)
    expect(stats.error.value).toBeNull()
    unmount()
  })

  it('survives a network failure', async () => {
    const fetch = vi.fn(async () => {
      throw new TypeError('Failed to fetch')
    })
    vi.stubGlobal('fetch', fetch)
    const { stats, unmount } = mount()
    await vi.advanceTimersByTimeAsync(0)
    expect(stats.error.value?.code).toBe('network')
    expect(stats.cluster.value).toBeNull()
    await vi.advanceTimersByTimeAsync(2000)
    expect(fetch).toHaveBeenCalledTimes(2)
    unmount()
  })

  it('stops while the page is hidden and polls at once when it shows again', async () => {
    const server = fakeServer({ [GET]: () => envelope(status(member('1', 1))) })
    const { unmount } = mount()
    await vi.advanceTimersByTimeAsync(0)
    setVisibility('hidden')
    await vi.advanceTimersByTimeAsync(30_000)
    expect(server.sent(GET)).toHaveLength(1)
    setVisibility('visible')
    await vi.advanceTimersByTimeAsync(0)
    expect(server.sent(GET)).toHaveLength(2)
    await vi.advanceTimersByTimeAsync(2000)
    expect(server.sent(GET)).toHaveLength(3)

    // After unmounting, showing the page again starts nothing.
    unmount()
    setVisibility('hidden')
    setVisibility('visible')
    await vi.advanceTimersByTimeAsync(10_000)
    expect(server.sent(GET)).toHaveLength(3)
  })

  it('does not start while the page is hidden', async () => {
    visibility = 'hidden'
    const server = fakeServer({ [GET]: () => envelope(status(member('1', 1))) })
    const { unmount } = mount()
    await vi.advanceTimersByTimeAsync(10_000)
    expect(server.sent(GET)).toHaveLength(0)
    unmount()
  })
})
