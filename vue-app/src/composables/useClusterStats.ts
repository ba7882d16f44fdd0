import { computed, getCurrentScope, onScopeDispose, ref, shallowRef } from 'vue'
import { ApiError } from '@/api'
import { getCluster, type ClusterStatus, type MemberStatus } from '@/api/cluster'

// useClusterStats polls GET /api/v1/cluster for the cluster page and keeps, per member, the
// figures of the last few minutes for the charts.
//
// - One request at a time: the next poll is scheduled when the previous one has answered
//   (a slow node never piles requests up), and refresh() during a poll joins that poll.
// - Only while the page is visible: a hidden tab stops polling and polls at once when it
//   shows again; the scope's end (the page unmounting) stops it for good.
// - A failed poll keeps the last answer and sets `error` (the page shows a warning); the
//   next success clears it. It never throws.
// - Members that were listed and no longer are (a drained node that exited) are kept in
//   `departed` with their last figures, so that the page can show them as gone.

export const clusterTuning = {
  intervalMs: 2_000,
  /** How much history the charts show. */
  windowMs: 180_000,
  /** How many departed members to remember. */
  maxDeparted: 10,
}

/** One poll's figures of one member; null where the member did not answer. */
export interface Sample {
  at: number // ms since the epoch, when the answer arrived
  rps: number | null
  p50: number | null
  p99: number | null
}

export interface ClusterStatsOptions {
  intervalMs?: number
  windowMs?: number
}

export function useClusterStats(opts: ClusterStatsOptions = {}) {
  const intervalMs = opts.intervalMs ?? clusterTuning.intervalMs
  const windowMs = opts.windowMs ?? clusterTuning.windowMs

  const cluster = shallowRef<ClusterStatus | null>(null)
  const error = shallowRef<ApiError | null>(null)
  const updatedAt = ref<number | null>(null)
  /** member id -> samples, oldest first, none older than the window. */
  const history = shallowRef<ReadonlyMap<string, Sample[]>>(new Map())
  /** Members seen before and absent from the last answer, most recent first. */
  const departed = shallowRef<MemberStatus[]>([])
  /** The last known member record per id (departed ones too), for labels. */
  const known = new Map<string, MemberStatus>()

  let running = false
  let timer: ReturnType<typeof setTimeout> | undefined
  let inFlight: Promise<void> | null = null

  function apply(st: ClusterStatus, now: number) {
    const present = new Set(st.members.map((m) => m.id))
    const gone = [...known.values()].filter((m) => !present.has(m.id) && !departed.value.some((d) => d.id === m.id))
    departed.value = [...gone, ...departed.value.filter((d) => !present.has(d.id))].slice(0, clusterTuning.maxDeparted)
    for (const m of st.members) known.set(m.id, m)

    const next = new Map<string, Sample[]>()
    const oldest = now - windowMs
    for (const [id, samples] of history.value) {
      const kept = samples.filter((s) => s.at >= oldest)
      if (kept.length) next.set(id, kept)
    }
    for (const m of st.members) {
      const answered = m.activations >= 0
      const sample: Sample = {
        at: now,
        rps: answered ? m.requests_per_second : null,
        p50: answered ? m.latency_p50_ms : null,
        p99: answered ? m.latency_p99_ms : null,
      }
      next.set(m.id, [...(next.get(m.id) ?? []), sample])
    }
    history.value = next
    cluster.value = st
    updatedAt.value = now
  }

  /** poll asks for the cluster now, unless a request is already out (then it waits for that one). */
  function poll(): Promise<void> {
    if (inFlight) return inFlight
    clearTimeout(timer)
    timer = undefined
    inFlight = (async () => {
      try {
        const st = await getCluster()
        apply(st, Date.now())
        error.value = null
      } catch (e) {
        error.value = e instanceof ApiError ? e : new ApiError(0, 'unknown', String(e), null)
      } finally {
        inFlight = null
        if (running) timer = setTimeout(poll, intervalMs)
      }
    })()
    return inFlight
  }

  function start() {
    if (running) return
    running = true
    if (!inFlight) void poll()
  }

  function stop() {
    running = false
    clearTimeout(timer)
    timer = undefined
  }

  const hidden = () => typeof document !== 'undefined' && document.visibilityState === 'hidden'
  const onVisibility = () => (hidden() ? stop() : start())

  if (typeof document !== 'undefined') document.addEventListener('visibilitychange', onVisibility)
  if (!hidden()) start()
  if (getCurrentScope()) {
    onScopeDispose(() => {
      stop()
      if (typeof document !== 'undefined') document.removeEventListener('visibilitychange', onVisibility)
    })
  }

  return {
    cluster: computed(() => cluster.value),
    error: computed(() => error.value),
    updatedAt: computed(() => updatedAt.value),
    history: computed(() => history.value),
    departed: computed(() => departed.value),
    /** The last known record of a member, also after it left. */
    member: (id: string) => known.get(id),
    /** Poll now (after a drain); joins a poll in flight. */
    refresh: poll,
    start,
    stop,
  }
}
