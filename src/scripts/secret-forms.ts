// The forms a secret takes when a shell or a tool prints it. Scripts run under `set -x`, quote
// values with printf %q, dump variables with declare -p, and pass secrets through jq, curl or
// Python: each prints the secret escaped its own way, so masking looks for every form, generated
// from the secret by the rules those tools follow (checked against the real tools in
// test/unit/scripts/secret-forms.test.ts).
//
// Tools differ in details (which characters they escape, hex case, named escapes), so each family
// is a small product of those choices; a secret made of letters and digits has one form only.

/** Secrets shorter than this many characters are not masked (docs/SECURITY.md says why). */
export const MIN_SECRET_CHARS = 4

type Encode = (secret: string) => string

const chars = (s: string) => [...s]

/**
 * An encoding that changes only the characters `pattern` matches (a global, Unicode-aware
 * pattern), each as `encodeChar` says: the rest of a long secret is copied by the native replace.
 */
function perChar(pattern: RegExp, encodeChar: (ch: string) => string): Encode {
  return (s) => {
    const seen = new Map<string, string>()
    return s.replace(pattern, (ch: string) => {
      let out = seen.get(ch)
      if (out === undefined) seen.set(ch, (out = encodeChar(ch)))
      return out
    })
  }
}
const utf8Bytes = (ch: string) => [...Buffer.from(ch, 'utf8')]
const hex = (n: number, digits: number, upper: boolean) => {
  const h = n.toString(16).padStart(digits, '0')
  return upper ? h.toUpperCase() : h
}
const isAsciiControl = (code: number) => code < 0x20 || code === 0x7f

// --- Shell quoting -------------------------------------------------------------------------

