// Bluesky's reference network (PLC directory + PDS + bsky AppView, with the bsync and ozone services
// TestNetwork also needs) on loopback, for integration tests. Needs Node >= 22 and PostgreSQL.
//
//   DB_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/postgres REDIS_HOST=unused TMPDIR=/tmp/x \
//     node start.mjs [--pds-port N] [--bsky-port N] [--plc-port N] [--schema NAME]
//
// Ports may also come from PDS_PORT, BSKY_PORT, PLC_PORT (0 or absent: a free port). Prints exactly one
// line of JSON on stdout when the network is ready: {"pds": url, "bsky": url, "plc": url}; everything
// else goes to stderr. Closes the network and exits on SIGTERM or SIGINT (exit status 0), or when its parent
// process exits.
import net from 'node:net'
import { parseArgs } from 'node:util'

// Every server in the network listens on a bare port, which Node binds to all interfaces: keep them on
// loopback (SOCIALOPS_BLUESKY_ALL_INTERFACES=1 turns this off).
if (!process.env.SOCIALOPS_BLUESKY_ALL_INTERFACES) {
  const listen = net.Server.prototype.listen
  net.Server.prototype.listen = function (...args) {
    if (typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]))) {
      if (typeof args[1] !== 'string') args.splice(1, 0, '127.0.0.1')
    } else if (args[0] && typeof args[0] === 'object' && args[0].path === undefined && args[0].host === undefined) {
      args[0] = { ...args[0], host: '127.0.0.1' }
    } else if (args.length === 0 || typeof args[0] === 'function') {
      args.unshift(0, '127.0.0.1')
    }
    return listen.apply(this, args)
  }
}

// Logs (and anything a library prints) must not interleave with the ready line on stdout.
const stdoutWrite = process.stdout.write.bind(process.stdout)
console.log = console.info = console.debug = (...args) => console.error(...args)

const { values } = parseArgs({
  options: {
    'pds-port': { type: 'string' },
    'bsky-port': { type: 'string' },
    'plc-port': { type: 'string' },
    schema: { type: 'string' },
  },
})
// {port: N}, or {} for a free port: TestNetwork spreads these over its own defaults, so never {port: undefined}.
const port = (arg, env) => {
  const n = Number(values[arg] ?? process.env[env] ?? 0)
  return n ? { port: n } : {}
}

for (const name of ['DB_POSTGRES_URL', 'REDIS_HOST']) {
  if (!process.env[name]) {
    console.error(`start.mjs: ${name} is not set (REDIS_HOST may be any value: only an assertion reads it)`)
    process.exit(2)
  }
}

const { TestNetwork } = await import('@atproto/dev-env')

const network = await TestNetwork.create({
  dbPostgresSchema: values.schema ?? process.env.DB_POSTGRES_SCHEMA ?? 'bsky',
  plc: port('plc-port', 'PLC_PORT'),
  pds: { ...port('pds-port', 'PDS_PORT'), hostname: 'localhost' },
  bsky: port('bsky-port', 'BSKY_PORT'),
})

let closing = false
const close = async (signal) => {
  if (closing) return
  closing = true
  console.error(`start.mjs: ${signal}, closing the network`)
  const force = setTimeout(() => {
    console.error('start.mjs: the network did not close within 15 s')
    process.exit(1)
  }, 15000)
  force.unref()
  try {
    await network.close()
  } catch (err) {
    console.error('start.mjs: closing failed', err)
  }
  process.exit(0)
}
process.on('SIGTERM', () => close('SIGTERM'))
process.on('SIGINT', () => close('SIGINT'))
// Do not outlive the process that started us (a test runner killed with SIGKILL cannot send SIGTERM).
const parent = process.ppid
setInterval(() => {
  if (process.ppid !== parent) close('parent exited')
}, 1000).unref()

stdoutWrite(JSON.stringify({ pds: network.pds.url, bsky: network.bsky.url, plc: network.plc.url }) + '\n')
