'use strict'
// A JS hyperdht peer for the connect/listen interop tests. argv[2] is the bootstrap port on
// 127.0.0.1. Commands on stdin (JSON lines), events on stdout:
//   {cmd:'listen', seed, refuse}   -> {event:'listening', publicKey}; each connection is echoed
//                                     back and reported as {event:'server-closed', remotePublicKey, received}
//   {cmd:'connect', id, publicKey, seed, data}
//                                  -> {event:'client-done', id, received, error}
const HyperDHT = require('hyperdht')
const { out, exitWithParent, onCommands } = require('./common')

const port = Number(process.argv[2])
const dht = new HyperDHT({ bootstrap: [{ host: '127.0.0.1', port }], host: '127.0.0.1' })
const servers = []

exitWithParent(async () => {
  for (const s of servers) await s.close()
  await dht.destroy()
})

onCommands(async (msg) => {
  try {
    if (msg.cmd === 'listen') {
      const keyPair = HyperDHT.keyPair(Buffer.from(msg.seed, 'hex'))
      const refuse = msg.refuse ? Buffer.from(msg.refuse, 'hex') : null
      const server = dht.createServer({
        firewall: (remotePublicKey) => !!(refuse && remotePublicKey.equals(refuse))
      })
      servers.push(server)
      server.on('connection', (socket) => {
        const chunks = []
        socket.on('data', (d) => {
          chunks.push(d)
          socket.write(d)
        })
        socket.on('end', () => socket.end())
        socket.on('error', () => {})
        socket.on('close', () => {
          out({
            event: 'server-closed',
            remotePublicKey: socket.remotePublicKey.toString('hex'),
            received: Buffer.concat(chunks).toString()
          })
        })
      })
      await server.listen(keyPair)
      out({ event: 'listening', publicKey: keyPair.publicKey.toString('hex') })
    } else if (msg.cmd === 'connect') {
      const keyPair = HyperDHT.keyPair(Buffer.from(msg.seed, 'hex'))
      const socket = dht.connect(Buffer.from(msg.publicKey, 'hex'), { keyPair })
      const chunks = []
      let error = null
      socket.on('open', () => socket.end(Buffer.from(msg.data)))
      socket.on('data', (d) => chunks.push(d))
      socket.on('error', (e) => {
        error = e.code || e.message
      })
      socket.on('close', () => {
        out({ event: 'client-done', id: msg.id, received: Buffer.concat(chunks).toString(), error })
      })
    }
  } catch (e) {
    out({ event: 'error', error: e.message })
  }
})

dht.ready().then(() => out({ event: 'ready', port: dht.address().port, firewalled: dht.firewalled }))
