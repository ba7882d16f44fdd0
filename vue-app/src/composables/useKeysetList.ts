import { computed, ref, shallowRef } from 'vue'
import { ApiError } from '@/api'

// useKeysetList: a list read in keyset pages (the API's `cursor` / `next_cursor`: pass the
// last page's next_cursor to get the following one, empty on the last page). The operator
// tables load the first page and more on request; the shopper's orders load page after
// page as the list scrolls. Only one page is asked at a time (a scroll fires many "near
// the end" signals), a reload that is overtaken by another (filters changed again while it
// was in flight) is dropped, so the rows always match the latest filters, and a row that
// moved down between pages while paging is not shown twice.

export interface Page<T> {
  items: T[]
  /** The cursor of the next page; empty on the last one. */
  next: string
}

export function useKeysetList<T>(fetchPage: (cursor: string | undefined) => Promise<Page<T>>, keyOf: (item: T) => string) {
  /** The rows loaded, in order. Shallow: replaced as a whole, its rows are not made reactive. */
  const items = shallowRef<T[]>([])
  const next = ref('')
  const loading = ref(false)
  const loaded = ref(false) // the first page has arrived since the last reset
  const error = shallowRef<ApiError | null>(null)
  /** Every page is loaded. */
  const done = computed(() => loaded.value && !next.value)
  let generation = 0
  let inflight: Promise<void> | null = null

  function load(cursor: string | undefined, append: boolean): Promise<void> {
    const gen = ++generation
    loading.value = true
    error.value = null
    inflight = (async () => {
      try {
        const page = await fetchPage(cursor)
        if (gen !== generation) return
        items.value = append ? mergeAppend(items.value, page.items, keyOf) : page.items
        next.value = page.next
        loaded.value = true
      } catch (e) {
        if (gen === generation) error.value = e instanceof ApiError ? e : new ApiError(0, 'unknown', String(e), null)
      } finally {
        if (gen === generation) {
          loading.value = false
          inflight = null
        }
      }
    })()
    return inflight
  }

  /** reload reads the first page again (a filter change, a refresh); the rows stay until it answers. */
  const reload = () => load(undefined, false)

  /** reset forgets every row at once; the next loadMore reads the first page. */
  function reset() {
    generation++
    inflight = null
    items.value = []
    next.value = ''
    loaded.value = false
    loading.value = false
    error.value = null
  }

  /**
   * loadMore reads the next page: the first one if none has arrived yet, nothing after the
   * last; while a page is on its way, it waits for that one instead of asking again.
   */
  function loadMore(): Promise<void> {
    if (inflight) return inflight
    if (!loaded.value) return reload()
    if (!next.value) return Promise.resolve()
    return load(next.value, true)
  }

  /**
   * replace swaps the shown row with item's key for item (a live update), if `when` (given
   * the shown row) agrees; it adds no row. It returns whether it replaced one.
   */
  function replace(item: T, when: (shown: T) => boolean = () => true): boolean {
    const i = items.value.findIndex((x) => keyOf(x) === keyOf(item))
    if (i < 0 || !when(items.value[i]!)) return false
    const copy = items.value.slice()
    copy[i] = item
    items.value = copy
    return true
  }

  return { items, next, loading, loaded, done, error, reload, reset, loadMore, replace }
}

// A row that moved between pages while paging (a newer row pushed it down) would come
// twice; the later copy is dropped.
function mergeAppend<T>(rows: T[], more: T[], keyOf: (item: T) => string): T[] {
  const seen = new Set(rows.map(keyOf))
  return [...rows, ...more.filter((x) => !seen.has(keyOf(x)))]
}
