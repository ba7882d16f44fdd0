import { describe, expect, it, vi } from 'vitest'
import { ApiError } from '@/api'
import { useKeysetList, type Page } from '@/composables/useKeysetList'

interface Row {
  id: string
  n: number
}

// A server of pages keyed by cursor ('' is the first), answering when the test says so.
function pages(book: Record<string, Page<Row>>) {
  const asked: (string | undefined)[] = []
  const pending: { cursor: string | undefined; answer: () => void; fail: (e: unknown) => void }[] = []
  const fetchPage = (cursor: string | undefined) =>
    new Promise<Page<Row>>((ok, fail) => {
      asked.push(cursor)
      pending.push({ cursor, answer: () => ok(book[cursor ?? '']!), fail })
    })
  return { fetchPage, asked, pending }
}

const r = (id: string, n = 0): Row => ({ id, n })

describe('useKeysetList', () => {
  it('loads the first page, then appends the next by its cursor until the last', async () => {
    const srv = pages({
      '': { items: [r('c'), r('b')], next: 'k1' },
      k1: { items: [r('a')], next: '' },
    })
    const list = useKeysetList(srv.fetchPage, (x) => x.id)
    const first = list.reload()
    expect(list.loading.value).toBe(true)
    srv.pending[0]!.answer()
    await first
    expect(list.items.value.map((x) => x.id)).toEqual(['c', 'b'])
    expect(list.next.value).toBe('k1')
    expect(list.loaded.value).toBe(true)

    const more = list.loadMore()
    srv.pending[1]!.answer()
    await more
    expect(srv.asked).toEqual([undefined, 'k1'])
    expect(list.items.value.map((x) => x.id)).toEqual(['c', 'b', 'a'])
    expect(list.next.value).toBe('')
    await list.loadMore() // the last page: nothing more to ask
    expect(srv.asked).toHaveLength(2)
    expect(list.loading.value).toBe(false)
  })

  it('drops a row the next page repeats (it moved down while paging)', async () => {
    const srv = pages({
      '': { items: [r('c'), r('b')], next: 'k1' },
      k1: { items: [r('b', 9), r('a')], next: '' },
    })
    const list = useKeysetList(srv.fetchPage, (x) => x.id)
    const p = list.reload()
    srv.pending[0]!.answer()
    await p
    const q = list.loadMore()
    srv.pending[1]!.answer()
    await q
    expect(list.items.value).toEqual([r('c'), r('b'), r('a')])
  })

  it('keeps the answer of the latest reload when an earlier one answers last', async () => {
    const book: Record<string, Page<Row>> = { '': { items: [r('old')], next: 'x' } }
    const srv = pages(book)
    const list = useKeysetList(srv.fetchPage, (x) => x.id)
    const a = list.reload()
    const b = list.reload()
    book[''] = { items: [r('new')], next: '' }
    srv.pending[1]!.answer()
    await b
    srv.pending[0]!.answer() // overtaken: its rows are stale, so they are dropped
    await a
    expect(list.items.value).toEqual([r('new')])
    expect(list.next.value).toBe('')
    expect(list.loading.value).toBe(false)
  })

  it('keeps the rows and says why when a page fails', async () => {
    const srv = pages({ '': { items: [r('a')], next: 'k1' } })
    const list = useKeysetList(srv.fetchPage, (x) => x.id)
    const p = list.reload()
    srv.pending[0]!.answer()
    await p
    const q = list.loadMore()
    srv.pending[1]!.fail(new ApiError(503, 50300, 'busy', 'req-1'))
    await q
    expect(list.items.value).toEqual([r('a')])
    expect(list.error.value?.code).toBe(50300)
    expect(list.error.value?.requestId).toBe('req-1')
    expect(list.next.value).toBe('k1') // the same page may be asked again
  })

  it('replaces a shown row by key and adds none', async () => {
    const srv = pages({ '': { items: [r('a'), r('b')], next: '' } })
    const list = useKeysetList(srv.fetchPage, (x) => x.id)
    const p = list.reload()
    srv.pending[0]!.answer()
    await p
    expect(list.replace(r('b', 2))).toBe(true)
    expect(list.replace(r('z', 1))).toBe(false)
    expect(list.items.value).toEqual([r('a'), r('b', 2)])
  })

  // The shopper's list: page after page as it scrolls.
  it('reads page after page with the cursor it was given, and stops at the last', async () => {
    const fetch = numbered(250, 100)
    const p = useKeysetList(fetch, String)
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
    const fetch = numbered(1000, 100)
    const p = useKeysetList(fetch, String)
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
    const p = useKeysetList(fetch, String)
    const stale = p.loadMore()
    p.reset()
    expect(p.items.value).toEqual([])
    await p.loadMore()
    release({ items: [1, 2, 3], next: '3' })
    await stale
    expect(p.items.value).toEqual([7])
    expect(p.done.value).toBe(true)
  })

  it('retries a first page that failed on the next call', async () => {
    const fetch = numbered(300, 100)
    fetch.mockRejectedValueOnce(new Error('offline'))
    const p = useKeysetList(fetch, String)
    await p.loadMore()
    expect(p.error.value).toBeInstanceOf(ApiError)
    expect(p.items.value).toEqual([])
    await p.loadMore()
    expect(p.error.value).toBeNull()
    expect(p.items.value).toHaveLength(100)
  })

  it('replaces a row only when the condition on the shown one holds (a newer version)', async () => {
    const srv = pages({ '': { items: [r('a', 2)], next: '' } })
    const list = useKeysetList(srv.fetchPage, (x) => x.id)
    const p = list.reload()
    srv.pending[0]!.answer()
    await p
    expect(list.replace(r('a', 1), (shown) => shown.n < 1)).toBe(false)
    expect(list.replace(r('a', 3), (shown) => shown.n < 3)).toBe(true)
    expect(list.items.value).toEqual([r('a', 3)])
  })
})

// A server of `total` rows numbered from 1, `size` a page, whose cursor is the last row's number.
function numbered(total: number, size: number) {
  return vi.fn(async (cursor: string | undefined): Promise<Page<number>> => {
    const from = cursor ? Number(cursor) : 0
    const items = Array.from({ length: Math.max(0, Math.min(size, total - from)) }, (_, i) => from + i + 1)
    const end = from + items.length
    return { items, next: end < total ? String(end) : '' }
  })
}
