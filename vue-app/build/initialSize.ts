import { gzipSync } from 'node:zlib'
import type { Plugin } from 'vite'

// initialSize reports, after `vite build`, the gzip size of the JavaScript a browser must
// load before the first page shows: the entry chunk, the chunks it imports statically
// (transitively), and the chunks of the first page's lazily imported view(s) with their
// static imports. The build fails when that total is over the budget, so a heavy import
// sneaking into the entry (ECharts, all of Element Plus) is caught by `npm run build`.

export interface InitialSizeOptions {
  /** Budget for the gzip total, in bytes. */
  budget: number
  /** Source files (relative to the project root) of the views shown on the first page. */
  firstPage: string[]
}

interface ChunkLike {
  type: 'chunk'
  fileName: string
  code: string
  isEntry: boolean
  imports: string[]
  facadeModuleId: string | null
}

export function initialSize(opts: InitialSizeOptions): Plugin {
  let root = process.cwd()
  return {
    name: 'ordermesh-initial-size',
    apply: 'build',
    configResolved(cfg) {
      root = cfg.root
    },
    generateBundle(_out, bundle) {
      const chunks = new Map<string, ChunkLike>()
      for (const item of Object.values(bundle)) {
        if (item.type === 'chunk') chunks.set(item.fileName, item as ChunkLike)
      }
      const starts = [...chunks.values()].filter((c) => c.isEntry)
      for (const file of opts.firstPage) {
        const id = `${root}/${file}`.replace(/\\/g, '/')
        const view = [...chunks.values()].find((c) => c.facadeModuleId?.replace(/\\/g, '/') === id)
        if (view) starts.push(view)
        else this.warn(`first-page view ${file} is not a chunk of its own; not counted`)
      }
      const seen = new Set<string>()
      const visit = (c: ChunkLike) => {
        if (seen.has(c.fileName)) return
        seen.add(c.fileName)
        for (const dep of c.imports) {
          const d = chunks.get(dep)
          if (d) visit(d)
        }
      }
      starts.forEach(visit)
      let total = 0
      const rows: string[] = []
      for (const file of [...seen].sort()) {
        const gz = gzipSync(chunks.get(file)!.code).length
        total += gz
        rows.push(`  ${file.padEnd(48)} ${(gz / 1024).toFixed(1).padStart(8)} kB gzip`)
      }
      const line = `initial JS of the first page: ${(total / 1024).toFixed(1)} kB gzip (budget ${(opts.budget / 1024).toFixed(0)} kB)`
      // Printed with console.log, not this.info: Vite hides plugin info messages.
      console.log(`\n${rows.join('\n')}\n${line}`)
      if (total > opts.budget) this.error(`${line}: over budget`)
    },
  }
}
