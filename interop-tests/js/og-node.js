'use strict'
// The project's own JS OpenGateway node over the pinned `hyperswarm`, written from the observable
// behaviour of the OpenGateway POC (its `poc-node.js` daemon, `send-prompt.js` client and the
// `connect` command of its CLI), so the Rust `opengateway` node can be tested against a JS node in
// every seat of a cluster.
//
//   node og-node.js run [--record-pid]     the daemon, in the foreground
//   node og-node.js prompt ["text"] [model] [--model ID]
//   node og-node.js connect <cluster-id>   adds a cluster to state.json
//
// Environment, as the POC reads it: OPENGATEWAY_POC_ROOT (default ~/.opengateway-poc),
// POC_CLUSTER_IDS (comma list) or POC_CLUSTER_ID, NODE_NAME (default "node"),
// POC_INFERENCE_BACKEND (auto | ollama | echo; default auto), OLLAMA_URL, OLLAMA_MODEL (default
// llama3.2:1b), POC_SUPPORTED_MODELS (comma list); the prompt client also POC_PROMPT, POC_MODEL.
// Added for private networks and tests: OPENGATEWAY_BOOTSTRAP (host:port,...; else a "bootstrap"
// key of config.json; else the public HyperDHT bootstrap nodes), OPENGATEWAY_HOST (the address the
// DHT binds), OPENGATEWAY_TOPIC_SCHEME (padded | sha256 | both; default both).
//
// Wire: NDJSON on each encrypted connection. Each node greets with
// {"type":"peer_hello","node_name","clusters","supported_models"}, answers
// {"type":"inference_request","request_id","prompt","model"?} with
// {"type":"inference_response","request_id","response","model"} ("[error] ..." responses carry no
// model), and ignores empty, unparsable and unknown lines.
const fs = require('fs')
const os = require('os')
const path = require('path')
const crypto = require('crypto')
const Hyperswarm = require('hyperswarm')
const DHT = require('hyperdht')
const b4a = require('b4a')

const DEFAULT_CLUSTER = 'gatewayai-poc'
const PROMPT_TIMEOUT_MS = 30000
const OLLAMA_TIMEOUT_MS = 45000
// Lines longer than this are dropped without being buffered whole.
const MAX_LINE = 1024 * 1024
// The POC's model tiers, in order; the first one is the model used when none is asked for.
const TIERS = [
  'SmolLM-360M',
  'Qwen2-0.5B',
  'SmolLM-1.7B',
  'TinyLlama-1.1B',
  'Phi-2-2.7B',
  'Llama-3.2-1.5B',
  'Llama-3.2-3B',
  'Llama-3.1-8B',
  'Llama-3.1-70B',
  'Llama-3.1-405B'
]

const env = process.env
const list = (s) =>
  (s || '')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)

// ---------------------------------------------------------------------------------------------
// POC root files

const root = env.OPENGATEWAY_POC_ROOT || path.join(os.homedir(), '.opengateway-poc')
const file = (name) => path.join(root, name)

function readJson(name, fallback) {
  let text
  try {
    text = fs.readFileSync(file(name), 'utf8')
  } catch {
    return fallback
  }
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new Error(file(name) + ' is not valid JSON: ' + err.message)
  }
}

// Pretty-printed with a trailing newline, replaced in one rename.
function writeJson(name, value) {
  fs.mkdirSync(root, { recursive: true })
  const tmp = file('.' + name + '.' + process.pid + '.tmp')
  fs.writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n')
  fs.renameSync(tmp, file(name))
}

function readState() {
  const s = readJson('state.json', null)
  return s && typeof s === 'object' ? s : { clusters: [], nodePid: null }
}

function stateClusters(state) {
  return (Array.isArray(state.clusters) ? state.clusters : [])
    .map((c) => (c && typeof c === 'object' ? c.id : c))
    .filter((id) => typeof id === 'string' && id)
}

// ---------------------------------------------------------------------------------------------
// network settings and topics

function bootstrapNodes(config) {
  let spec = env.OPENGATEWAY_BOOTSTRAP || config.bootstrap
  if (!spec) return undefined
  if (typeof spec === 'string') spec = spec.split(',')
  return spec.map((e) => {
    if (e && typeof e === 'object') return { host: e.host, port: Number(e.port) }
    const s = String(e).trim()
    const i = s.lastIndexOf(':')
    const port = Number(s.slice(i + 1))
    if (i < 1 || !Number.isInteger(port)) throw new Error('bad bootstrap address ' + JSON.stringify(s))
    return { host: s.slice(0, i), port }
  })
}

