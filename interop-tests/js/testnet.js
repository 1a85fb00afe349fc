'use strict'
// Starts a hyperdht testnet of N nodes on 127.0.0.1 and prints
// {"bootstrap": {host, port}, "nodes": [{host, port, id}]}; stops when stdin closes.
const createTestnet = require('hyperdht/testnet')
const { out, exitWithParent } = require('./common')

async function main() {
  const size = Number(process.argv[2] || 4)
  const testnet = await createTestnet(size, { host: '127.0.0.1' })
  exitWithParent(() => testnet.destroy())
  out({
    bootstrap: testnet.bootstrap[0],
    nodes: testnet.nodes.map((n) => ({
      host: '127.0.0.1',
      port: n.address().port,
      id: n.id ? Buffer.from(n.id).toString('hex') : null
    }))
  })
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
