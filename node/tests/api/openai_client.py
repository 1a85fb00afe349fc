"""The official `openai` Python client (and `prometheus_client`'s parser) against a running
`opengateway api`. Usage: openai_client.py BASE_URL MODE, MODE one of echo, load, native.
Exits non-zero with a message on the first failed check; prints one summary line."""

import asyncio
import sys
import urllib.request

import openai
from prometheus_client.parser import text_string_to_metric_families

BASE = sys.argv[1]
MODE = sys.argv[2]


def check(cond, what):
    if not cond:
        sys.exit(f"FAILED: {what}")


def metrics():
    """Every sample of /metrics, parsed by prometheus_client: {(name, labels): value}."""
    with urllib.request.urlopen(BASE + "/metrics") as r:
        check(r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), "content type")
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(m, name, **labels):
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


def client():
    return openai.OpenAI(base_url=BASE + "/v1", api_key="unused", max_retries=0)


def echo():
    c = client()
    before = metrics()
    ids = [m.id for m in c.models.list().data]
    check(ids == ["echo"], f"models {ids}")

    r = c.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "hello from python"}], seed=7
    )
    check(r.choices[0].message.content == "[echo] hello from python", r)
    check(r.choices[0].finish_reason == "stop", r)
    check((r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (3, 4, 7), r.usage)

    r = c.completions.create(model="echo", prompt="one two three four", max_tokens=3, stop=["zzz"])
    check(r.choices[0].text == "[echo] one two" and r.choices[0].finish_reason == "length", r)

    parts, finish, usage = [], None, None
    for ch in c.chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": "stream these words please"}],
        stream=True,
        stream_options={"include_usage": True},
        temperature=0.5,
        top_p=0.9,
    ):
        if ch.usage:
            usage = ch.usage
        for choice in ch.choices:
            if choice.delta.content:
                parts.append(choice.delta.content)
            finish = choice.finish_reason or finish
    check("".join(parts) == "[echo] stream these words please", parts)
    check(len(parts) == 5, f"streamed in {len(parts)} pieces: {parts}")
    check(finish == "stop" and usage.completion_tokens == 5, (finish, usage))

    try:
        c.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
        check(False, "unknown model accepted")
    except openai.NotFoundError as e:
        check(e.status_code == 404 and e.code == "model_not_found", e)
    try:
        c.chat.completions.create(model="echo", messages=[], temperature=0.1)
        check(False, "empty messages accepted")
    except openai.BadRequestError as e:
        check(e.status_code == 400 and e.body["type"] == "invalid_request_error", e.body)

    after = metrics()
    ok = lambda m, ep: sample(m, "opengateway_api_requests_total", endpoint=ep, outcome="ok")
    check(ok(after, "chat") - ok(before, "chat") == 2, "chat ok counter moved by 2")
    check(ok(after, "completions") - ok(before, "completions") == 1, "completions ok counter")
    check(sample(after, "opengateway_api_requests_total", endpoint="chat", outcome="model_not_found") >= 1, "404 counted")
    check(sample(after, "opengateway_completion_tokens_total") - sample(before, "opengateway_completion_tokens_total") == 12, "tokens counted")
    check(sample(after, "opengateway_api_time_to_first_token_seconds_count", endpoint="chat") >= 2, "ttft observed")
    check(sample(after, "opengateway_queue_limit") == 8, "queue limit gauge")
    print("echo: models, chat, completion, streamed chat, 404, 400 and metrics ok")


async def load(n):
    c = openai.AsyncOpenAI(base_url=BASE + "/v1", api_key="unused", max_retries=0)
    before = metrics()

    async def one(i):
        words = " ".join(f"w{i}x{k}" for k in range(40))
        try:
            stream = await c.chat.completions.create(
                model="echo", messages=[{"role": "user", "content": words}], stream=True
            )
            text, finish = "", None
            async for ch in stream:
                for choice in ch.choices:
                    text += choice.delta.content or ""
                    finish = choice.finish_reason or finish
            check(text == "[echo] " + words and finish == "stop", f"request {i} cut short: {finish} {text!r}")
            return "ok"
        except openai.RateLimitError as e:
            check(e.status_code == 429 and e.code == "rate_limit_exceeded", e)
            return "429"

    results = await asyncio.gather(*(one(i) for i in range(n)))
    ok, refused = results.count("ok"), results.count("429")
    check(ok + refused == n, results)
    check(ok >= 1, "nothing answered")
    after = metrics()
    moved = lambda outcome: sample(after, "opengateway_api_requests_total", endpoint="chat", outcome=outcome) - sample(
        before, "opengateway_api_requests_total", endpoint="chat", outcome=outcome
    )
    check((moved("ok"), moved("rate_limited")) == (ok, refused), "server counted the same outcomes")
    check(sample(after, "opengateway_queue_waiting") == 0, "queue drained")
    print(f"load: {n} concurrent streams: {ok} answered in full, {refused} refused with 429")


def native():
    c = client()
    model = c.models.list().data[0].id
    pieces, usage, finish = [], None, None
    for ch in c.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Write one sentence about peer-to-peer networks."}],
        stream=True,
        max_tokens=12,
        temperature=0,
        stream_options={"include_usage": True},
    ):
        if ch.usage:
            usage = ch.usage
        for choice in ch.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            finish = choice.finish_reason or finish
    check(len(pieces) >= 5, f"streamed token by token: {pieces}")
    check(usage.completion_tokens <= 12 and usage.completion_tokens >= len(pieces) - 1, usage)
    check(usage.prompt_tokens > 10, usage)
    check(finish in ("stop", "length"), finish)

    # A client that goes away mid-stream: the generation stops long before max_tokens.
    before = metrics()
    stream = c.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}],
        stream=True,
        max_tokens=400,
        temperature=0,
    )
    got = 0
    for ch in stream:
        if ch.choices and ch.choices[0].delta.content:
            got += 1
            if got == 3:
                break
    stream.close()
    import time

    deadline = time.monotonic() + 60
    while True:
        m = metrics()
        cancelled = sample(m, "opengateway_generations_total", finish="cancelled") - sample(
            before, "opengateway_generations_total", finish="cancelled"
        )
        if cancelled == 1 and sample(m, "opengateway_queue_running") == 0:
            break
        check(time.monotonic() < deadline, "the generation did not stop after the client left")
        time.sleep(0.05)
    made = sample(m, "opengateway_completion_tokens_total") - sample(before, "opengateway_completion_tokens_total")
    check(made < 400, f"{made} tokens generated for a client that left after 3")
    check(sample(m, "opengateway_api_requests_total", endpoint="chat", outcome="cancelled") >= 1, "cancel counted")
    print(f"native: {len(pieces)} streamed pieces, usage {usage.prompt_tokens}+{usage.completion_tokens}; "
          f"disconnect stopped the generation after {int(made)} tokens")


if MODE == "echo":
    echo()
elif MODE == "load":
    asyncio.run(load(int(sys.argv[3]) if len(sys.argv) > 3 else 64))
elif MODE == "native":
    native()
else:
    sys.exit(f"unknown mode {MODE}")
