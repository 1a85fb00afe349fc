'use strict'
// A probe of an OpenGateway node's tolerance of bad input (for the JS node og-node.js and the
// Rust `opengateway` alike). It joins the padded topic of argv[2] as a client through the DHT of
// OPENGATEWAY_BOOTSTRAP, waits for the first node's peer_hello, then writes on that connection:
// an empty line, lines that are not JSON or not objects, requests without request_id or prompt
// (or with them null), a request on a line over 1 MiB, and three good requests whose request_id
// is a number, an object and the string "last". It prints one JSON line
// {"hello": <the node's hello>, "responses": [<every inference_response, in order>]}
// once the response to "last" arrived (or {"error": ...} after 30 s) and exits.
const Hyperswarm = require('hyperswarm')
const DHT = require('hyperdht')
const b4a = require('b4a')
const { out } = require('./common')

function bootstrapNodes() {
  return (process.env.OPENGATEWAY_BOOTSTRAP || '').split(',').filter(Boolean).map((s) => {
    const i = s.lastIndexOf(':')
    return { host: s.slice(0, i), port: Number(s.slice(i + 1)) }
  })
}

async function main() {
  const cluster = process.argv[2]
  const topic = b4a.alloc(32)
  b4a.from(cluster, 'utf8').copy(topic, 0, 0, 32)
  const swarm = new Hyperswarm({ dht: new DHT({ host: '127.0.0.1', bootstrap: bootstrapNodes() }) })
  const finish = (result, code) => {
    out(result)
    Promise.race([swarm.destroy(), new Promise((resolve) => setTimeout(resolve, 2000))]).then(() =>
      process.exit(code)
    )
  }
  const timer = setTimeout(() => finish({ error: 'no response to "last" within 30 s' }, 1), 30000)
  let used = false
  swarm.on('connection', (conn) => {
    conn.on('error', () => {})
    if (used) return
    used = true
    let hello = null
    const responses = []
    let buf = ''
    conn.on('data', (d) => {
      buf += d.toString()
      let i
      while ((i = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, i)
        buf = buf.slice(i + 1)
        let msg
        try {
          msg = JSON.parse(line)
        } catch {
          continue
        }
        if (msg.type === 'peer_hello' && !hello) {
          hello = msg
          probe(conn)
        } else if (msg.type === 'inference_response') {
          responses.push(msg)
          if (msg.request_id === 'last') {
            clearTimeout(timer)
            finish({ hello, responses }, 0)
          }
        }
      }
    })
  })
  const discovery = swarm.join(topic, { server: false, client: true })
  // The node may announce after our first lookup: look again each second until connected.
  const again = setInterval(() => (used ? clearInterval(again) : discovery.refresh().catch(() => {})), 1000)
}

function probe(conn) {
  const req = (fields) => JSON.stringify({ type: 'inference_request', ...fields }) + '\n'
  conn.write('\n')
  conn.write('   \n')
  conn.write('this is not json\n')
  conn.write('[1,2,3]\n')
  conn.write('"a string"\n')
  conn.write(req({ prompt: 'no request_id' }))
  conn.write(req({ request_id: 'no-prompt' }))
  conn.write(req({ request_id: null, prompt: 'null request_id' }))
  conn.write(req({ request_id: 'null-prompt', prompt: null }))
  conn.write(JSON.stringify({ type: 'something_else', request_id: 'other' }) + '\n')
  // A request on a line of 2 MiB, sent in pieces.
  const big = req({ request_id: 'too-long', prompt: 'x'.repeat(2 * 1024 * 1024) })
  for (let i = 0; i < big.length; i += 65536) conn.write(big.slice(i, i + 65536))
  conn.write(req({ request_id: 42, prompt: '' }))
  conn.write(req({ request_id: { nested: [1, 'two'] }, prompt: 'object id' }))
  conn.write(req({ request_id: 'last', prompt: 'done?' }))
}

main().catch((err) => {
  out({ error: String(err && err.message) })
  process.exit(1)
})
