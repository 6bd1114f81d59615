/**
 * Injected by esbuild into the CommonJS bundle (image-build/bundle.ts), where
 * `import.meta.url` is defined as this export: the URL of the bundle file, or in
 * a SEA the executable's.
 */
import { pathToFileURL } from 'node:url';

export const bootboxImportMetaUrl = pathToFileURL(__filename).href;
