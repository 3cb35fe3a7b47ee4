// The few XML documents S3 exchanges with the agent: error answers, the answers of
// CreateMultipartUpload, CompleteMultipartUpload, ListMultipartUploads and ListParts, and the body of
// CompleteMultipartUpload. A strict reader of its own rather than an XML library: these are flat
// documents of elements and text, and the AWS SDK's parser (fast-xml-parser, with the SDK's ~30 MB
// that stayed resident once a job used S3) handled far more than S3 sends. No DOCTYPE, entity
// declarations, comments, CDATA or processing instructions beyond the XML declaration are
// accepted: S3 sends none, and each is a way into a parser that a server should not have.

export interface XmlElement {
  /** The local name (a prefix is dropped: S3 uses a default namespace). */
  name: string
  children: XmlElement[]
  /** The element's own text (between its child elements), entities decoded. */
  text: string
}

/** The document is not XML this reader accepts. */
export class XmlError extends Error {
  override name = 'XmlError'
}

/** Bounds on what a server's answer may make us build. */
const MAX_DEPTH = 32
const MAX_ELEMENTS = 100_000

const NAME = /[A-Za-z_][A-Za-z0-9._-]*(?::[A-Za-z_][A-Za-z0-9._-]*)?/y
const SPACE = /[ \t\r\n]*/y
const DECLARATION = /<\?xml(?:[ \t\r\n][^?<>]*)?\?>/y
const ATTRIBUTE = /[ \t\r\n]+([A-Za-z_][A-Za-z0-9._:-]*)[ \t\r\n]*=[ \t\r\n]*(?:"([^"<]*)"|'([^'<]*)')/y
const TEXT = /[^<]+/y
/** An entity or character reference (its body), or a bare `&`. */
const REFERENCE = /&([^;&]{0,16});|&/g
const NAMED = new Map([
  ['lt', '<'],
  ['gt', '>'],
  ['amp', '&'],
  ['quot', '"'],
  ['apos', "'"],
])

/** Parses a whole document: an optional XML declaration, one root element, white space around them. */
export function parseXml(document: string): XmlElement {
  const reader = new Reader(document.startsWith('\uFEFF') ? document.slice(1) : document)
  // White space may come first: S3 sends it while it assembles a multipart upload's object.
  reader.match(SPACE)
  reader.match(DECLARATION)
  reader.match(SPACE)
  const root = reader.element(0)
  reader.match(SPACE)
  if (!reader.atEnd()) reader.fail('content after the root element')
  return root
}

class Reader {
  readonly #text: string
  #at = 0
  #elements = 0

  constructor(text: string) {
    this.#text = text
  }

  atEnd(): boolean {
    return this.#at === this.#text.length
  }

  fail(what: string): never {
    throw new XmlError(`not a valid S3 XML document: ${what} at offset ${this.#at}`)
  }

