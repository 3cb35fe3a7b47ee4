// The HTML of GET /docs, rendered once from the OpenAPI document: every path and method, its
// parameters, request fields and responses with their fields (nested fields as a.b).
import type { JsonSchema } from './json-schema.ts'
import type { OpenApiDocument, Operation } from './openapi.ts'

const METHODS = ['get', 'post', 'put', 'delete']

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
/** `code` spans from the descriptions' backticks, after escaping. */
const prose = (text: string | undefined) => escapeHtml(text ?? '').replace(/`([^`]+)`/g, '<code>$1</code>')

function typeOf(schema: JsonSchema): string {
  if (schema.const !== undefined) return JSON.stringify(schema.const)
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(' | ')
  if (schema.anyOf) return schema.anyOf.map(typeOf).join(' | ')
  if (schema.type === 'array' && schema.items) return `${typeOf(schema.items)}[]`
  return Array.isArray(schema.type) ? schema.type.join(' | ') : (schema.type ?? 'any')
}

/** The object inside `T`, `T | null`. */
function objectOf(schema: JsonSchema): JsonSchema | undefined {
  if (schema.properties) return schema
  return schema.anyOf?.map(objectOf).find((s) => s !== undefined)
}

function fieldRows(schema: JsonSchema, prefix = ''): string[] {
  const object = objectOf(schema) ?? (schema.type === 'array' && schema.items ? objectOf(schema.items) : undefined)
  if (!object?.properties) return []
  const rows: string[] = []
  const arrayMark = schema.type === 'array' ? '[]' : ''
  for (const [name, child] of Object.entries(object.properties)) {
    const path = `${prefix}${prefix ? arrayMark : ''}${name}`
    const required = object.required?.includes(name) ? 'yes' : ''
    rows.push(
      `<tr><td><code>${escapeHtml(path)}</code></td><td>${escapeHtml(typeOf(child))}</td><td>${required}</td><td>${prose(child.description)}</td></tr>`,
    )
    rows.push(...fieldRows(child, `${path}${child.type === 'array' ? '[]' : ''}.`))
  }
  return rows
}

function fieldTable(schema: JsonSchema | undefined): string {
  const rows = schema ? fieldRows(schema) : []
  if (rows.length === 0) return ''
  return `<table><thead><tr><th>field</th><th>type</th><th>always</th><th>meaning</th></tr></thead><tbody>${rows.join('')}</tbody></table>`
}

function firstSchema(content: Record<string, { schema?: JsonSchema }> | undefined): JsonSchema | undefined {
  return content ? Object.values(content)[0]?.schema : undefined
}

function operationSection(path: string, method: string, op: Operation): string {
  const id = `${method}-${path}`.replace(/[^A-Za-z0-9]+/g, '-')
  const auth =
    op.security && op.security.length === 0 ? '<span class="public">no credentials</span>' : '<span class="auth">Basic auth</span>'
  const parameters = (op.parameters ?? []).map(
    (p) =>
      `<tr><td><code>${escapeHtml(p.name)}</code></td><td>${escapeHtml(p.in)}</td><td>${p.required ? 'yes' : ''}</td><td>${prose(p.description ?? p.schema?.description)}</td></tr>`,
  )
  const body = firstSchema(op.requestBody?.content)
  const responses = Object.entries(op.responses ?? {}).map(([status, r]) => {
    const schema = firstSchema(r.content)
    return `<div class="response"><h4><span class="status">${escapeHtml(status)}</span> ${prose(r.description)}</h4>${fieldTable(schema)}</div>`
  })
  return [
    `<section class="operation" id="${id}">`,
    `<h3><span class="method ${method}">${method.toUpperCase()}</span> <span class="path">${escapeHtml(path)}</span> ${auth}</h3>`,
    `<p class="summary">${prose(op.summary)}</p>`,
    op.description ? `<p>${prose(op.description)}</p>` : '',
    parameters.length > 0
      ? `<h4>Parameters</h4><table><thead><tr><th>name</th><th>in</th><th>required</th><th>meaning</th></tr></thead><tbody>${parameters.join('')}</tbody></table>`
      : '',
    body ? `<h4>Request body</h4><p>${prose(body.description)}</p>${fieldTable(body)}` : '',
    `<h4>Responses</h4>${responses.join('')}`,
    '</section>',
  ].join('\n')
}

export function renderDocsPage(doc: OpenApiDocument): string {
  const operations: { path: string; method: string; op: Operation }[] = []
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHODS) {
      const op = item[method]
      if (op) operations.push({ path, method, op })
    }
  }
  const index = operations
    .map(
      ({ path, method, op }) =>
        `<li><a href="#${`${method}-${path}`.replace(/[^A-Za-z0-9]+/g, '-')}"><span class="method ${method}">${method.toUpperCase()}</span> ${escapeHtml(path)}</a> — ${prose(op.summary)}</li>`,
    )
    .join('\n')
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(doc.info.title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 70rem; padding: 1rem 2rem; color: #1d232a; }
h1 { margin-bottom: .2rem } .version { color: #5b6570 }
code { background: #f1f3f5; padding: 0 .25rem; border-radius: 3px }
.method { display: inline-block; min-width: 4.2rem; text-align: center; font: bold 13px monospace; color: #fff; border-radius: 3px; padding: .1rem .3rem }
.get { background: #2f7d32 } .post { background: #1f5fae } .put { background: #a8620c } .delete { background: #b3261e }
.path { font-family: monospace; font-size: 16px }
.auth, .public { font-size: 12px; font-weight: normal; border: 1px solid #adb5bd; border-radius: 3px; padding: 0 .3rem; margin-left: .5rem }
.public { border-color: #2f7d32; color: #2f7d32 }
.operation { border-top: 1px solid #dee2e6; padding-top: .4rem; margin-top: 1.2rem }
table { border-collapse: collapse; width: 100%; margin: .3rem 0 .8rem; font-size: 14px }
th, td { text-align: left; vertical-align: top; border-bottom: 1px solid #e9ecef; padding: .2rem .5rem }
.status { font-family: monospace; font-weight: bold }
ul.index { list-style: none; padding: 0 } ul.index li { margin: .15rem 0 }
</style></head>
<body>
<h1>${escapeHtml(doc.info.title)}</h1>
<div class="version">version ${escapeHtml(doc.info.version)} · <a href="/openapi.json">openapi.json</a></div>
<p>${prose(doc.info.description)}</p>
<h2>Endpoints</h2>
<ul class="index">${index}</ul>
${operations.map(({ path, method, op }) => operationSection(path, method, op)).join('\n')}
</body></html>
`
}
