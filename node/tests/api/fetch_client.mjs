// A JavaScript client of `opengateway api` over Node's built-in fetch (Node 20), as a web page
// or a Node program would call it: list models, a chat completion, a streamed chat completion
// read as server-sent events, an error. Usage: node fetch_client.mjs BASE_URL
const base = process.argv[2]

function check (cond, what) {
  if (!cond) {
    console.error('FAILED: ' + what)
    process.exit(1)
  }
}

const models = await (await fetch(base + '/v1/models')).json()
check(models.object === 'list' && models.data[0].id === 'echo', JSON.stringify(models))

const chatBody = (extra) => JSON.stringify({ model: 'echo', messages: [{ role: 'user', content: 'hi from fetch' }], ...extra })
const r = await fetch(base + '/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: chatBody({}) })
check(r.status === 200 && r.headers.get('x-opengateway-node') === 'fetch-node', r.status)
const full = await r.json()
check(full.choices[0].message.content === '[echo] hi from fetch', JSON.stringify(full))
check(full.usage.total_tokens === 3 + 4, JSON.stringify(full.usage))

const s = await fetch(base + '/v1/chat/completions', { method: 'POST', body: chatBody({ stream: true }) })
check(s.headers.get('content-type').startsWith('text/event-stream'), s.headers.get('content-type'))
const decoder = new TextDecoder()
let buf = ''
const events = []
for await (const bytes of s.body) {
  buf += decoder.decode(bytes, { stream: true })
  let i
  while ((i = buf.indexOf('\n\n')) >= 0) {
    const ev = buf.slice(0, i)
    buf = buf.slice(i + 2)
    for (const line of ev.split('\n')) if (line.startsWith('data: ')) events.push(line.slice(6))
  }
}
check(events.at(-1) === '[DONE]', events.at(-1))
const chunks = events.slice(0, -1).map((e) => JSON.parse(e))
const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('')
check(text === '[echo] hi from fetch', text)
check(chunks.at(-1).choices[0].finish_reason === 'stop', JSON.stringify(chunks.at(-1)))

const bad = await fetch(base + '/v1/completions', { method: 'POST', body: '{"model": "echo", "prompt": 5}' })
const err = await bad.json()
check(bad.status === 400 && err.error.param === 'prompt' && err.error.type === 'invalid_request_error', JSON.stringify(err))
console.log(`fetch: models, chat, streamed chat (${chunks.length} chunks) and a 400 ok`)
