'use strict'
// A JS @hyperswarm/secret-stream peer over TCP on 127.0.0.1, driven by the Rust interop tests
// (interop-tests/tests/noise_secret_stream.rs).
//
//   node secret-stream-peer.js <initiator|responder> <xx|ik> <seedHex> [port] [remotePublicKeyHex]
//        [keepAliveMs]
//
// xx: `new NoiseSecretStream(isInitiator, socket, { keyPair })` runs its own XX handshake.
// ik: the hyperdht hand-off. The IK messages of noise-handshake (prologue NS_PEER_HANDSHAKE)
//     travel as uint24-LE framed messages over the TCP socket (a test-only carrier: hyperdht
//     carries them inside DHT messages), then `new NoiseSecretStream(isInitiator, socket,
//     { handshake: { tx, rx, hash, publicKey, remotePublicKey } })`.
//
// Datagrams (`send()` / 'message'): secret-stream needs a raw stream with send/trySend, which a
// TCP socket lacks, so the socket gets send/trySend that carry the boxed datagram over a UDP
// socket on 127.0.0.1, and received UDP datagrams are emitted as the socket's 'message' event.
// The boxing and opening is secret-stream's own code.
//
// stdout events (JSON lines): listening {port, udpPort, publicKey}, connected {remotePublicKey,
// handshakeHash}, sent {bytes, sha256}, datagram {hex}, end {bytes, sha256,
// sizes, rawBytesRead}, error
// {message}, progress {bytes, sizes}, close. stdin commands: bulk {bytes, end}, messages
// {sizes, end}, progress,
// datagrams {port, messages: [hex]}, end.

const net = require('net')
const dgram = require('dgram')
const crypto = require('crypto')
const b4a = require('b4a')
const NoiseSecretStream = require('@hyperswarm/secret-stream')
const Noise = require('noise-handshake')
const curve = require('noise-curve-ed')
const { NS } = require('hyperdht/lib/constants')
const { out, exitWithParent, onCommands } = require('./common')

const [role, mode, seedHex, portArg, remoteHex, keepAliveArg] = process.argv.slice(2)
// optional 6th argument: secret-stream's keepAlive in ms (hyperdht uses 5000)
const keepAlive = Number(keepAliveArg || 0)
const isInitiator = role === 'initiator'
const keyPair = NoiseSecretStream.keyPair(b4a.from(seedHex, 'hex'))

// The byte pattern both sides use for bulk transfers: byte i of the stream.
function pattern(offset, len) {
  const buf = b4a.allocUnsafe(len)
  for (let k = 0; k < len; k++) {
    const i = offset + k
    buf[k] = (i * 7 + (i >>> 11)) & 255
  }
  return buf
}

function frameReader(socket, onframe) {
  // reads uint24-LE framed IK messages; hands over leftover bytes with the last one
  let buf = b4a.alloc(0)
  const ondata = (d) => {
    buf = b4a.concat([buf, d])
    while (buf.byteLength >= 3) {
      const len = buf[0] | (buf[1] << 8) | (buf[2] << 16)
      if (buf.byteLength < 3 + len) return
      const msg = b4a.from(buf.subarray(3, 3 + len))
      buf = buf.subarray(3 + len)
      if (onframe(msg, buf) === false) {
        socket.removeListener('data', ondata)
        return
      }
    }
  }
  socket.on('data', ondata)
}

function frame(msg) {
  const f = b4a.alloc(3 + msg.byteLength)
  f[0] = msg.byteLength & 255
  f[1] = (msg.byteLength >>> 8) & 255
  f[2] = (msg.byteLength >>> 16) & 255
  f.set(msg, 3)
  return f
}

function ikHandshake(socket, cb) {
  const noise = new Noise('IK', isInitiator, curve.generateKeyPair(keyPair.secretKey), { curve })
  if (isInitiator) {
    noise.initialise(NS.PEER_HANDSHAKE, b4a.from(remoteHex, 'hex'))
    socket.write(frame(noise.send(b4a.from('js-ik-initiator'))))
    frameReader(socket, (msg, rest) => {
      noise.recv(msg)
      done(rest)
      return false
    })
  } else {
    noise.initialise(NS.PEER_HANDSHAKE)
    frameReader(socket, (msg, rest) => {
      noise.recv(msg)
      socket.write(frame(noise.send(b4a.from('js-ik-responder'))))
      done(rest)
      return false
    })
  }
  function done(rest) {
    socket.pause()
    cb({
      tx: b4a.from(noise.tx),
      rx: b4a.from(noise.rx),
      hash: b4a.from(noise.hash),
      publicKey: keyPair.publicKey,
      remotePublicKey: b4a.from(noise.rs)
    }, rest.byteLength ? b4a.from(rest) : null)
  }
}

