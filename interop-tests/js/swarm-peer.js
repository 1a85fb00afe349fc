'use strict'
// The project's own Hyperswarm peer over the pinned `hyperswarm` and `hyperdht`. It speaks the
// peer interface that `interop-tests/src/peer_driver.rs` describes and drives, so the same driver
// can put this peer or any other implementation (the Rust `swarm-peer`) in the server seat, the
// client seat or both:
//
//   node swarm-peer.js serve  --bootstrap 127.0.0.1:PORT --topic HEX [--seed HEX]
//   node swarm-peer.js client --bootstrap B --test connect-swarm|connect-dht|connect-rate|throughput|rtt ...
//   node swarm-peer.js announce --bootstrap B --iterations N --via both|swarm|dht
//   node swarm-peer.js lookup --bootstrap B --topic HEX --iterations N
//   node swarm-peer.js node --bootstrap B --settle-ms MS [--no-dht]
//
// Every command takes --max-seconds S and --exit-on-stdin-close, ignores flags it does not know,
// prints one JSON object per line on stdout (the last one {"event":"exit",...}), reports a fatal
// problem as {"event":"error","error":"..."} with exit code 1, and binds only 127.0.0.1.
const Hyperswarm = require('hyperswarm')
const DHT = require('hyperdht')
const b4a = require('b4a')
const { StringDecoder } = require('string_decoder')
const { out } = require('./common')

// The application protocol's header line is at most this long (the server closes the stream
// on a longer one).
const MAX_HEADER = 64 * 1024
// How long one connection attempt of a client test may take before it counts as an error.
const ATTEMPT_TIMEOUT_MS = 20000
// How long shutdown may spend unannouncing and closing before the process exits anyway.
const SHUTDOWN_MS = 3000

const now = () => performance.now()

function parseArgs(argv) {
  const args = { _: [] }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (!a.startsWith('--')) {
      args._.push(a)
      continue
    }
    const next = argv[i + 1]
    if (next !== undefined && !next.startsWith('--')) {
      args[a.slice(2)] = next
      i++
    } else {
      args[a.slice(2)] = true
    }
  }
  return args
}

function parseBootstrap(s) {
  if (typeof s !== 'string') throw new Error('--bootstrap HOST:PORT is required')
  return s.split(',').map((hp) => {
    const i = hp.lastIndexOf(':')
    const port = Number(hp.slice(i + 1))
    if (i < 1 || !Number.isInteger(port) || port <= 0 || port > 65535) {
      throw new Error('bad --bootstrap entry ' + JSON.stringify(hp))
    }
    return { host: hp.slice(0, i), port }
  })
}

function key32(args, name) {
  const s = args[name]
  if (typeof s !== 'string' || !/^[0-9a-fA-F]{64}$/.test(s)) {
    throw new Error('--' + name + ' must be 64 hex characters')
  }
  return b4a.from(s, 'hex')
}

function int(args, name, dflt) {
  if (args[name] === undefined) return dflt
  const n = Number(args[name])
  if (!Number.isInteger(n) || n < 0) throw new Error('--' + name + ' must be a whole number')
  return n
}

function memory() {
  const m = process.memoryUsage()
  return { rssBytes: m.rss, heapUsedBytes: m.heapUsed }
}

function withTimeout(promise, ms, what) {
  let t
  const timer = new Promise((resolve, reject) => {
    t = setTimeout(() => reject(new Error(what + ' timed out after ' + ms + ' ms')), ms)
  })
  return Promise.race([promise, timer]).finally(() => clearTimeout(t))
}

function makeDht(bootstrap) {
  // host: bind 127.0.0.1 only, so the node never lists or probes other interfaces.
  return new DHT({ host: '127.0.0.1', bootstrap })
}

