#!/usr/bin/env python3
"""The soak's client classifier against a scripted HTTP server on a real socket: a hang
at any point is "hung" within the deadline (never "error", never a blocked harness), an
explicit failure is "error", a complete answer with other text is not "correct".

    python3 tests/soak/soak_requests_test.py
"""

import os
import socket
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from soak_requests import RequestSpec, send  # noqa: E402

DEADLINE = 1.5


def sse(*datas):
    return b"".join(b"data: " + d + b"\n\n" for d in datas)


def chunk(b):
    return b"%x\r\n%s\r\n" % (len(b), b)


class ScriptedServer:
    """Answers each connection by the request path's script; `release` ends every
    handler that is holding a connection open."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.release = threading.Event()
        self.threads = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _handle(self, conn):
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                more = conn.recv(65536)
                if not more:
                    return
                data += more
            head, _, rest = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v)
            while len(rest) < length:
                rest += conn.recv(65536)
            path = head.split(b" ")[1].decode()
            getattr(self, "do_" + path.strip("/").replace("-", "_"))(conn)

    def close(self):
        self.release.set()
        self.sock.close()
        for t in self.threads:
            t.join(5)

    @staticmethod
    def _json(conn, status, body):
        conn.sendall(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n%s" % (status, len(body), body))

    @staticmethod
    def _sse_head(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")

    def do_ok_json(self, conn):
        self._json(conn, 200, b'{"choices":[{"text":"hello"}]}')

    def do_ok_chat(self, conn):
        self._json(conn, 200, b'{"choices":[{"message":{"content":"hello"}}]}')

    def do_ok_sse(self, conn):
        self._sse_head(conn)
        for piece in (b'{"choices":[{"text":"hel"}]}', b'{"choices":[{"text":"lo"}]}'):
            conn.sendall(chunk(sse(piece)))
            time.sleep(0.05)
        conn.sendall(chunk(b"data: [DO"))
        conn.sendall(chunk(b"NE]\n\n") + b"0\r\n\r\n")

    def do_done_no_end(self, conn):  # [DONE] arrives, the chunked body never ends
        self._sse_head(conn)
        conn.sendall(chunk(sse(b'{"choices":[{"delta":{"content":"hello"}}]}', b"[DONE]")))
        self.release.wait()

    def do_wrong(self, conn):
        self._json(conn, 200, b'{"choices":[{"text":"nope"}]}')

    def do_garbage(self, conn):
        self._json(conn, 200, b"{not json")

    def do_unavailable(self, conn):
        self._json(conn, 503, b'{"error":{"message":"no healthy prefill","code":503}}')

    def do_error_200(self, conn):
        self._json(conn, 200, b'{"error":{"message":"kv load failed"}}')

    def do_sse_error(self, conn):
        self._sse_head(conn)
        conn.sendall(chunk(sse(b'{"choices":[{"text":"he"}]}', b'{"error":{"message":"boom"}}',
                               b"[DONE]")) + b"0\r\n\r\n")

    def do_hang_headers(self, conn):
        self.release.wait()

    def do_hang_body(self, conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"choices\":")
        self.release.wait()

    def do_hang_stream(self, conn):
        self._sse_head(conn)
        conn.sendall(chunk(sse(b'{"choices":[{"text":"hel"}]}')))
        self.release.wait()

    def do_trickle(self, conn):  # bytes keep coming, the answer never completes
        self._sse_head(conn)
        while not self.release.wait(0.2):
            try:
                conn.sendall(chunk(sse(b'{"choices":[{"text":"x"}]}')))
            except OSError:
                return

    def do_cut_chunked(self, conn):
        self._sse_head(conn)
        conn.sendall(chunk(sse(b'{"choices":[{"text":"hel"}]}')))

    def do_cut_eof(self, conn):  # close-delimited body, closed before [DONE]
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close"
                     b"\r\n\r\n" + sse(b'{"choices":[{"text":"hel"}]}'))

    def do_cut_length(self, conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"choices\":")

    def do_close_early(self, conn):
        pass

    def do_reset(self, conn):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class SendTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = ScriptedServer()

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def ask(self, path, stream=False, port=None):
        body = {"model": "m", "prompt": "p", "max_tokens": 4}
        if stream:
            body["stream"] = True
        t0 = time.monotonic()
        o = send("127.0.0.1", port or self.server.port, RequestSpec(path, "/" + path, body),
                 DEADLINE, "test-" + path)
        took = time.monotonic() - t0
        self.assertLess(took, DEADLINE + 0.5, "send outlived its deadline: %.2fs" % took)
        return o, took

    def assertOutcome(self, o, outcome, kind=None, text=None):
        self.assertEqual((o.outcome, o.kind if kind else None), (outcome, kind),
                         "detail: %s" % o.detail)
        if text is not None:
            self.assertEqual(o.text, text)

    def test_complete_answers_are_correct(self):
        self.assertOutcome(self.ask("ok-json")[0], "correct", text="hello")
        self.assertOutcome(self.ask("ok-chat")[0], "correct", text="hello")
        self.assertOutcome(self.ask("ok-sse", stream=True)[0], "correct", text="hello")

    def test_stream_that_says_done_is_complete_even_if_the_body_never_ends(self):
        o, took = self.ask("done-no-end", stream=True)
        self.assertOutcome(o, "correct", text="hello")
        self.assertLess(took, 1.0)

    def test_other_text_is_returned_for_the_caller_to_compare(self):
        self.assertOutcome(self.ask("wrong")[0], "correct", text="nope")

    def test_unreadable_200_is_wrong(self):
        self.assertOutcome(self.ask("garbage")[0], "wrong", "bad_json")
        self.assertOutcome(self.ask("ok-json", stream=True)[0], "wrong", "json_for_stream")

    def test_explicit_failures_are_errors(self):
        self.assertOutcome(self.ask("unavailable")[0], "error", "http_503")
        self.assertOutcome(self.ask("error-200")[0], "error", "error_in_200")
        self.assertOutcome(self.ask("sse-error", stream=True)[0], "error", "sse_error")
        self.assertOutcome(self.ask("cut-chunked", stream=True)[0], "error", "body_cut")
        self.assertOutcome(self.ask("cut-eof", stream=True)[0], "error", "stream_cut")
        self.assertOutcome(self.ask("cut-length")[0], "error", "body_cut")
        self.assertOutcome(self.ask("close-early")[0], "error", "closed_headers")
        self.assertIn(self.ask("reset")[0].outcome, ("error",))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead_port = s.getsockname()[1]
        self.assertOutcome(self.ask("x", port=dead_port)[0], "error", "refused")

    def test_hangs_are_hung_at_the_deadline(self):
        for path, kind in (("hang-headers", "hung_headers"), ("hang-body", "hung_body"),
                           ("hang-stream", "hung_body"), ("trickle", "hung_body")):
            o, took = self.ask(path, stream=path != "hang-body")
            self.assertOutcome(o, "hung", kind)
            self.assertGreater(took, DEADLINE - 0.1, path)

    def test_a_listener_that_never_accepts_is_hung(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(0)
        fillers = []
        try:  # fill the accept backlog so that connect() itself waits
            for _ in range(8):
                f = socket.socket()
                f.setblocking(False)
                f.connect_ex(s.getsockname())
                fillers.append(f)
            o, took = self.ask("x", port=s.getsockname()[1])
            self.assertEqual(o.outcome, "hung", o.detail)
        finally:
            for f in fillers:
                f.close()
            s.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