  /** Consumes `pattern` (a sticky regular expression) at the current position; null if it does not match there. */
  match(pattern: RegExp): RegExpExecArray | null {
    pattern.lastIndex = this.#at
    const found = pattern.exec(this.#text)
    if (found) this.#at = pattern.lastIndex
    return found
  }

  #literal(value: string): boolean {
    if (!this.#text.startsWith(value, this.#at)) return false
    this.#at += value.length
    return true
  }

  element(depth: number): XmlElement {
    if (depth >= MAX_DEPTH) this.fail(`elements nested deeper than ${MAX_DEPTH}`)
    if (++this.#elements > MAX_ELEMENTS) this.fail(`more than ${MAX_ELEMENTS} elements`)
    if (!this.#literal('<')) this.fail('an element was expected')
    const name = this.match(NAME)?.[0] ?? this.fail('an element name was expected')
    const seen = new Set<string>()
    for (let attribute: RegExpExecArray | null; (attribute = this.match(ATTRIBUTE)); ) {
      const attributeName = attribute[1] as string
      if (seen.has(attributeName)) this.fail(`attribute ${attributeName} twice`)
      seen.add(attributeName)
      decode(attribute[2] ?? attribute[3] ?? '', this)
    }
    this.match(SPACE)
    const element: XmlElement = { name: localName(name), children: [], text: '' }
    if (this.#literal('/>')) return element
    if (!this.#literal('>')) this.fail(`the start tag of ${name} is not closed`)
    const texts: string[] = []
    for (;;) {
      const text = this.match(TEXT)
      if (text) texts.push(decode(text[0], this))
      if (this.atEnd()) this.fail(`${name} is not closed`)
      if (this.#literal('</')) {
        if (this.match(NAME)?.[0] !== name) this.fail(`the end tag does not match ${name}`)
        this.match(SPACE)
        if (!this.#literal('>')) this.fail(`the end tag of ${name} is not closed`)
        element.text = texts.join('')
        return element
      }
      if (this.#text.startsWith('<!', this.#at) || this.#text.startsWith('<?', this.#at)) {
        this.fail('a comment, CDATA section, declaration or processing instruction')
      }
      element.children.push(this.element(depth + 1))
    }
  }
}

function localName(name: string): string {
  const colon = name.indexOf(':')
  return colon < 0 ? name : name.slice(colon + 1)
}

/** Decodes the five predefined entities and character references; any other `&` is an error. */
function decode(raw: string, reader: Reader): string {
  if (!raw.includes('&')) return raw
  return raw.replace(REFERENCE, (_, body: string | undefined) => {
    if (body === undefined) reader.fail('a bare & (not an entity)')
    const named = NAMED.get(body)
    if (named !== undefined) return named
    const number = /^#(?:([0-9]{1,7})|x([0-9A-Fa-f]{1,6}))$/.exec(body)
    if (!number) reader.fail(`an undefined entity &${body.slice(0, 16)};`)
    const code = number[1] !== undefined ? Number(number[1]) : Number.parseInt(number[2] as string, 16)
    const allowed =
      code === 0x9 ||
      code === 0xa ||
      code === 0xd ||
      (code >= 0x20 && code <= 0xd7ff) ||
      (code >= 0xe000 && code <= 0xfffd) ||
      (code >= 0x10000 && code <= 0x10ffff)
    if (!allowed) reader.fail(`a reference to character ${code}, which XML does not allow`)
    return String.fromCodePoint(code)
  })
}

/** Escapes text for an element's content. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : '&gt;'))
}

/** The text of the first child named `name`, or undefined. */
export function childText(element: XmlElement, name: string): string | undefined {
  return element.children.find((child) => child.name === name)?.text
}

// ---------------------------------------------------------------- S3's documents

/** An S3 error document (`<Error><Code>…`): what the server said went wrong. */
export interface S3ErrorDocument {
  code: string
  message: string | undefined
  /** The bucket's region, where a region error names it (AuthorizationHeaderMalformed). */
  region: string | undefined
}

/** The error document in an answer's body; undefined when the body is not one (an HTML page, nothing). */
export function readErrorDocument(body: string): S3ErrorDocument | undefined {
  let root: XmlElement
  try {
    root = parseXml(body)
  } catch {
    return undefined
  }
  const code = childText(root, 'Code')
  if (root.name !== 'Error' || code === undefined || code.trim() === '') return undefined
  return { code: code.trim(), message: childText(root, 'Message'), region: childText(root, 'Region')?.trim() || undefined }
}

/** CreateMultipartUpload's answer: the upload's id. */
export function readUploadId(body: string): string {
  const root = parseXml(body)
  const id = childText(root, 'UploadId')
  if (root.name !== 'InitiateMultipartUploadResult' || id === undefined || id === '') {
    throw new XmlError(`not an InitiateMultipartUploadResult with an UploadId (got <${root.name}>)`)
  }
  return id
}

/**
 * CompleteMultipartUpload's answer: S3 answers 200 before it has assembled the object and sends
 * white space while it works, then the result, or an error document (still under the 200).
 * Returns the error document in that case; throws when the body is neither.
 */
export function readCompleteResult(body: string): S3ErrorDocument | undefined {
  const root = parseXml(body)
  if (root.name === 'CompleteMultipartUploadResult') return undefined
  const error = readErrorDocument(body)
  if (error) return error
  throw new XmlError(`not a CompleteMultipartUploadResult (got <${root.name}>)`)
}

export interface UploadListing {
  /** `initiated`: the upload's Initiated time as sent (ISO 8601), where the server sent one. */
  uploads: { key: string; uploadId: string; initiated?: string }[]
  /** Where the next page starts, when the listing is cut. */
  next: { keyMarker: string; uploadIdMarker: string } | undefined
}

/**
 * ListMultipartUploads' answer. A cut listing without NextKeyMarker and NextUploadIdMarker (Swift's
 * s3api sends them empty) continues after its last upload, which is what those markers name.
 */
export function readUploadListing(body: string): UploadListing {
  const root = parseXml(body)
  if (root.name !== 'ListMultipartUploadsResult') throw new XmlError(`not a ListMultipartUploadsResult (got <${root.name}>)`)
  const uploads: UploadListing['uploads'] = []
  for (const child of root.children) {
    if (child.name !== 'Upload') continue
    const key = childText(child, 'Key')
    const uploadId = childText(child, 'UploadId')
    if (key === undefined || uploadId === undefined || uploadId === '') throw new XmlError('an Upload without a Key or an UploadId')
    const initiated = childText(child, 'Initiated')?.trim()
    uploads.push(initiated ? { key, uploadId, initiated } : { key, uploadId })
  }
  const truncated = childText(root, 'IsTruncated')?.trim() === 'true'
  const last = uploads.at(-1)
  let keyMarker = childText(root, 'NextKeyMarker') ?? ''
  let uploadIdMarker = childText(root, 'NextUploadIdMarker') ?? ''
  if (keyMarker === '' && uploadIdMarker === '' && last) ({ key: keyMarker, uploadId: uploadIdMarker } = last)
  return { uploads, next: truncated && (keyMarker !== '' || uploadIdMarker !== '') ? { keyMarker, uploadIdMarker } : undefined }
}

export interface PartListing {
  /** The bytes of the parts on this page. */
  bytes: number
  /** Where the next page starts (part-number-marker), when the listing is cut. */
  next: string | undefined
}

/** ListParts' answer: what its parts hold. */
export function readPartListing(body: string): PartListing {
  const root = parseXml(body)
  if (root.name !== 'ListPartsResult') throw new XmlError(`not a ListPartsResult (got <${root.name}>)`)
  let bytes = 0
  let lastNumber: string | undefined
  for (const child of root.children) {
    if (child.name !== 'Part') continue
    const size = Number(childText(child, 'Size')?.trim())
    if (!Number.isSafeInteger(size) || size < 0) throw new XmlError('a Part without a Size')
    bytes += size
    lastNumber = childText(child, 'PartNumber')?.trim()
  }
  const truncated = childText(root, 'IsTruncated')?.trim() === 'true'
  const marker = childText(root, 'NextPartNumberMarker')?.trim() || lastNumber
  return { bytes, next: truncated && marker ? marker : undefined }
}

/** CompleteMultipartUpload's body: the parts in order, each with the ETag its upload answered. */
export function completeBody(parts: readonly { number: number; etag: string }[]): string {
  const items = parts.map((p) => `<Part><PartNumber>${p.number}</PartNumber><ETag>${escapeXml(p.etag)}</ETag></Part>`)
  return `<?xml version="1.0" encoding="UTF-8"?>\n<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${items.join('')}</CompleteMultipartUpload>`
}
