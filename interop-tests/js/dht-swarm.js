'use strict'
// Two hyperswarm peers on 127.0.0.1 that find each other by topic through the DHT whose
// bootstrap node is argv[2] (host:port), then exchange one message each way.
// Prints {"ok": true, ...} or {"ok": false, "error": ...}.
const Hyperswarm = require('hyperswarm')
const DHT = require('hyperdht')
const crypto = require('hypercore-crypto')
const { out, exitWithParent } = require('./common')

async function main() {
  const [host, port] = process.argv[2].split(':')
  const bootstrap = [{ host, port: Number(port) }]
  const mk = () => new Hyperswarm({ dht: new DHT({ host: '127.0.0.1', bootstrap }) })
  const a = mk()
  const b = mk()
  exitWithParent(async () => {
    await a.destroy()
    await b.destroy()
  })
  const topic = crypto.randomBytes(32)
  const got = { a: null, b: null }
  const done = new Promise((resolve) => {
    const check = () => got.a && got.b && resolve()
    a.on('connection', (conn) => {
      conn.on('error', () => {})
      conn.write('from-a')
      conn.once('data', (d) => { got.a = d.toString(); check() })
    })
    b.on('connection', (conn) => {
      conn.on('error', () => {})
      conn.write('from-b')
      conn.once('data', (d) => { got.b = d.toString(); check() })
    })
  })
  const da = a.join(topic, { server: true, client: false })
  await da.flushed()
  out({ announced: true })
  b.join(topic, { server: false, client: true })
  await b.flush()
  const timeout = new Promise((resolve, reject) => setTimeout(() => reject(new Error('timed out')), 60000))
  await Promise.race([done, timeout])
  out({ ok: true, a: got.a, b: got.b })
}

main().catch((err) => {
  out({ ok: false, error: String(err && err.message) })
})