// Splits a stream into `\n`-terminated lines; `next()` resolves with the next one.
class Lines {
  constructor(stream) {
    this.decoder = new StringDecoder('utf8')
    this.buf = ''
    this.queue = []
    this.waiters = []
    this.error = null
    stream.on('data', (d) => {
      this.buf += this.decoder.write(d)
      let i
      while ((i = this.buf.indexOf('\n')) !== -1) {
        const line = this.buf.slice(0, i)
        this.buf = this.buf.slice(i + 1)
        const w = this.waiters.shift()
        if (w) w.resolve(line)
        else this.queue.push(line)
      }
    })
    const fail = (err) => {
      if (this.error) return
      this.error = err
      for (const w of this.waiters.splice(0)) w.reject(err)
    }
    stream.on('error', fail)
    stream.on('close', () => fail(new Error('the stream closed')))
  }

  next() {
    if (this.queue.length) return Promise.resolve(this.queue.shift())
    if (this.error) return Promise.reject(this.error)
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }))
  }
}

function waitOpen(socket) {
  return new Promise((resolve, reject) => {
    socket.once('open', resolve)
    socket.once('error', reject)
    socket.once('close', () => reject(new Error('closed before it opened')))
  })
}

// Ends the stream and waits until it is closed (destroying it if the peer does not end too).
function closeStream(socket) {
  if (socket.destroyed) return Promise.resolve()
  const closed = new Promise((resolve) => socket.once('close', resolve))
  socket.end()
  return withTimeout(closed, 5000, 'close').catch(() => {
    socket.destroy()
  })
}

// Resolves on the stream's next 'drain', rejects when it closes first.
function drained(stream) {
  return new Promise((resolve, reject) => {
    const done = () => {
      stream.off('drain', onDrain)
      stream.off('close', onClose)
    }
    const onDrain = () => {
      done()
      resolve()
    }
    const onClose = () => {
      done()
      reject(new Error('the stream closed while sending'))
    }
    stream.on('drain', onDrain)
    stream.on('close', onClose)
  })
}

async function ping(conn, lines) {
  const t0 = now()
  conn.write('{"op":"ping"}\n')
  const reply = JSON.parse(await lines.next())
  if (reply.op !== 'pong') throw new Error('expected a pong, got ' + JSON.stringify(reply))
  return now() - t0
}

// ---------------------------------------------------------------------------------------------
// serve: the server side of the application protocol.

function serveConnection(conn, stats) {
  conn.on('error', () => {})
  conn.on('end', () => conn.end())
  let header = b4a.alloc(0)
  let mode = 'header'
  let sink = null

  const onHeader = (line) => {
    let msg
    try {
      msg = JSON.parse(line)
    } catch {
      return false
    }
    if (msg === null || typeof msg !== 'object') return false
    if (msg.op === 'ping') {
      conn.write('{"op":"pong"}\n')
      return true
    }
    if (msg.op === 'sink' && Number.isSafeInteger(msg.bytes) && msg.bytes >= 0) {
      sink = { bytes: msg.bytes, left: msg.bytes, t0: now(), cpu0: process.cpuUsage() }
      mode = 'sink'
      if (sink.left === 0) finishSink()
      return true
    }
    if (msg.op === 'echo') {
      mode = 'echo'
      return true
    }
    return false
  }

  const finishSink = () => {
    const cpu = process.cpuUsage(sink.cpu0)
    const ack = {
      op: 'sink',
      bytes: sink.bytes,
      ms: now() - sink.t0,
      cpuUserUs: cpu.user,
      cpuSysUs: cpu.system
    }
    conn.write(JSON.stringify(ack) + '\n')
    sink = null
    mode = 'header'
  }

  conn.on('data', (data) => {
    while (data.length > 0) {
      if (mode === 'echo') {
        conn.write(data)
        return
      }
      if (mode === 'sink') {
        const n = Math.min(sink.left, data.length)
        sink.left -= n
        stats.sinkBytes += n
        data = data.subarray(n)
        if (sink.left === 0) finishSink()
        continue
      }
      const nl = data.indexOf(10)
      if (nl === -1) {
        header = b4a.concat([header, data])
        if (header.length > MAX_HEADER) conn.destroy()
        return
      }
      const line = b4a.concat([header, data.subarray(0, nl)])
      header = b4a.alloc(0)
      data = data.subarray(nl + 1)
      if (line.length > MAX_HEADER || !onHeader(b4a.toString(line))) {
        conn.destroy()
        return
      }
    }
  })
}