const udp = dgram.createSocket('udp4')
let stream = null

function onsocket(socket) {
  socket.setNoDelay(true)
  socket.send = (buf) => {
    if (stream && stream.datagramPort) udp.send(buf, stream.datagramPort, '127.0.0.1')
    return true
  }
  socket.trySend = socket.send
  udp.on('message', (m) => socket.emit('message', m))

  if (mode === 'ik') {
    ikHandshake(socket, (handshake, rest) => {
      start(new NoiseSecretStream(isInitiator, socket, { handshake, keepAlive, data: rest || undefined }))
      socket.resume()
    })
  } else {
    start(new NoiseSecretStream(isInitiator, socket, { keyPair, keepAlive }))
  }
}

function start(s) {
  stream = s
  const hash = crypto.createHash('sha256')
  const sizes = []
  let bytes = 0
  s.on('connect', () => {
    out({
      event: 'connected',
      remotePublicKey: b4a.toString(s.remotePublicKey, 'hex'),
      handshakeHash: b4a.toString(s.handshakeHash, 'hex')
    })
  })
  s.on('data', (d) => {
    hash.update(d)
    bytes += d.byteLength
    if (sizes.length < 100000) sizes.push(d.byteLength)
  })
  s.progressBytes = () => bytes
  s.progressSizes = () => sizes
  s.on('end', () => {
    out({ event: 'end', bytes, sha256: hash.digest('hex'), sizes, rawBytesRead: s.rawBytesRead })
  })
  s.on('message', (m) => out({ event: 'datagram', hex: b4a.toString(m, 'hex') }))
  s.on('error', (err) => out({ event: 'error', message: err.message, bytes, sizes }))
  s.on('close', () => out({ event: 'close' }))
}

function writeAll(chunks, end) {
  const s = stream
  let i = 0
  const next = () => {
    while (i < chunks.length) {
      const ok = s.write(chunks[i++])
      if (!ok) return s.once('drain', next)
    }
    if (end) s.end()
  }
  next()
}

onCommands((c) => {
  if (c.cmd === 'bulk') {
    const h = crypto.createHash('sha256')
    const chunks = []
    const CH = 64 * 1024
    for (let off = 0; off < c.bytes; off += CH) {
      const b = pattern(off, Math.min(CH, c.bytes - off))
      h.update(b)
      chunks.push(b)
    }
    out({ event: 'sent', bytes: c.bytes, sha256: h.digest('hex') })
    writeAll(chunks, c.end)
  } else if (c.cmd === 'messages') {
    writeAll(c.sizes.map((n, k) => b4a.alloc(n, k & 255)), c.end)
  } else if (c.cmd === 'datagrams') {
    stream.datagramPort = c.port
    for (const m of c.messages) stream.send(b4a.from(m, 'hex'))
  } else if (c.cmd === 'datagram_port') {
    stream.datagramPort = c.port
  } else if (c.cmd === 'progress') {
    out({ event: 'progress', bytes: stream.progressBytes(), sizes: stream.progressSizes() })
  } else if (c.cmd === 'end') {
    stream.end()
  }
})

udp.bind(0, '127.0.0.1', () => {
  if (isInitiator) {
    const socket = net.connect(Number(portArg), '127.0.0.1')
    socket.on('connect', () => onsocket(socket))
    out({ event: 'listening', port: null, udpPort: udp.address().port, publicKey: b4a.toString(keyPair.publicKey, 'hex') })
  } else {
    const server = net.createServer((socket) => {
      server.close()
      onsocket(socket)
    })
    server.listen(0, '127.0.0.1', () => {
      out({
        event: 'listening',
        port: server.address().port,
        udpPort: udp.address().port,
        publicKey: b4a.toString(keyPair.publicKey, 'hex')
      })
    })
  }
})

exitWithParent(() => {
  if (stream) stream.destroy()
  udp.close()
})
