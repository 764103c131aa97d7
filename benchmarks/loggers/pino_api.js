// An API server's request log, written by pino: `node pino_api.js OUT LINES [labels] [span_hours] [seed]`.
//
// Lines look like what pino-http and hand-written Express/Fastify middleware write: nested
// `req` (method, url with ids and query strings) and `res.statusCode`, `durationMs`, numeric levels
// (or upper-case labels with `labels`, as many apps configure `formatters.level`), failed requests
// logged at error with an `err` object, a few lines that are no request at all. Records are spread
// evenly over the last `span_hours` (default 0: every record is stamped now, as pino does).
'use strict'
const pino = require('pino')

Error.stackTraceLimit = 2 // an error's stack as deep as a short real one, not this script's loop

const [out, linesArg, labelsArg = 'numbers', spanArg = '0', seedArg = '42'] = process.argv.slice(2)
const lines = Number(linesArg)
const upper = labelsArg === 'labels'
const spanMs = Number(spanArg) * 3600 * 1000

let state = Number(seedArg) >>> 0
function random () { // mulberry32: the same log for the same seed
  state = (state + 0x6d2b79f5) >>> 0
  let t = state
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
const pick = (items) => items[Math.floor(random() * items.length)]
const hex = (n) => Array.from({ length: n }, () => '0123456789abcdef'[Math.floor(random() * 16)]).join('')

const start = Date.now() - spanMs
let index = 0
const options = {
  level: 'debug',
  base: { pid: process.pid, hostname: 'api-1' },
  timestamp: spanMs ? () => `,"time":${Math.floor(start + (index * spanMs) / lines)}` : pino.stdTimeFunctions.epochTime
}
if (upper) options.formatters = { level: (label) => ({ level: label.toUpperCase() }) }
const logger = pino(options, pino.destination({ dest: out, append: false, sync: true, minLength: 8192 }))

function url () {
  const r = random()
  if (r < 0.25) return '/api/chat'
  if (r < 0.40) return `/api/messages?limit=${pick([20, 50, 100])}`
  if (r < 0.55) return `/api/users/${Math.floor(random() * 5000)}`
  if (r < 0.65) return `/api/conversations/${hex(8)}-${hex(4)}-${hex(4)}-${hex(4)}-${hex(12)}/messages`
  if (r < 0.75) return `/api/search?q=${pick(['invoice', 'refund', 'login', 'export'])}&page=${Math.floor(random() * 9) + 1}`
  if (r < 0.85) return '/api/health'
  if (r < 0.95) return `/api/files/${Math.floor(random() * 90000)}/download`
  return '/api/upload'
}

for (index = 0; index < lines; index++) {
  const r = random()
  if (r < 0.03) {
    if (r < 0.01) logger.warn({ retries: 2 }, 'slow query on messages table')
    else if (r < 0.015) logger.error({ code: 'ECONNRESET' }, `database connection reset after ${Math.floor(random() * 900)} ms`)
    else logger.debug({ key: `session:${hex(16)}` }, 'cache miss')
    continue
  }
  const s = random()
  const statusCode = s < 0.02 ? pick([500, 502, 503]) : s < 0.07 ? pick([400, 401, 404, 404, 429]) : pick([200, 200, 200, 201, 204])
  const durationMs = Math.floor(-Math.log(1 - random()) * 80)
  const req = { id: index + 1, method: pick(['GET', 'GET', 'GET', 'POST', 'PUT']), url: url(), remoteAddress: `10.0.${Math.floor(random() * 8)}.${Math.floor(random() * 250)}` }
  if (statusCode >= 500) {
    const err = new Error(`upstream timeout after ${durationMs} ms`)
    logger.error({ req, res: { statusCode }, err, durationMs }, 'request errored')
  } else {
    logger.info({ req, res: { statusCode }, durationMs }, 'request completed')
  }
}
logger.flush()