function makeSwarm(config) {
  const opts = {}
  const bootstrap = bootstrapNodes(config)
  if (bootstrap) opts.bootstrap = bootstrap
  if (env.OPENGATEWAY_HOST) opts.host = env.OPENGATEWAY_HOST
  return new Hyperswarm({ dht: new DHT(opts) })
}

// The newest POC's topic: the id's UTF-8 bytes, cut to 32 and padded with zeros.
function paddedTopic(id) {
  const t = b4a.alloc(32)
  b4a.from(id, 'utf8').copy(t, 0, 0, 32)
  return t
}

// The design documents' (and older POC's) topic: SHA-256 of the id.
function sha256Topic(id) {
  return crypto.createHash('sha256').update(id, 'utf8').digest()
}

function topicsFor(clusters) {
  const scheme = env.OPENGATEWAY_TOPIC_SCHEME || 'both'
  if (!['padded', 'sha256', 'both'].includes(scheme)) {
    throw new Error('OPENGATEWAY_TOPIC_SCHEME must be padded, sha256 or both')
  }
  const out = new Map() // hex topic -> cluster id
  for (const id of clusters) {
    if (scheme !== 'sha256') out.set(b4a.toString(paddedTopic(id), 'hex'), { id, scheme: 'padded' })
    if (scheme !== 'padded') out.set(b4a.toString(sha256Topic(id), 'hex'), { id, scheme: 'sha256' })
  }
  return out
}

// Cluster ids a connection's topics stand for: sha256 topics we know map back to their id,
// padded ones read back as the (possibly cut) id, as the POC reads them.
function clustersFromTopics(topics, known) {
  const ids = []
  for (const t of topics || []) {
    const hex = b4a.toString(t, 'hex')
    const k = known.get(hex)
    let id
    if (k && k.scheme === 'sha256') {
      id = k.id
    } else {
      let end = t.length
      while (end > 0 && t[end - 1] === 0) end--
      id = b4a.toString(t.subarray(0, end), 'utf8')
    }
    if (id && !ids.includes(id)) ids.push(id)
  }
  return ids
}

// Calls `onmessage` with each parsed JSON object of the stream; lines that are empty, do not
// parse, or run past MAX_LINE are skipped (a long line is dropped as it arrives).
function readMessages(conn, onmessage) {
  let parts = []
  let size = 0
  let skipping = false
  conn.on('data', (data) => {
    let start = 0
    let nl
    while ((nl = data.indexOf(10, start)) !== -1) {
      const piece = data.subarray(start, nl)
      start = nl + 1
      if (!skipping && size + piece.length <= MAX_LINE) {
        parts.push(piece)
        const line = b4a.toString(b4a.concat(parts), 'utf8').trim()
        if (line) {
          let msg
          try {
            msg = JSON.parse(line)
          } catch {
            msg = null
          }
          if (msg && typeof msg === 'object' && !Array.isArray(msg)) onmessage(msg)
        }
      }
      parts = []
      size = 0
      skipping = false
    }
    const rest = data.subarray(start)
    if (skipping || rest.length === 0) return
    if (size + rest.length > MAX_LINE) {
      skipping = true
      parts = []
      size = 0
      return
    }
    parts.push(b4a.from(rest))
    size += rest.length
  })
}

const send = (conn, msg) => conn.write(JSON.stringify(msg) + '\n')

// ---------------------------------------------------------------------------------------------
// inference backends

async function ollama(prompt, model) {
  const url = (env.OLLAMA_URL || 'http://127.0.0.1:11434').replace(/\/$/, '') + '/api/generate'
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, prompt, stream: false }),
    signal: AbortSignal.timeout(OLLAMA_TIMEOUT_MS)
  })
  if (!res.ok) throw new Error('ollama answered HTTP ' + res.status)
  const body = await res.json()
  return String(body.response || '').trim()
}

async function infer(backend, req, supported) {
  const prompt = typeof req.prompt === 'string' ? req.prompt : JSON.stringify(req.prompt)
  const asked = typeof req.model === 'string' && req.model ? req.model : null
  const model = asked || env.OLLAMA_MODEL || 'llama3.2:1b'
  if (backend === 'echo') return { response: '[echo] ' + prompt, model, ran: 'echo' }
  const ollamaModel = env.OLLAMA_MODEL || 'llama3.2:1b'
  try {
    return { response: await ollama(prompt, ollamaModel), model, ran: 'ollama' }
  } catch (err) {
    if (backend === 'auto') return { response: '[echo] ' + prompt, model, ran: 'echo' }
    throw err
  }
}