/** Inside '…': bash (xtrace, ${x@Q}) ends the quote for a ', escapes it and reopens. */
const bashSingleQuoted: Encode = (s) => s.replaceAll("'", "'\\''")
/** The same with "'" (Python's shlex.quote and others). */
const posixSingleQuoted: Encode = (s) => s.replaceAll("'", `'"'"'`)
/** Inside "…" (declare -p): \ " $ ` are escaped. */
const doubleQuoted: Encode = (s) => s.replace(/[\\"$`]/g, '\\$&')
/** What bash's printf %q escapes with a backslash (bash 5: sh_backslash_quote). */
// A ~ that tilde expansion would see (first, or after = or :) and a leading # are escaped too.
const bashBackslashed: Encode = (s) => s.replace(/[ !"$&'()*,;<>?[\\\]^`{|}]|^[~#]|(?<=[=:])~/g, '\\$&')
/** Other shells' backslash quoting escapes more: every ASCII space and punctuation character. */
const allBackslashed: Encode = (s) => s.replace(/[ -/:-@[-`{-~]/g, '\\$&')

// --- C-style escapes: $'…' (bash), printf, Python repr --------------------------------------

type Named = Record<number, string>
const BASH_NAMED: Named = { 7: 'a', 8: 'b', 9: 't', 10: 'n', 11: 'v', 12: 'f', 13: 'r', 27: 'E' }
const C_NAMED: Named = { 7: 'a', 8: 'b', 9: 't', 10: 'n', 11: 'v', 12: 'f', 13: 'r', 27: 'e' }
const SHORT_NAMED: Named = { 9: 't', 10: 'n', 13: 'r' }

type Numeric = (byte: number) => string
const octal: Numeric = (b) => `\\${b.toString(8).padStart(3, '0')}`
const hexLower: Numeric = (b) => `\\x${hex(b, 2, false)}`
const hexUpper: Numeric = (b) => `\\x${hex(b, 2, true)}`

/** How a character beyond ASCII is written. */
type NonAscii = 'raw' | 'bytes' | 'unprintable-bytes' | 'unprintable-codepoint'
/**
 * What counts as unprintable differs: glibc (bash's $'…' in a UTF-8 locale) keeps format
 * characters such as U+FEFF, Unicode's category C does not, and Python also escapes spaces.
 */
const GLIBC_UNPRINTABLE = /^[\p{Cc}\p{Cn}\p{Cs}\p{Zl}\p{Zp}]$/u
const UNICODE_UNPRINTABLE = /^[\p{C}\p{Zl}\p{Zp}]$/u
const PYTHON_UNPRINTABLE = /^[\p{C}\p{Z}]$/u
const codePointEscape = (code: number) =>
  code <= 0xff ? `\\x${hex(code, 2, false)}` : code <= 0xffff ? `\\u${hex(code, 4, false)}` : `\\U${hex(code, 8, false)}`

interface CStyle {
  named: Named
  /** For 'unprintable-bytes': which characters beyond ASCII are written as bytes. */
  unprintable?: RegExp
  numeric: Numeric
  nonAscii: NonAscii
  escapeSingle: boolean
  escapeDouble: boolean
}

function cEscaped(style: CStyle): Encode {
  const nonAscii = (ch: string, code: number): string => {
    const bytes = () => utf8Bytes(ch).map(style.numeric).join('')
    switch (style.nonAscii) {
      case 'raw':
        return ch
      case 'bytes':
        return bytes()
      case 'unprintable-bytes':
        return (style.unprintable ?? UNICODE_UNPRINTABLE).test(ch) ? bytes() : ch
      case 'unprintable-codepoint':
        return PYTHON_UNPRINTABLE.test(ch) ? codePointEscape(code) : ch
    }
  }
  return perChar(/[\\'"\x00-\x1f\x7f]|[^\x00-\x7f]/gu, (ch) => {
    const code = ch.codePointAt(0) as number
    if (ch === '\\') return '\\\\'
    if (ch === "'") return style.escapeSingle ? "\\'" : ch
    if (ch === '"') return style.escapeDouble ? '\\"' : ch
    if (code >= 0x80) return nonAscii(ch, code)
    const named = style.named[code]
    if (named !== undefined) return `\\${named}`
    return isAsciiControl(code) ? style.numeric(code) : ch
  })
}

/** bash's $'…' (xtrace, printf %q, declare -p, ${x@Q}) in a UTF-8 locale and in the C locale. */
const BASH_C_STYLES: CStyle[] = [
  {
    named: BASH_NAMED,
    numeric: octal,
    nonAscii: 'unprintable-bytes',
    unprintable: GLIBC_UNPRINTABLE,
    escapeSingle: true,
    escapeDouble: false,
  },
  { named: BASH_NAMED, numeric: octal, nonAscii: 'bytes', escapeSingle: true, escapeDouble: false },
  {
    named: BASH_NAMED,
    numeric: octal,
    nonAscii: 'unprintable-bytes',
    unprintable: UNICODE_UNPRINTABLE,
    escapeSingle: true,
    escapeDouble: false,
  },
]

const C_STYLES: CStyle[] = [
  ...BASH_C_STYLES,
  // Python's repr of a str ('…' or "…") and of bytes
  ...[true, false].flatMap((escapeSingle) => [
    { named: SHORT_NAMED, numeric: hexLower, nonAscii: 'unprintable-codepoint' as const, escapeSingle, escapeDouble: false },
    { named: SHORT_NAMED, numeric: hexLower, nonAscii: 'bytes' as const, escapeSingle, escapeDouble: false },
  ]),
  // C, printf, Perl, zsh and the like: either quote escaped or not, octal or hex of either case
  ...[octal, hexLower, hexUpper].flatMap((numeric) =>
    (['raw', 'bytes'] as const).flatMap((nonAscii) =>
      [false, true].flatMap((escapeSingle) =>
        [false, true].map((escapeDouble) => ({ named: C_NAMED, numeric, nonAscii, escapeSingle, escapeDouble })),
      ),
    ),
  ),
]

// --- JSON ----------------------------------------------------------------------------------

interface JsonStyle {
  /** min: JSON.stringify; del: also DEL (jq); ascii: also everything beyond ASCII (ensure_ascii). */
  level: 'min' | 'del' | 'ascii'
  /** \n, \t, \r, \b, \f rather than \u000a… */
  named: boolean
  upper: boolean
  /** \/ (PHP) */
  slash: boolean
  /** <, >, &, U+2028, U+2029 as \u… (Go) */
  html: boolean
}

const JSON_NAMED: Named = { 8: 'b', 9: 't', 10: 'n', 12: 'f', 13: 'r' }
const HTML_ESCAPED = new Set(['<', '>', '&', '\u2028', '\u2029'])

function jsonEscaped(style: JsonStyle): Encode {
  const u = (unit: number) => `\\u${hex(unit, 4, style.upper)}`
  const units = (ch: string) => Array.from({ length: ch.length }, (_, i) => u(ch.charCodeAt(i))).join('')
  return perChar(/["\\/<>&\x00-\x1f\x7f]|[^\x00-\x7f]/gu, (ch) => {
    const code = ch.codePointAt(0) as number
    if (ch === '"' || ch === '\\') return `\\${ch}`
    if (ch === '/' && style.slash) return '\\/'
    if (style.html && HTML_ESCAPED.has(ch)) return units(ch)
    if (code < 0x20) return style.named && JSON_NAMED[code] !== undefined ? `\\${JSON_NAMED[code]}` : u(code)
    if (code === 0x7f && style.level !== 'min') return u(code)
    if (code >= 0xd800 && code <= 0xdfff) return u(code) // a lone surrogate
    if (code >= 0x80 && style.level === 'ascii') return units(ch) // a surrogate pair beyond U+FFFF
    return ch
  })
}

const JSON_STYLES: JsonStyle[] = (['min', 'del', 'ascii'] as const).flatMap((level) =>
  [true, false].flatMap((named) =>
    [false, true].flatMap((upper) => [false, true].flatMap((slash) => [false, true].map((html) => ({ level, named, upper, slash, html })))),
  ),
)

// --- URL -----------------------------------------------------------------------------------

/** Characters left as they are, besides letters and digits, by common URL encoders. */
const URL_SAFE_SETS = [
  "-_.!~*'()", // encodeURIComponent
  '-_.~/', // Python's quote
  '-_.~', // Python's quote(safe=''), curl --data-urlencode, RFC 3986 unreserved
  '*-._', // URLSearchParams, application/x-www-form-urlencoded
  '-_.', // PHP's urlencode
]

function urlEncoded(safe: string, plusForSpace: boolean, upper: boolean): Encode {
  const keep = new Set(safe.split(''))
  return perChar(/[^A-Za-z0-9]/gu, (ch) => {
    if (keep.has(ch)) return ch
    if (ch === ' ' && plusForSpace) return '+'
    return utf8Bytes(ch)
      .map((b) => `%${hex(b, 2, upper)}`)
      .join('')
  })
}

const URL_ENCODINGS: Encode[] = URL_SAFE_SETS.flatMap((safe) =>
  [false, true].flatMap((plus) => [true, false].map((upper) => urlEncoded(safe, plus, upper))),
)

// --- Encodings of the bytes: base64, hex, Perl's quotemeta ----------------------------------

/**
 * base64 of the secret where it sits inside a longer input (`user:<password>` in a Basic auth
 * header, a JSON document), in both alphabets: its offset in the input may be 0, 1 or 2 modulo
 * 3, and for each the characters made only of the secret's bits are the same whatever surrounds
 * it. Those are the form; the one or two characters at each edge mix in neighbouring bytes.
 */
function base64Forms(bytes: Buffer): Buffer[] {
  const forms: Buffer[] = []
  for (const offset of [0, 1, 2]) {
    const encoded = Buffer.concat([Buffer.alloc(offset), bytes]).toString('base64')
    const inner = encoded.slice(Math.ceil((8 * offset) / 6), Math.floor((8 * (offset + bytes.length)) / 6))
    for (const text of [inner, inner.replaceAll('+', '-').replaceAll('/', '_')]) forms.push(Buffer.from(text))
  }
  return forms
}

const isWordByte = (b: number) => (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x5f

/**
 * Perl's quotemeta: a backslash before every ASCII byte that is not [A-Za-z0-9_] (controls
 * included) and, on a byte string, before each byte of a UTF-8 character too (a character
 * string keeps those as they are).
 */
function quotemeta(bytes: Buffer, escapeNonAscii: boolean): Buffer {
  const out: number[] = []
  for (const byte of bytes) {
    if (!isWordByte(byte) && (byte < 0x80 || escapeNonAscii)) out.push(0x5c)
    out.push(byte)
  }
  return Buffer.from(out)
}

/**
 * Forms made of the secret's UTF-8 bytes rather than its characters (some are not UTF-8 text):
 * base64 (`base64 -w0`, jq's @base64, a Basic auth header), hex in either case (`xxd -p`,
 * Python's bytes.hex()) and Perl's quotemeta. None for a secret shorter than MIN_SECRET_CHARS.
 * A tool that wraps its output in lines (`base64` without -w0, `xxd -p`) breaks the form: not
 * covered (docs/SECURITY.md).
 */
export function secretByteForms(secret: string): Buffer[] {
  if (!isMaskable(secret)) return []
  const bytes = Buffer.from(secret, 'utf8')
  const hexForm = bytes.toString('hex')
  return [
    ...base64Forms(bytes),
    Buffer.from(hexForm),
    Buffer.from(hexForm.toUpperCase()),
    quotemeta(bytes, true),
    quotemeta(bytes, false),
  ].filter((f) => f.length >= MIN_SECRET_CHARS)
}

// --- All forms -----------------------------------------------------------------------------

const SHELL_ENCODINGS: Encode[] = [bashSingleQuoted, posixSingleQuoted, doubleQuoted, bashBackslashed, allBackslashed]
const BASH_C_ENCODINGS: Encode[] = BASH_C_STYLES.map(cEscaped)
const ESCAPE_ENCODINGS: Encode[] = [...C_STYLES.map(cEscaped), ...JSON_STYLES.map(jsonEscaped), ...URL_ENCODINGS]

/** True when a secret is long enough to be masked. */
export function isMaskable(secret: string): boolean {
  return chars(secret).length >= MIN_SECRET_CHARS
}

/**
 * Every distinct form of the secret to mask, longest first; none for a secret shorter than
 * MIN_SECRET_CHARS. Forms are also given as bash's xtrace prints them once more (a quoted or
 * encoded secret on a command line under `set -x`: `echo "${pw@Q}"`, a curl or jq call).
 */
export function secretForms(secret: string): string[] {
  if (!isMaskable(secret)) return []
  const once = new Set<string>([secret])
  const shell = SHELL_ENCODINGS.map((encode) => encode(secret))
  for (const form of shell) once.add(form)
  for (const encode of ESCAPE_ENCODINGS) once.add(encode(secret))
  const forms = new Set(once)
  for (const form of once) forms.add(bashSingleQuoted(form))
  for (const form of [secret, ...shell]) for (const encode of BASH_C_ENCODINGS) forms.add(encode(form))
  return [...forms].sort((a, b) => Buffer.byteLength(b) - Buffer.byteLength(a))
}
