"""The soak's requests: a fixed, seeded set of OpenAI requests, and one client call that
classifies its outcome against a deadline.

Every request uses temperature 0 on the deterministic `ferry make-model` checkpoint, so
the text of a correct answer is known in advance (taken from a colocated `ferry serve`).

One call, `send(host, port, spec, deadline_s, request_id)`, returns an `Outcome`:
  correct  HTTP 200 and the generated text equals the reference
  error    an explicit failure the client can see: an HTTP error status, a refused or
           reset connection, a connection closed before or during the answer, an error
           object in a 200 body or an in-band SSE error event
  wrong    a complete HTTP 200 answer whose text differs from the reference (or that is
           not a readable answer at all)
  hung     no complete answer before the deadline
The deadline bounds the whole call (connect, headers, every body read): each socket
operation gets the time that is left as its timeout, so a call never outlives it by more
than the scheduling slack. Thread-safe: calls share nothing.
"""

import http.client
import json
import random
import socket
import time

# The request set is the same in every run (it is not derived from --seed), so that runs
# with different chaos seeds answer the same questions.
REQUEST_SET_SEED = 20240601
_WORDS = (
    "ferry river bank water gull engine deck rope harbour tide north wind cargo "
    "passenger ticket bridge captain morning evening fog lantern wave pier island "
    "crossing current anchor sail horn bell timber stone market road"
).split()
# Shared by several prompts, so that later requests hit the prefix cache in full or in part.
_COMMON_PREFIX = (
    "The river carried the ferry across the wide brown water while the passengers "
    "watched the far bank grow slowly larger and the gulls circled overhead calling"
)

OUTCOMES = ("correct", "error", "wrong", "hung")


class RequestSpec:
    """One request of the fixed set: an id, the API path, the JSON body."""

    def __init__(self, spec_id, path, body):
        self.id = spec_id
        self.path = path
        self.body = body
        self.stream = bool(body.get("stream"))
        self.chat = path.endswith("/chat/completions")
        self.payload = json.dumps(body).encode()

    def describe(self):
        kind = ("chat" if self.chat else "completion") + (" stream" if self.stream else "")
        return "%s (%s, max_tokens %d)" % (self.id, kind, self.body["max_tokens"])


def build_request_set(model="tiny"):
    """The fixed request set: completions and chat, streaming and not, prompts from one
    to several KV blocks (some sharing a prefix), max_tokens from 1 to 32."""
    rng = random.Random(REQUEST_SET_SEED)
    specs = []

    def words(n):
        return " ".join(rng.choice(_WORDS) for _ in range(n))

    shapes = [
        # (api, stream, prompt kind, max_tokens)
        ("completion", False, "short", 8),
        ("completion", False, "prefix", 16),
        ("completion", False, "prefix+", 12),
        ("completion", True, "prefix", 10),
        ("completion", True, "long", 24),
        ("completion", False, "long", 32),
        ("completion", False, "medium", 1),
        ("completion", True, "medium", 4),
        ("completion", False, "medium", 20),
        ("chat", False, "short", 12),
        ("chat", True, "short", 10),
        ("chat", False, "medium", 16),
        ("chat", True, "long", 8),
        ("chat", False, "prefix+", 24),
        ("completion", False, "prefix+", 6),
        ("chat", True, "medium", 32),
    ]
    for i, (api, stream, kind, max_tokens) in enumerate(shapes):
        if kind == "short":
            text = words(rng.randint(1, 4))
        elif kind == "medium":
            text = words(rng.randint(10, 30))
        elif kind == "long":
            text = words(rng.randint(60, 110))
        elif kind == "prefix":
            text = _COMMON_PREFIX
        else:  # prefix+: the common prefix and a tail of its own (a partial cache hit)
            text = _COMMON_PREFIX + " " + words(rng.randint(3, 20))
        body = {"model": model, "max_tokens": max_tokens, "temperature": 0}
        if api == "chat":
            body["messages"] = [{"role": "user", "content": text}]
            path = "/v1/chat/completions"
        else:
            body["prompt"] = text
            path = "/v1/completions"
        if stream:
            body["stream"] = True
        specs.append(RequestSpec("r%02d-%s-%s" % (i, api, kind), path, body))
    return specs


class Outcome:
    """What one call ended with. `kind` refines error and hung outcomes ("http_503",
    "refused", "sse_error", "hung_headers", ...); `text` is the answer's text if any."""

    def __init__(self, outcome, kind="", detail="", text=None, status=0):
        self.outcome = outcome
        self.kind = kind
        self.detail = detail
        self.text = text
        self.status = status


class _DeadlinePassed(Exception):
    pass


