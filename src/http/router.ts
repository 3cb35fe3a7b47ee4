// Finds the route of a request in the route table (src/http/routes.ts), or says why there is
// none: a path the API has but not for this method (405, with the methods it has), a path it does
// not have (404), or a request target that is no path (400). HEAD is answered by every GET route.
//
// Paths are matched a whole segment at a time: the table's segments are literals or one
// `:param`. Each segment is %-decoded on its own, so an encoded slash stays inside its segment
// (`/backup/a%2Fb` is the id `a/b`, refused by the id check). A query (`?…`) or fragment (`#…`)
// is not part of the path. Matching is case-sensitive, and `/backup/` and `/backup//cancel` have
// an empty parameter.
//
// A router of its own instead of a library: the table has 15 routes of at most three segments;
// this walk takes ~0.2 µs of a poll's ~13 µs of CPU, and nothing to load.
import type { Route } from './route.ts'

/**
 * The longest path parameter matched (ids are at most 128 characters). A longer one matches no
 * route, so its path answers 405 for every method: the answer managers have had for it.
 */
export const MAX_PARAM_LENGTH = 1024

const METHOD_ORDER = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE']
/** At most this many targets of at most this length are remembered (~64 KiB). */
const CACHED_URLS = 256
const CACHED_URL_MAX_LENGTH = 256

export type Found =
  | { kind: 'route'; route: Route; params: Record<string, string>; query: string }
  | { kind: 'method not allowed'; allow: readonly string[] }
  | { kind: 'not found' }
  | { kind: 'bad path' }

interface Node {
  literal: Map<string, Node>
  param: { name: string; node: Node } | undefined
  routes: Map<string, Route>
  /** The Allow header's methods, HEAD included. */
  allow: string[]
}

const newNode = (): Node => ({ literal: new Map(), param: undefined, routes: new Map(), allow: [] })

const NOT_FOUND: Found = { kind: 'not found' }
const BAD_PATH: Found = { kind: 'bad path' }

export class Router {
  readonly #root = newNode()
  readonly #notAllowed = new Map<Node, Found>()
  readonly #cache = new Map<string, Map<string, Found>>()

  constructor(routes: readonly Route[]) {
    for (const route of routes) this.#add(route)
    for (const node of this.#nodes(this.#root)) {
      node.allow.sort((a, b) => METHOD_ORDER.indexOf(a) - METHOD_ORDER.indexOf(b))
      if (node.allow.length > 0) this.#notAllowed.set(node, { kind: 'method not allowed', allow: node.allow })
    }
  }

  /**
   * `url` as Node gives it: the request target (origin form, or absolute form). The answers for
   * the last few hundred short targets are kept: a manager polls the same few URLs over and over
   * (~1 µs of a poll's ~14 µs of CPU). A kept answer and its params are shared: read only.
   */
  find(method: string, url: string): Found {
    const cached = this.#cache.get(url)?.get(method)
    if (cached !== undefined) return cached
    const found = this.#find(method, url)
    if (url.length <= CACHED_URL_MAX_LENGTH) {
      if (this.#cache.size >= CACHED_URLS) this.#cache.clear()
      let byMethod = this.#cache.get(url)
      if (byMethod === undefined) this.#cache.set(url, (byMethod = new Map()))
      if (found.kind === 'route') Object.freeze(found.params)
      byMethod.set(method, found)
    }
    return found
  }

  #find(method: string, url: string): Found {
    let target = url
    if (target.charCodeAt(0) !== 47 /* / */) {
      const path = absoluteFormPath(target)
      if (path === undefined) return target === '*' ? NOT_FOUND : BAD_PATH
      target = path
    }
    const end = pathEnd(target)
    const path = end < 0 ? target : target.slice(0, end)
    const segments = path.split('/') // segments[0] is the '' before the leading slash
    if (path.includes('%')) {
      for (let i = 1; i < segments.length; i++) {
        const segment = segments[i] as string
        if (!segment.includes('%')) continue
        try {
          segments[i] = decodeURIComponent(segment)
        } catch {
          return BAD_PATH
        }
      }
    }
    const params: Record<string, string> = {}
    const node = walk(this.#root, segments, 1, params)
    if (node === undefined) return NOT_FOUND
    let tooLong = false
    for (const name in params) if ((params[name] as string).length > MAX_PARAM_LENGTH) tooLong = true
    const route = tooLong ? undefined : (node.routes.get(method) ?? (method === 'HEAD' ? node.routes.get('GET') : undefined))
    if (route === undefined) return this.#notAllowed.get(node) ?? NOT_FOUND
    return { kind: 'route', route, params, query: end < 0 ? '' : target.slice(end + 1) }
  }

  #add(route: Route): void {
    let node = this.#root
    for (const segment of route.path.slice(1).split('/')) {
      if (segment.startsWith(':')) {
        const name = segment.slice(1)
        if (node.param && node.param.name !== name)
          throw new Error(`${route.path}: one parameter per position (:${node.param.name} is there already)`)
        node.param ??= { name, node: newNode() }
        node = node.param.node
      } else {
        let next = node.literal.get(segment)
        if (next === undefined) node.literal.set(segment, (next = newNode()))
        node = next
      }
    }
    if (node.routes.has(route.method)) throw new Error(`${route.method} ${route.path} is in the route table twice`)
    node.routes.set(route.method, route)
    node.allow.push(route.method)
    if (route.method === 'GET') node.allow.push('HEAD')
  }

  *#nodes(node: Node): Generator<Node> {
    yield node
    for (const child of node.literal.values()) yield* this.#nodes(child)
    if (node.param) yield* this.#nodes(node.param.node)
  }
}

/**
 * The node with routes that the segments from `index` on lead to, literals tried before a
 * parameter; the parameters' values are added to `params` on the way back.
 */
function walk(node: Node, segments: string[], index: number, params: Record<string, string>): Node | undefined {
  if (index === segments.length) return node.routes.size > 0 ? node : undefined
  const segment = segments[index] as string
  const literal = node.literal.get(segment)
  if (literal !== undefined) {
    const found = walk(literal, segments, index + 1, params)
    if (found !== undefined) return found
  }
  const param = node.param
  if (param === undefined) return undefined
  const found = walk(param.node, segments, index + 1, params)
  if (found !== undefined) params[param.name] = segment
  return found
}

/** Where the path ends: at the first `?` or `#`, or -1. */
function pathEnd(target: string): number {
  const query = target.indexOf('?')
  const fragment = target.indexOf('#')
  if (query < 0) return fragment
  return fragment < 0 || query < fragment ? query : fragment
}

/**
 * The path of an absolute-form target (`http://host/backup/x?y`), as a proxy would send it;
 * undefined when it is not one (no http or https URL with a host, or a fragment).
 */
function absoluteFormPath(target: string): string | undefined {
  const match = /^https?:\/\/[^/?#]+/i.exec(target)
  if (match === null || target.includes('#') || URL.parse(target) === null) return undefined
  const rest = target.slice(match[0].length)
  if (rest === '') return '/'
  return rest.startsWith('?') ? `/${rest}` : rest
}
