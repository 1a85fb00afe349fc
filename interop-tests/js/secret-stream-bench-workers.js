'use strict'
// Secret-stream throughput of the JS stack with its two ends on two cores: the sending and the
// receiving @hyperswarm/secret-stream each run in their own worker thread, started from a fixed
// handshake as in secret-stream-bench.js, and pass their raw bytes through a MessageChannel
// (batches of up to 256 KiB, ArrayBuffers transferred, at most 1 MiB in flight, as the Rust
// side hands over 256 KiB batches through a channel of four). The
// counterpart of the two-thread Rust figure in noise/benches/secret_stream_throughput.rs.
//
//   node secret-stream-bench-workers.js <messageSize> <totalBytes> [<messageSize> <totalBytes> ...]
//
// Prints one JSON line per size: {size, bytes, seconds, mbPerSec}.

const { Worker, isMainThread, parentPort, workerData, MessageChannel } = require('worker_threads')

const BATCH = 256 * 1024
const IN_FLIGHT = 4 * BATCH

if (isMainThread) {
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
} else {
  worker(workerData)
}

function run(size, total) {
  return new Promise((resolve, reject) => {
    const { port1, port2 } = new MessageChannel()
    const sender = new Worker(__filename, {
      workerData: { role: 'send', size, total, port: port1 },
      transferList: [port1]
    })
    const receiver = new Worker(__filename, {
      workerData: { role: 'recv', size, total, port: port2 },
      transferList: [port2]
    })
    let ready = 0
    let start = 0n
    const onReady = (msg) => {
      if (msg !== 'ready' || ++ready < 2) return
      start = process.hrtime.bigint()
      sender.postMessage('go')
    }
    sender.on('message', onReady)
    receiver.on('message', (msg) => {
      if (msg === 'ready') return onReady(msg)
      if (msg && msg.done) {
        const seconds = Number(process.hrtime.bigint() - start) / 1e9
        sender.terminate()
        receiver.terminate()
        resolve({ size, bytes: msg.done, seconds, mbPerSec: msg.done / seconds / 1e6 })
      }
    })
    sender.on('error', reject)
    receiver.on('error', reject)
  })
}

async function main() {
  const args = process.argv.slice(2).map(Number)
  await run(16384, 16 * 1024 * 1024) // warm-up
  for (let k = 0; k + 1 < args.length; k += 2) {
    process.stdout.write(JSON.stringify(await run(args[k], args[k + 1])) + '\n')
  }
}

function worker({ role, size, total, port }) {
  const b4a = require('b4a')
  const NoiseSecretStream = require('@hyperswarm/secret-stream')
  const hash = b4a.alloc(64, 1)
  const k1 = b4a.alloc(32, 2)
  const k2 = b4a.alloc(32, 3)
  const pk1 = b4a.alloc(32, 4)
  const pk2 = b4a.alloc(32, 5)
  const s =
    role === 'send'
      ? new NoiseSecretStream(true, null, {
          handshake: { tx: k1, rx: k2, hash, publicKey: pk1, remotePublicKey: pk2 }
        })
      : new NoiseSecretStream(false, null, {
          handshake: { tx: k2, rx: k1, hash, publicKey: pk2, remotePublicKey: pk1 }
        })

  // raw bytes out: collected per event-loop turn, copied once into a buffer of their own and
  // transferred (small frames share Node's buffer pool, which must not be transferred)
  let batch = []
  let batchBytes = 0
  let outstanding = 0
  const flush = () => {
    const buf = b4a.allocUnsafeSlow(batchBytes)
    let at = 0
    for (const d of batch) {
      buf.set(d, at)
      at += d.byteLength
    }
    batch = []
    batchBytes = 0
    port.postMessage(buf, [buf.buffer])
  }
  let scheduled = false
  s.rawStream.on('data', (d) => {
    batch.push(d)
    batchBytes += d.byteLength
    outstanding += d.byteLength
    if (batchBytes >= BATCH) return flush()
    if (!scheduled) {
      scheduled = true
      setImmediate(() => {
        scheduled = false
        if (batchBytes > 0) flush()
      })
    }
  })

  if (role === 'send') {
    const msg = b4a.alloc(size, 0xaa)
    const count = Math.ceil(total / size)
    let sent = 0
    let waiting = false
    const pump = () => {
      while (sent < count) {
        if (outstanding > IN_FLIGHT) {
          waiting = true
          return
        }
        sent++
        if (!s.write(msg)) return s.once('drain', pump)
      }
    }
    port.on('message', (m) => {
      if (m && m.ack !== undefined) {
        outstanding -= m.ack
        if (waiting) {
          waiting = false
          pump()
        }
      } else {
        s.rawStream.write(b4a.from(m.buffer, m.byteOffset, m.byteLength))
      }
    })
    parentPort.on('message', (m) => {
      if (m === 'go') pump()
    })
  } else {
    const count = Math.ceil(total / size)
    let received = 0
    s.on('data', (d) => {
      received += d.byteLength
      if (received === count * size) parentPort.postMessage({ done: received })
    })
    port.on('message', (m) => {
      s.rawStream.write(b4a.from(m.buffer, m.byteOffset, m.byteLength))
      port.postMessage({ ack: m.byteLength })
    })
  }
  parentPort.postMessage('ready')
}
