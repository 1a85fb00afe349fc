'use strict'
// One hyperdht node on 127.0.0.1 that runs HyperDHT client operations on command, against any
// bootstrap. argv: bootstrapHost:port [persistent]. With `persistent` the node is a storage
// node (`ephemeral: false`, as hyperdht/testnet makes its nodes).
// Prints {"ready": true, port, id} then one JSON line per command read from stdin, echoing its
// `id`. Keys, topics, hashes and values are hex; key pairs come from a 32-byte `seed`.
// Commands:
//   {cmd: 'announce', topic, seed, relays?: ['host:port'], tamper?}  -> {ok, closest, ms}
//       (tamper: the signature is flipped before sending, so storage nodes must refuse it)
//   {cmd: 'unannounce', topic, seed}                                -> {ok}
//   {cmd: 'lookup', topic}                  -> {peers: [{publicKey, relays}], replies, firstMs, totalMs}
//   {cmd: 'findPeer', publicKey}            -> {peers: [{publicKey, relays}]}
//   {cmd: 'mutablePut', seed, value, seq?}  -> {publicKey, seq, signature, closest}
//   {cmd: 'mutableGet', publicKey, seq?}    -> {value, seq, signature} or {value: null}
//   {cmd: 'immutablePut', value}            -> {hash, closest}
//   {cmd: 'immutableGet', hash}             -> {value} or {value: null}
//   {cmd: 'join', topic, server, client}    -> {ok, publicKey, discovered} once flushed
//       (discovered: every key hyperswarm's peer discovery found so far); then, per
//       connection, {event: 'connection', remotePublicKey, publicKey, topics}
//   {cmd: 'request', host, port, command, target?, value?, token?} -> {error, value, token, id}
//       (one raw dht-rpc request, as `dht.request` sends it; `timeout: true` when none came)
//   {cmd: 'info'}                           -> {port, id, table}
const DHT = require('hyperdht')
const Persistent = require('hyperdht/lib/persistent')
const { out, exitWithParent, onCommands } = require('./common')

const hex = (b) => (b ? Buffer.from(b).toString('hex') : null)
const buf = (h) => (h === undefined || h === null ? null : Buffer.from(h, 'hex'))
const peers = (list) =>
  list.map((p) => ({
    publicKey: hex(p.publicKey),
    relays: p.relayAddresses.map((a) => `${a.host}:${a.port}`)
  }))

async function main() {
  const [host, port] = process.argv[2].split(':')
  const persistent = process.argv[3] === 'persistent'
  const opts = { host: '127.0.0.1', bootstrap: [{ host, port: Number(port) }] }
  if (persistent) Object.assign(opts, { ephemeral: false, firewalled: false })
  const dht = new DHT(opts)
  let swarm = null
  const discovered = new Set()
  exitWithParent(async () => {
    if (swarm) await swarm.destroy()
    await dht.destroy()
  })
  // commands that arrive while the node bootstraps wait for it (stdin flows from the start)
  const ready = dht.fullyBootstrapped()

  const ops = {
    async announce(c) {
      const kp = DHT.keyPair(buf(c.seed))
      const relays = (c.relays || []).map((a) => {
        const [h, p] = a.split(':')
        return { host: h, port: Number(p) }
      })
      const o = {}
      if (c.tamper) {
        o.signAnnounce = (...args) => {
          const sig = Persistent.signAnnounce(...args)
          sig[0] ^= 0xff
          return sig
        }
      }
      const t = process.hrtime.bigint()
      const q = dht.announce(buf(c.topic), kp, relays, o)
      await q.finished()
      const ms = Number(process.hrtime.bigint() - t) / 1e6
      return { ok: true, closest: q.closestReplies.length, ms }
    },
    async unannounce(c) {
      await dht.unannounce(buf(c.topic), DHT.keyPair(buf(c.seed)))
      return { ok: true }
    },
    async lookup(c) {
      const t = process.hrtime.bigint()
      const ms = () => Number(process.hrtime.bigint() - t) / 1e6
      const found = new Map()
      let replies = 0
      let firstMs = null
      for await (const r of dht.lookup(buf(c.topic))) {
        replies++
        for (const p of r.peers) {
          if (firstMs === null) firstMs = ms()
          found.set(hex(p.publicKey), p)
        }
      }
      return { peers: peers([...found.values()]), replies, firstMs, totalMs: ms() }
    },
    async findPeer(c) {
      const found = []
      for await (const r of dht.findPeer(buf(c.publicKey))) found.push(r.peer)
      return { peers: peers(found) }
    },
    async mutablePut(c) {
      const kp = DHT.keyPair(buf(c.seed))
      const r = await dht.mutablePut(kp, buf(c.value), c.seq === undefined ? {} : { seq: c.seq })
      return {
        publicKey: hex(r.publicKey),
        seq: r.seq,
        signature: hex(r.signature),
        closest: r.closestNodes.length
      }
    },
    async mutableGet(c) {
      const r = await dht.mutableGet(buf(c.publicKey), { seq: c.seq || 0 })
      if (!r) return { value: null }
      return { value: hex(r.value), seq: r.seq, signature: hex(r.signature) }
    },
    async immutablePut(c) {
      const r = await dht.immutablePut(buf(c.value))
      return { hash: hex(r.hash), closest: r.closestNodes.length }
    },
    async immutableGet(c) {
      const r = await dht.immutableGet(buf(c.hash))
      return r ? { value: hex(r.value) } : { value: null }
    },
    async join(c) {
      if (!swarm) {
        const Hyperswarm = require('hyperswarm')
        swarm = new Hyperswarm({ dht })
        // every peer hyperswarm's discovery hands over, whether or not a connection follows
        const handlePeer = swarm._handlePeer.bind(swarm)
        swarm._handlePeer = (peer, topic) => {
          discovered.add(hex(peer.publicKey))
          return handlePeer(peer, topic)
        }
        swarm.on('connection', (conn, info) => {
          conn.on('error', () => {})
          out({
            event: 'connection',
            remotePublicKey: hex(conn.remotePublicKey),
            publicKey: hex(conn.publicKey),
            topics: info.topics.map(hex)
          })
        })
      }
      const d = swarm.join(buf(c.topic), { server: !!c.server, client: !!c.client })
      if (c.server) await d.flushed()
      else await swarm.flush()
      return { ok: true, publicKey: hex(swarm.keyPair.publicKey), discovered: [...discovered] }
    },
    async request(c) {
      try {
        const r = await dht.request(
          { command: c.command, target: buf(c.target), value: buf(c.value), token: buf(c.token) },
          { host: c.host, port: c.port },
          { retry: false }
        )
        return { error: r.error, value: hex(r.value), token: hex(r.token), id: hex(r.from.id) }
      } catch (err) {
        if (err && err.code === 'REQUEST_TIMEOUT') return { timeout: true }
        throw err
      }
    },
    async info() {
      return { port: dht.address().port, id: hex(dht.id), table: dht.toArray().map((n) => n.port) }
    }
  }

  onCommands(async (c) => {
    await ready
    const op = ops[c.cmd]
    if (!op) return out({ id: c.id, error: 'unknown cmd' })
    try {
      out({ id: c.id, ...(await op(c)) })
    } catch (err) {
      out({ id: c.id, failed: String(err && err.message) })
    }
  })
  await ready
  out({ ready: true, port: dht.address().port, id: hex(dht.id) })
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
