'use strict'
// A hyperdht testnet on 127.0.0.1 that answers commands about its nodes.
// argv: size [bootstrapHost:port|-] [ephemeral]. `size` persistent storage nodes
// (`hyperdht/testnet`), then `ephemeral` more nodes with JS's default options (ephemeral, so
// they route and query but store nothing until they turn persistent). Prints
// {"ready": true, nodes: [...]} (an ephemeral node's id is null) then one JSON line per
// command read from stdin: {id, cmd: 'info'|'tables'|'findNode'|'ping', ...}.
const createTestnet = require('hyperdht/testnet')
const { out, exitWithParent, onCommands } = require('./common')

const hex = (b) => (b ? Buffer.from(b).toString('hex') : null)

async function main() {
  const size = Number(process.argv[2] || 5)
  const opts = { host: '127.0.0.1' }
  if (process.argv[3] && process.argv[3] !== '-') {
    const [host, port] = process.argv[3].split(':')
    opts.bootstrap = [{ host, port: Number(port) }]
  }
  const testnet = await createTestnet(size, opts)
  for (let i = 0; i < Number(process.argv[4] || 0); i++) {
    await testnet.createNode().fullyBootstrapped() // createNode adds it to testnet.nodes
  }
  exitWithParent(() => testnet.destroy())
  const info = () =>
    testnet.nodes.map((n) => ({ host: '127.0.0.1', port: n.address().port, id: hex(n.id) }))
  out({ ready: true, bootstrap: testnet.bootstrap[0], nodes: info() })

  onCommands(async (c) => {
    try {
      if (c.cmd === 'info') return out({ id: c.id, nodes: info() })
      if (c.cmd === 'tables') {
        return out({
          id: c.id,
          tables: testnet.nodes.map((n) => ({
            port: n.address().port,
            table: n.toArray().map((x) => x.port)
          }))
        })
      }
      const node = testnet.nodes[c.from || 0]
      if (c.cmd === 'findNode') {
        const q = node.findNode(Buffer.from(c.target, 'hex'))
        let replies = 0
        for await (const _ of q) replies++ // eslint-disable-line no-unused-vars
        return out({
          id: c.id,
          replies,
          closest: q.closestReplies.map((r) => ({
            host: r.from.host,
            port: r.from.port,
            id: hex(r.from.id)
          }))
        })
      }
      if (c.cmd === 'ping') {
        const r = await node.ping({ host: c.host, port: c.port })
        return out({ id: c.id, ok: true, from: r.from.port, nodeId: hex(r.from.id), to: r.to })
      }
      out({ id: c.id, error: 'unknown cmd' })
    } catch (err) {
      out({ id: c.id, error: String(err && err.message) })
    }
  })
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
