// GET /openapi.json (OpenAPI 3.1, built from the route table of src/http/routes.ts by
// src/http/openapi.ts) and GET /docs (a page rendered from that document on the server: no
// script, no CDN, so it works on a VM without internet). Both public: they hold no secrets, only
// the API's shape. Both are made on the first request and kept (the routes do not change while
// the agent runs); the modules that make them are loaded only then.
import type { Answer } from './exchange.ts'
import type { Route } from './route.ts'

/** A failed build is answered 500 now (src/http/server.ts); the next request tries again. */
function kept(make: () => Promise<Buffer>, forget: () => void): Promise<Buffer> {
  const made = make()
  made.catch(forget)
  return made
}

export interface ApiDocs {
  openApi: () => Promise<Answer>
  docsPage: () => Promise<Answer>
}

/**
 * The two handlers for the table `routes` returns. A function, read at the first request: the
 * table holds these handlers, so it is not complete while they are made.
 */
export function apiDocs(routes: () => readonly Route[]): ApiDocs {
  let document: Promise<Buffer> | undefined
  let page: Promise<Buffer> | undefined

  const openApiBytes = () =>
    (document ??= kept(
      () => import('./openapi.ts').then((m) => Buffer.from(JSON.stringify(m.openApiDocument(routes())))),
      () => (document = undefined),
    ))

  return {
    async openApi() {
      return { status: 200, bytes: await openApiBytes(), type: 'application/json; charset=utf-8' }
    },
    async docsPage() {
      page ??= kept(
        async () => {
          const [{ openApiDocument }, { renderDocsPage }] = await Promise.all([import('./openapi.ts'), import('./docs-page.ts')])
          return Buffer.from(renderDocsPage(openApiDocument(routes())))
        },
        () => (page = undefined),
      )
      return { status: 200, bytes: await page, type: 'text/html; charset=utf-8' }
    },
  }
}
