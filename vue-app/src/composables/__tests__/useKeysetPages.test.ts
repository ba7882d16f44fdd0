import { describe, expect, it, vi } from 'vitest'
import { useKeysetPages, type Page } from '@/composables/useKeysetPages'

// A server of `total` rows numbered from 1, `size` a page, whose cursor is the last row's number.
function pagedServer(total: number, size: number) {
  return vi.fn(async (cursor: string | undefined): Promise<Page<number>> => {
    const from = cursor ? Number(cursor) : 0
    const items = Array.from({ length: Math.max(0, Math.min(size, total - from)) }, (_, i) => from + i + 1)
    const end = from + items.length
    return { items, next: end < total ? String(end) : '' }
  })
}

describe('useKeysetPages', () => {
  it('reads page after page with the cursor it was given, and stops at the last', async () => {
    const fetch = pagedServer(250, 100)
    const p = useKeysetPages(fetch)
    await p.loadMore()
    expect(p.items.value).toHaveLength(100)
    await p.loadMore()
    await p.loadMore()
    expect(p.items.value).toHaveLength(250)
    expect(p.items.value.at(-1)).toBe(250)
    expect(p.done.value).toBe(true)
    await p.loadMore() // nothing more to read
    expect(fetch.mock.calls.map((c) => c[0])).toEqual([undefined, '100', '200'])
  })

  it('has one page in flight at a time however often it is asked', async () => {
    const fetch = pagedServer(1000, 100)
    const p = useKeysetPages(fetch)
    await Promise.all([p.loadMore(), p.loadMore(), p.loadMore()])
    expect(fetch).toHaveBeenCalledTimes(1)
    expect(p.items.value).toHaveLength(100)
  })

  it('drops an answer for the list before a reset (a new filter)', async () => {
    let release!: (p: Page<number>) => void
    const fetch = vi.fn(
      (cursor: string | undefined) =>
        new Promise<Page<number>>((ok) => {
          if (cursor === undefined && fetch.mock.calls.length === 1) release = ok
          else ok({ items: [7], next: '' })
        }),
    )
    const p = useKeysetPages(fetch)
    const stale = p.loadMore()
    p.reset()
    await p.loadMore()
    release({ items: [1, 2, 3], next: '3' })
    await stale
    expect(p.items.value).toEqual([7])
    expect(p.done.value).toBe(true)
  })

  it('keeps the rows and reports the error of a failed page; the next call retries it', async () => {
    const fetch = pagedServer(300, 100)
    fetch.mockRejectedValueOnce(new Error('offline'))
    const p = useKeysetPages(fetch)
    await p.loadMore()
    expect(p.error.value).toBeInstanceOf(Error)
    expect(p.items.value).toEqual([])
    await p.loadMore()
    expect(p.error.value).toBeNull()
    expect(p.items.value).toHaveLength(100)
  })

  it('replaces a loaded row (a live update)', async () => {
    const p = useKeysetPages(pagedServer(5, 10))
    await p.loadMore()
    p.replace((n) => n === 3, 30)
    expect(p.items.value).toEqual([1, 2, 30, 4, 5])
  })
})