// ---------------------------------------------------------------------------------------------
// run: the daemon

async function run(args) {
  const config = readJson('config.json', {}) || {}
  const state = readState()
  let clusters = list(env.POC_CLUSTER_IDS)
  if (!clusters.length && env.POC_CLUSTER_ID) clusters = [env.POC_CLUSTER_ID]
  if (!clusters.length && config.cluster_id) clusters = [config.cluster_id]
  if (!clusters.length) clusters = stateClusters(state)
  if (!clusters.length) clusters = [DEFAULT_CLUSTER]
  const nodeName = env.NODE_NAME || 'node'
  const backend = env.POC_INFERENCE_BACKEND || 'auto'
  if (!['auto', 'ollama', 'echo'].includes(backend)) {
    throw new Error('POC_INFERENCE_BACKEND must be auto, ollama or echo')
  }
  let supported = list(env.POC_SUPPORTED_MODELS)
  if (!supported.length && Array.isArray(state.supportedModels)) supported = state.supportedModels
  if (!supported.length) supported = [TIERS[0]]

  const peers = new Map()
  const writePeers = () =>
    writeJson('peers.json', { updated_at: new Date().toISOString(), peers: [...peers.values()] })
  writePeers()
  if (args['record-pid']) {
    // What the POC's `start` records for the daemon it spawns.
    writeJson('state.json', {
      ...state,
      clusters: clusters.map((id) => ({ id })),
      nodePid: process.pid,
      supportedModels: supported,
      runtime: { backend, model: env.OLLAMA_MODEL || 'llama3.2:1b' }
    })
  }

  const known = topicsFor(clusters)
  const swarm = makeSwarm(config)
  swarm.on('connection', (conn, info) => {
    const peerId = b4a.toString(conn.remotePublicKey, 'hex')
    const now = new Date().toISOString()
    const entry = {
      peer_id: peerId,
      node_name: 'unknown',
      clusters: clustersFromTopics(info.topics, known),
      connected_at: now,
      last_seen_at: now
    }
    peers.set(peerId, entry)
    writePeers()
    console.log('[peer] connected ' + peerId.slice(0, 16) + ' clusters=' + entry.clusters.join(','))
    conn.on('error', () => {})
    conn.on('close', () => {
      if (peers.get(peerId) === entry) {
        peers.delete(peerId)
        writePeers()
      }
    })
    send(conn, { type: 'peer_hello', node_name: nodeName, clusters, supported_models: supported })
    readMessages(conn, async (msg) => {
      entry.last_seen_at = new Date().toISOString()
      if (msg.type === 'peer_hello') {
        if (typeof msg.node_name === 'string') entry.node_name = msg.node_name
        if (Array.isArray(msg.clusters)) entry.clusters = msg.clusters.filter((c) => typeof c === 'string')
        writePeers()
        return
      }
      if (msg.type !== 'inference_request') return
      if (msg.request_id === undefined || msg.request_id === null) return
      if (msg.prompt === undefined || msg.prompt === null) return
      try {
        const r = await infer(backend, msg, supported)
        console.log('[request] ' + msg.request_id + ' -> ' + r.ran)
        if (!conn.destroyed) {
          send(conn, { type: 'inference_response', request_id: msg.request_id, response: r.response, model: r.model })
        }
      } catch (err) {
        console.error('[request] ' + msg.request_id + ' -> error ' + err.message)
        if (!conn.destroyed) {
          send(conn, { type: 'inference_response', request_id: msg.request_id, response: '[error] ' + err.message })
        }
      }
    })
  })
  const discoveries = [...known.keys()].map((topic) =>
    swarm.join(b4a.from(topic, 'hex'), { server: true, client: true })
  )
  // Two nodes whose first lookups cross before either has announced would not meet until
  // hyperswarm's next refresh, 10 minutes later; looking again 2 and 10 s after the start lets
  // nodes started together find each other.
  for (const ms of [2000, 10000]) {
    setTimeout(() => {
      for (const d of discoveries) d.refresh().catch(() => {})
    }, ms).unref()
  }
  console.log('Joined clusters: ' + clusters.join(', '))
  console.log('Inference backend: ' + backend)
  console.log('Supported models: ' + supported.join(', '))

  let stopping = false
  const shutdown = async () => {
    if (stopping) return
    stopping = true
    peers.clear()
    writePeers()
    await Promise.race([swarm.destroy(), new Promise((resolve) => setTimeout(resolve, 3000))])
    process.exit(0)
  }
  process.once('SIGINT', shutdown)
  process.once('SIGTERM', shutdown)
  await swarm.flush()
}