def _parse_answer(spec, status, content_type, raw, saw_done):
    """Outcome of a response that arrived in full (or ended): classify and extract text."""
    body = raw.decode("utf-8", errors="replace")
    if status != 200:
        message = body[:200]
        try:
            message = json.loads(body)["error"]["message"][:200]
        except (ValueError, KeyError, TypeError):
            pass
        return Outcome("error", "http_%d" % status, message, status=status)
    if "text/event-stream" in content_type or body.startswith("data:"):
        text = ""
        for event in body.split("\n\n"):
            event = event.strip()
            if not event.startswith("data:"):
                continue
            data = event[5:].strip()
            if data == "[DONE]":
                break
            try:
                chunk = json.loads(data)
            except ValueError:
                return Outcome("wrong", "bad_sse_json", data[:200], status=status)
            if "error" in chunk:
                msg = str(chunk["error"].get("message", chunk["error"]))[:200]
                return Outcome("error", "sse_error", msg, status=status)
            for choice in chunk.get("choices", []):
                text += choice.get("text") or (choice.get("delta") or {}).get("content") or ""
        if not saw_done:
            return Outcome("error", "stream_cut", "the stream ended without [DONE]", text, status)
        if not spec.stream:
            return Outcome("wrong", "stream_for_json", "an event stream for stream:false", text,
                           status)
        return Outcome("correct", text=text, status=status)
    try:
        j = json.loads(body)
    except ValueError:
        return Outcome("wrong", "bad_json", body[:200], status=status)
    if isinstance(j, dict) and "error" in j:
        return Outcome("error", "error_in_200", str(j["error"])[:200], status=status)
    try:
        choice = j["choices"][0]
        text = choice["text"] if "text" in choice else choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return Outcome("wrong", "no_choices", body[:200], status=status)
    if spec.stream:
        return Outcome("wrong", "json_for_stream", "a JSON body for stream:true", text, status)
    return Outcome("correct", text=text, status=status)


def send(host, port, spec, deadline_s, request_id):
    """POSTs `spec` and returns its Outcome; never takes longer than `deadline_s` (plus
    scheduling slack). "correct" here only means a complete, readable 200 answer: the
    caller compares `text` with the reference and turns a mismatch into "wrong"."""
    deadline = time.monotonic() + deadline_s
    phase = "connect"
    received = 0

    def left():
        r = deadline - time.monotonic()
        if r <= 0:
            raise _DeadlinePassed()
        return r

    conn = http.client.HTTPConnection(host, port, timeout=left())
    try:
        conn.connect()
        sock = conn.sock  # kept: http.client drops conn.sock once a response will close
        phase = "headers"
        conn.request("POST", spec.path, body=spec.payload,
                     headers={"Content-Type": "application/json", "X-Request-Id": request_id,
                              "Connection": "close"})
        sock.settimeout(left())
        resp = conn.getresponse()
        phase = "body"
        content_type = resp.getheader("Content-Type", "")
        chunks = []
        saw_done = False
        tail = b""
        while True:
            sock.settimeout(left())
            data = resp.read1(65536)
            if not data:
                break
            chunks.append(data)
            received += len(data)
            # An SSE client stops at [DONE], as OpenAI's do (the marker may straddle reads).
            window = tail + data
            if b"data: [DONE]" in window:
                saw_done = True
                break
            tail = window[-16:]
        if resp.length not in (None, 0):
            return Outcome("error", "body_cut", "%d bytes missing" % resp.length,
                           status=resp.status)
        return _parse_answer(spec, resp.status, content_type, b"".join(chunks), saw_done)
    except (_DeadlinePassed, socket.timeout):
        return Outcome("hung", "hung_" + phase, "%d bytes received" % received)
    except ConnectionRefusedError as e:
        return Outcome("error", "refused", str(e))
    except http.client.RemoteDisconnected as e:
        return Outcome("error", "closed_" + phase, str(e))
    except http.client.IncompleteRead as e:
        return Outcome("error", "body_cut", repr(e)[:200])
    except (ConnectionResetError, BrokenPipeError) as e:
        return Outcome("error", "reset_" + phase, str(e))
    except http.client.HTTPException as e:
        return Outcome("error", "http_protocol", repr(e)[:200])
    except OSError as e:
        return Outcome("error", "oserror_" + phase, str(e)[:200])
    finally:
        conn.close()


def reference_answers(host, port, specs, deadline_s=60.0):
    """Asks every spec twice of a colocated server. Returns ({spec id: text}, problems):
    a problem is a request that did not answer or answered differently the second time
    (the harness cannot judge answers then)."""
    ref, problems = {}, []
    for spec in specs:
        texts = []
        for attempt in range(2):
            o = send(host, port, spec, deadline_s, "soak-ref-%s-%d" % (spec.id, attempt))
            if o.outcome != "correct":
                problems.append("%s: %s %s %s" % (spec.id, o.outcome, o.kind, o.detail))
                break
            texts.append(o.text)
        if len(texts) == 2:
            if texts[0] != texts[1]:
                problems.append("%s: not deterministic: %r then %r" % (spec.id, *texts))
            ref[spec.id] = texts[0]
    return ref, problems