async function serve(args, life) {
  const bootstrap = parseBootstrap(args.bootstrap)
  const topic = key32(args, 'topic')
  const keyPair = args.seed ? DHT.keyPair(key32(args, 'seed')) : DHT.keyPair()
  const t0 = now()
  const dht = makeDht(bootstrap)
  life.cleanup.push(() => dht.destroy())
  await dht.ready()
  const bootstrapMs = now() - t0
  const swarm = new Hyperswarm({ dht, keyPair })
  life.cleanup.unshift(() => swarm.destroy())
  const stats = { connections: 0, sinkBytes: 0 }
  life.exitExtras = () => stats
  swarm.on('connection', (conn) => {
    stats.connections++
    serveConnection(conn, stats)
  })
  const publicKey = b4a.toString(keyPair.publicKey, 'hex')
  out({ event: 'ready', role: 'server', publicKey, bootstrapMs })
  const t1 = now()
  await swarm.listen()
  out({ event: 'listening', publicKey, ms: now() - t1 })
  const t2 = now()
  await swarm.join(topic, { server: true, client: false }).flushed()
  out({ event: 'announced', topic: b4a.toString(topic, 'hex'), ms: now() - t2 })
  await life.stopped
}

// ---------------------------------------------------------------------------------------------
// client tests

// Opens one connection by topic through a fresh swarm; returns what must be closed after.
async function swarmConnect(bootstrap, topic) {
  const dht = makeDht(bootstrap)
  const t0 = now()
  await dht.ready()
  const bootstrapMs = now() - t0
  const swarm = new Hyperswarm({ dht })
  try {
    const t1 = now()
    const conn = await withTimeout(
      new Promise((resolve) => {
        swarm.once('connection', resolve)
        swarm.join(topic, { server: false, client: true })
      }),
      ATTEMPT_TIMEOUT_MS,
      'join'
    )
    const ms = now() - t1
    conn.on('error', () => {})
    return { swarm, conn, lines: new Lines(conn), ms, bootstrapMs }
  } catch (err) {
    await swarm.destroy()
    throw err
  }
}

async function dhtConnect(dht, publicKey) {
  const t0 = now()
  const conn = dht.connect(publicKey, { keyPair: DHT.keyPair() })
  conn.on('error', () => {})
  const lines = new Lines(conn)
  try {
    await withTimeout(waitOpen(conn), ATTEMPT_TIMEOUT_MS, 'connect')
  } catch (err) {
    conn.destroy()
    throw err
  }
  return { conn, lines, ms: now() - t0 }
}

async function testConnectSwarm(args, bootstrap, life) {
  const topic = key32(args, 'topic')
  const iterations = int(args, 'iterations', 20)
  const res = { samplesMs: [], errors: 0, bootstrapMs: [], firstRttMs: [], errorMessages: [] }
  for (let i = 0; i < iterations; i++) {
    let c = null
    try {
      c = await swarmConnect(bootstrap, topic)
      life.current = c.swarm
      res.bootstrapMs.push(c.bootstrapMs)
      res.samplesMs.push(c.ms)
      res.firstRttMs.push(await withTimeout(ping(c.conn, c.lines), ATTEMPT_TIMEOUT_MS, 'ping'))
    } catch (err) {
      res.errors++
      if (res.errorMessages.length < 5) res.errorMessages.push(err.message)
    } finally {
      if (c) await withTimeout(c.swarm.destroy(), SHUTDOWN_MS, 'destroy').catch(() => {})
      life.current = null
    }
  }
  return res
}

