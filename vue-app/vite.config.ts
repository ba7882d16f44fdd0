import { fileURLToPath, URL } from 'node:url'
import { readFileSync } from 'node:fs'

import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'
import AutoImport from 'unplugin-auto-import/vite'
import Components from 'unplugin-vue-components/vite'
import { ElementPlusResolver } from 'unplugin-vue-components/resolvers'

import { initialSize } from './build/initialSize.ts'

const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as { version: string }

// The Go node the dev server forwards the API, auth and WebSocket to; override with
// ORDERMESH_API=http://127.0.0.1:38080 npm run dev.
const api = process.env.ORDERMESH_API ?? 'http://127.0.0.1:8080'

export default defineConfig({
  plugins: [
    vue(),
    // Element Plus on demand: components used in templates and the ElMessage/ElMessageBox
    // services are imported (with their CSS) only where used, so each route chunk carries
    // only its own widgets. The generated .d.ts files are committed for type-checking.
    AutoImport({
      resolvers: [ElementPlusResolver()],
      dts: 'auto-imports.d.ts',
    }),
    Components({
      resolvers: [ElementPlusResolver()],
      dts: 'components.d.ts',
      // Our own components are imported explicitly; only Element Plus is resolved.
      dirs: [],
    }),
    initialSize({
      budget: 300 * 1024,
      // The shopper's first page (the catalog at /); its view is added by the shopper work.
      firstPage: ['src/views/shop/CatalogView.vue'],
    }),
  ],
  define: {
    __APP_VERSION__: JSON.stringify(pkg.version),
  },
  resolve: {
    alias: {
      '@': fileURLToPath(new URL('./src', import.meta.url)),
    },
  },
  server: {
    proxy: {
      '/api': api,
      '/auth': api,
      '/ws': { target: api, ws: true },
    },
  },
  build: {
    reportCompressedSize: true,
  },
})
