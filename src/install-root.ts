// The installation's root folder: the checkout, or the unpacked release. This module sits one
// level below it wherever it runs (src/install-root.ts, or a chunk of the release's dist/ bundle),
// so every file the agent ships beside its code is found from here.
export const INSTALL_ROOT = new URL('../', import.meta.url)