// ---------------------------------------------------------------------------------------------
// prompt: one request through the cluster

async function prompt(args) {
  const config = readJson('config.json', {}) || {}
  const cluster = env.POC_CLUSTER_ID || config.cluster_id || stateClusters(readState())[0] || DEFAULT_CLUSTER
  const text = args._[1] !== undefined ? args._[1] : env.POC_PROMPT || 'What is 2+2?'
  const model = typeof args.model === 'string' ? args.model : args._[2] || env.POC_MODEL || undefined
  const requestId = crypto.randomUUID()
  const swarm = makeSwarm(config)
  const done = (code, line, toStderr) => {
    if (toStderr) console.error(line)
    else console.log(line)
    Promise.race([swarm.destroy(), new Promise((resolve) => setTimeout(resolve, 2000))]).then(() =>
      process.exit(code)
    )
  }
  const timer = setTimeout(() => done(1, 'Timeout waiting for response', true), PROMPT_TIMEOUT_MS)
  let answered = false
  let anyAsked = false
  swarm.on('connection', (conn) => {
    conn.on('error', () => {})
    let asked = false
    readMessages(conn, (msg) => {
      // Ask each peer whose hello lists the cluster and, when a model is asked for, that can
      // serve it (a hello without supported_models says nothing, so it is asked too).
      const serves = (m) => !model || !Array.isArray(m) || m.length === 0 || m.includes(model)
      const member = Array.isArray(msg.clusters) && msg.clusters.includes(cluster)
      if (msg.type === 'peer_hello' && !asked && member && serves(msg.supported_models)) {
        asked = true
        anyAsked = true
        const req = { type: 'inference_request', request_id: requestId, prompt: text }
        if (model) req.model = model
        send(conn, req)
        return
      }
      if (msg.type === 'inference_response' && msg.request_id === requestId && !answered) {
        answered = true
        clearTimeout(timer)
        done(0, String(msg.response))
      }
    })
  })
  const discoveries = [...topicsFor([cluster]).keys()].map((topic) =>
    swarm.join(b4a.from(topic, 'hex'), { server: false, client: true })
  )
  // Nodes that announce after our first lookup are found by looking again every 2 s until one
  // has been asked (hyperswarm alone would look again only after 10 minutes).
  const again = setInterval(() => {
    if (anyAsked || answered) return clearInterval(again)
    for (const d of discoveries) d.refresh().catch(() => {})
  }, 2000)
  again.unref()
}

// ---------------------------------------------------------------------------------------------
// connect: the POC CLI's edit of state.json

function connect(args) {
  const id = args._[1]
  if (!id) {
    console.error('Usage: og-node.js connect <cluster-id>')
    process.exit(1)
  }
  const state = readState()
  if (!Array.isArray(state.clusters)) state.clusters = []
  if (stateClusters(state).includes(id)) {
    console.log('Already connected to ' + id)
    return
  }
  state.clusters.push({ id })
  if (!('nodePid' in state)) state.nodePid = null
  writeJson('state.json', state)
  console.log('Connected to ' + id + ' . Run "opengateway start" to join the cluster.')
}

function parseArgs(argv) {
  const args = { _: [] }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (!a.startsWith('--')) args._.push(a)
    else if (argv[i + 1] !== undefined && !argv[i + 1].startsWith('--')) args[a.slice(2)] = argv[++i]
    else args[a.slice(2)] = true
  }
  return args
}

async function main() {
  const args = parseArgs(process.argv.slice(2))
  const commands = { run, prompt, connect }
  const cmd = commands[args._[0]]
  if (!cmd) {
    console.error('Usage: og-node.js run [--record-pid] | prompt ["text"] [--model ID] | connect <cluster-id>')
    process.exit(1)
  }
  await cmd(args)
}

main().catch((err) => {
  console.error(err.message)
  process.exit(1)
})
