/**
 * The dispatcher package's root directory (package.json, assets/), found from this module's own
 * place: one level up from dist/package-root.js in the checkout, and one level up from
 * dist/understudy.mjs in the bundle that `npm run package` installs under /usr/lib/understudy
 * (esbuild inlines this module, so import.meta.url is then the bundle's). The bundle keeps the same
 * layout: package.json and assets/ beside dist/.
 */
export const PACKAGE_ROOT = new URL('../', import.meta.url);
