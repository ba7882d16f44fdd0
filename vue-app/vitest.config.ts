import { fileURLToPath } from 'node:url'
import { mergeConfig, defineConfig, configDefaults } from 'vitest/config'
import viteConfig from './vite.config.ts'

export default mergeConfig(
  viteConfig,
  defineConfig({
    test: {
      environment: 'jsdom',
      exclude: [...configDefaults.exclude, 'e2e/**'],
      root: fileURLToPath(new URL('./', import.meta.url)),
      // Element Plus components import their CSS; inlined, Vite handles those imports
      // (Node could not load .css files).
      setupFiles: ['src/__tests__/setup.ts'],
      server: { deps: { inline: ['element-plus'] } },
    },
  }),
)