async function testConnectDht(args, bootstrap, life) {
  const publicKey = key32(args, 'public-key')
  const fresh = args.fresh === true || args.fresh === 'true'
  const iterations = int(args, 'iterations', fresh ? 20 : 50)
  const res = { samplesMs: [], errors: 0, errorMessages: [] }
  let shared = null
  if (!fresh) {
    shared = makeDht(bootstrap)
    life.cleanup.push(() => shared.destroy())
    await shared.ready()
  }
  for (let i = 0; i < iterations; i++) {
    let dht = shared
    try {
      if (fresh) {
        dht = makeDht(bootstrap)
        await dht.ready()
      }
      const c = await dhtConnect(dht, publicKey)
      res.samplesMs.push(c.ms)
      await withTimeout(ping(c.conn, c.lines), ATTEMPT_TIMEOUT_MS, 'ping')
      await closeStream(c.conn)
    } catch (err) {
      res.errors++
      if (res.errorMessages.length < 5) res.errorMessages.push(err.message)
    } finally {
      if (fresh && dht) await withTimeout(dht.destroy(), SHUTDOWN_MS, 'destroy').catch(() => {})
    }
  }
  return { test: fresh ? 'connect-dht-cold' : 'connect-dht-warm', ...res }
}

async function testConnectRate(args, bootstrap, life) {
  const publicKey = key32(args, 'public-key')
  const concurrency = Math.max(1, int(args, 'concurrency', 1))
  const iterations = int(args, 'iterations', concurrency > 1 ? 400 : 200)
  const dht = makeDht(bootstrap)
  life.cleanup.push(() => dht.destroy())
  await dht.ready()
  const res = { concurrency, attempted: 0, opened: 0, errors: 0, samplesMs: [], errorMessages: [] }
  const t0 = now()
  const worker = async () => {
    while (res.attempted < iterations) {
      res.attempted++
      try {
        const c = await dhtConnect(dht, publicKey)
        res.opened++
        res.samplesMs.push(c.ms)
        await closeStream(c.conn)
      } catch (err) {
        res.errors++
        if (res.errorMessages.length < 5) res.errorMessages.push(err.message)
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  res.elapsedMs = now() - t0
  res.perSec = res.opened / (res.elapsedMs / 1000)
  return res
}

// Opens the one connection of the throughput and rtt tests: by topic through a swarm, or by
// public key through a bare DHT node with `--via dht`.
async function openOne(args, bootstrap, life) {
  if (args.via === 'dht') {
    const publicKey = key32(args, 'public-key')
    const dht = makeDht(bootstrap)
    life.cleanup.push(() => dht.destroy())
    await dht.ready()
    const c = await dhtConnect(dht, publicKey)
    life.cleanup.unshift(() => c.conn.destroy())
    return { ...c, via: 'dht' }
  }
  const c = await swarmConnect(bootstrap, key32(args, 'topic'))
  life.cleanup.unshift(() => c.swarm.destroy())
  return { ...c, via: 'swarm' }
}

async function testThroughput(args, bootstrap, life) {
  const bytes = int(args, 'bytes', 268435456)
  const writeSize = Math.max(1, int(args, 'write-size', 65536))
  const nruns = Math.max(1, int(args, 'runs', 1))
  const c = await openOne(args, bootstrap, life)
  const chunk = b4a.alloc(writeSize, 0x61)
  const runs = []
  for (let r = 0; r < nruns; r++) {
    const t0 = now()
    const cpu0 = process.cpuUsage()
    c.conn.write(JSON.stringify({ op: 'sink', bytes }) + '\n')
    let left = bytes
    while (left > 0) {
      const n = Math.min(left, writeSize)
      left -= n
      if (!c.conn.write(n === writeSize ? chunk : chunk.subarray(0, n))) {
        await drained(c.conn)
      }
    }
    const server = JSON.parse(await c.lines.next())
    const ms = now() - t0
    const cpu = process.cpuUsage(cpu0)
    if (server.op !== 'sink' || server.bytes !== bytes) {
      throw new Error('the server acknowledged ' + JSON.stringify(server) + ' for ' + bytes + ' bytes')
    }
    runs.push({
      bytes,
      writeSize,
      ms,
      mbPerSec: bytes / 1e6 / (ms / 1000),
      clientCpuUserUs: cpu.user,
      clientCpuSysUs: cpu.system,
      server
    })
  }
  return { runs, connectMs: c.ms, via: c.via }
}

function rttLine(id, size) {
  const head = '{"id":' + id + ',"pad":"'
  const pad = Math.max(0, size - head.length - 3)
  return head + 'x'.repeat(pad) + '"}\n'
}

async function testRtt(args, bootstrap, life) {
  const rounds = int(args, 'rounds', 2000)
  const size = int(args, 'msg-size', 100)
  const warmup = int(args, 'warmup', 50)
  const c = await openOne(args, bootstrap, life)
  c.conn.write('{"op":"echo"}\n')
  const samplesMs = []
  let cpu0 = process.cpuUsage()
  // `warmup` unrecorded rounds, then `rounds` recorded ones.
  for (let i = 0; i < warmup + rounds; i++) {
    if (i === warmup) cpu0 = process.cpuUsage()
    const line = rttLine(i, size)
    const t0 = now()
    c.conn.write(line)
    const back = await withTimeout(c.lines.next(), ATTEMPT_TIMEOUT_MS, 'echo')
    const ms = now() - t0
    if (back + '\n' !== line || JSON.parse(back).id !== i) {
      throw new Error('round ' + i + ': the echo differs from what was sent')
    }
    if (i >= warmup) samplesMs.push(ms)
  }
  const cpu = process.cpuUsage(cpu0)
  return {
    samplesMs,
    rounds,
    size: rttLine(0, size).length,
    warmup,
    clientCpuUserUs: cpu.user,
    clientCpuSysUs: cpu.system,
    connectMs: c.ms,
    via: c.via
  }
}

const CLIENT_TESTS = {
  'connect-swarm': testConnectSwarm,
  'connect-dht': testConnectDht,
  'connect-rate': testConnectRate,
  throughput: testThroughput,
  rtt: testRtt
}

async function client(args, life) {
  const bootstrap = parseBootstrap(args.bootstrap)
  const run = CLIENT_TESTS[args.test]
  if (!run) throw new Error('unknown --test ' + JSON.stringify(args.test))
  const res = await run(args, bootstrap, life)
  out({ event: 'result', test: args.test, ...res })
}

// ---------------------------------------------------------------------------------------------
// announce, lookup, node

async function announce(args, life) {
  const bootstrap = parseBootstrap(args.bootstrap)
  const iterations = int(args, 'iterations', 30)
  const via = args.via || 'both'
  if (!['both', 'swarm', 'dht'].includes(via)) throw new Error('--via must be both, swarm or dht')
  const dht = makeDht(bootstrap)
  life.cleanup.push(() => dht.destroy())
  await dht.ready()
  const res = { test: 'announce' }
  if (via !== 'dht') {
    const swarm = new Hyperswarm({ dht })
    const t0 = now()
    await swarm.listen()
    res.swarm = { listenMs: now() - t0, samplesMs: [] }
    for (let i = 0; i < iterations; i++) {
      const topic = DHT.hash(b4a.from('announce ' + Math.random() + ' ' + i))
      const t1 = now()
      await swarm.join(topic, { server: true, client: false }).flushed()
      res.swarm.samplesMs.push(now() - t1)
      await swarm.leave(topic)
    }
    await swarm.server.close()
  }
  if (via !== 'swarm') {
    const keyPair = DHT.keyPair()
    res.dht = { samplesMs: [], unannounceMs: [] }
    for (let i = 0; i < iterations; i++) {
      const topic = DHT.hash(b4a.from('announce-dht ' + Math.random() + ' ' + i))
      const t1 = now()
      await dht.announce(topic, keyPair).finished()
      res.dht.samplesMs.push(now() - t1)
      const t2 = now()
      await dht.unannounce(topic, keyPair)
      res.dht.unannounceMs.push(now() - t2)
    }
  }
  out({ event: 'result', ...res })
}

async function lookup(args, life) {
  const bootstrap = parseBootstrap(args.bootstrap)
  const topic = key32(args, 'topic')
  const iterations = int(args, 'iterations', 50)
  const t0 = now()
  const dht = makeDht(bootstrap)
  life.cleanup.push(() => dht.destroy())
  await dht.ready()
  const res = { test: 'lookup', bootstrapMs: now() - t0, firstMs: [], doneMs: [], replies: [], misses: 0 }
  for (let i = 0; i < iterations; i++) {
    const t1 = now()
    let first = null
    let replies = 0
    for await (const data of dht.lookup(topic)) {
      replies++
      if (first === null && data.peers.length > 0) first = now() - t1
    }
    res.doneMs.push(now() - t1)
    res.firstMs.push(first)
    res.replies.push(replies)
    if (first === null) res.misses++
  }
  out({ event: 'result', ...res })
}

async function nodeMemory(args, life) {
  const settleMs = int(args, 'settle-ms', 3000)
  const res = { test: 'node-memory', dht: args['no-dht'] !== true }
  if (res.dht) {
    const bootstrap = parseBootstrap(args.bootstrap)
    const t0 = now()
    const dht = makeDht(bootstrap)
    life.cleanup.push(() => dht.destroy())
    await dht.ready()
    res.bootstrapMs = now() - t0
  }
  await new Promise((resolve) => setTimeout(resolve, settleMs))
  out({ event: 'result', ...res, ...memory() })
}

// ---------------------------------------------------------------------------------------------
// process life: signals, --max-seconds, --exit-on-stdin-close, exit line

async function main() {
  const args = parseArgs(process.argv.slice(2))
  const command = args._[0]
  let stop
  const life = {
    cleanup: [],
    current: null,
    exitExtras: () => ({}),
    why: null,
    stopped: new Promise((resolve) => {
      stop = resolve
    })
  }
  const finish = async (code, why) => {
    if (life.finishing) return
    life.finishing = true
    const extras = life.exitExtras()
    if (life.current) life.cleanup.unshift(() => life.current.destroy())
    for (const f of life.cleanup) {
      await withTimeout(Promise.resolve().then(f), SHUTDOWN_MS, 'shutdown').catch(() => {})
    }
    out({ event: 'exit', why, code, ...extras, ...memory() })
    process.exit(code)
  }
  const fatal = (err) => {
    out({ event: 'error', error: String((err && err.message) || err) })
    if (err && err.stack) console.error(err.stack)
    finish(1, 'error')
  }
  // A server stops cleanly on these; a client that has not finished reports an error.
  const request = (why) => {
    if (command === 'serve') {
      life.why = why
      stop()
    } else {
      fatal(new Error('stopped by ' + why + ' before the result'))
    }
  }
  process.once('SIGTERM', () => request('SIGTERM'))
  process.once('SIGINT', () => request('SIGINT'))
  if (args['max-seconds'] !== undefined) {
    const s = Number(args['max-seconds'])
    if (!(s > 0)) return fatal(new Error('--max-seconds must be a positive number'))
    setTimeout(() => request('max-seconds'), s * 1000).unref()
  }
  if (args['exit-on-stdin-close']) {
    process.stdin.on('end', () => request('stdin-closed'))
    process.stdin.on('error', () => request('stdin-closed'))
    process.stdin.resume()
  }
  const commands = { serve, client, announce, lookup, node: nodeMemory }
  const run = commands[command]
  if (!run) return fatal(new Error('unknown command ' + JSON.stringify(command) + '; expected serve, client, announce, lookup or node'))
  try {
    await run(args, life)
    await finish(0, life.why || 'done')
  } catch (err) {
    fatal(err)
  }
}

main()
