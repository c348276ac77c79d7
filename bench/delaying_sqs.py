"""A delaying SQS endpoint on 127.0.0.1 for the publishing benchmarks: answers after a fixed round trip.

It speaks what both publishers use, SendMessageBatch/SendMessage over botocore's JSON protocol (ours) and
SendMessage over the query protocol (LiteLLM's `aws_sqs`), accepts every message, keeps the bodies in memory, and
answers `GET /stats` with the requests and distinct LiteLLM calls received per queue (`POST /delay?ms=N` changes
the round trip). It stores nothing else, so
it costs far less CPU than moto and runs in its own process (`python -m bench.delaying_sqs --port P --delay-ms D`).

    python -m bench.delaying_sqs --port 9324 --delay-ms 40
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import time
import urllib.request
import uuid
from collections import defaultdict
from pathlib import Path
from urllib.parse import parse_qs

from litellm_mlflow import events
from litellm_mlflow.local.servers import free_port, kill, port_in_use, spawn

LOOPBACK = "127.0.0.1"


class Store:
    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.requests: dict[str, int] = defaultdict(int)
        self.bodies: dict[str, list[tuple[str, dict | None]]] = defaultdict(list)

    def stats(self) -> dict[str, dict[str, int]]:
        result = {}
        for queue, bodies in self.bodies.items():
            calls = set()
            for body, attributes in bodies:
                try:  # one event, or several packed ones
                    parts = events.decode_message(body, attributes)
                except Exception:  # counted as a message, not as a call
                    continue
                calls.update(part.event.call_id or part.event.event_id for part in parts if part.event is not None)
            result[queue] = {"requests": self.requests[queue], "messages": len(bodies), "calls": len(calls)}
        return result


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # SQS's checksum, not security


def answer(store: Store, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
    if method == "POST" and path.startswith("/delay"):
        store.delay_s = float(path.partition("ms=")[2] or 0) / 1000.0
        return 200, "application/json", b"{}"
    if method == "GET" and path.startswith("/stats"):
        return 200, "application/json", json.dumps(store.stats()).encode()
    if method == "POST" and path.startswith("/reset"):
        store.requests.clear()
        store.bodies.clear()
        return 200, "application/json", b"{}"
    target = headers.get("x-amz-target", "")
    if target:  # botocore's JSON protocol
        request = json.loads(body or b"{}")
        queue = request.get("QueueUrl", "").rsplit("/", 1)[-1]
        store.requests[queue] += 1
        action = target.rsplit(".", 1)[-1]
        if action == "SendMessageBatch":
            successful = []
            for entry in request.get("Entries", []):
                store.bodies[queue].append((entry["MessageBody"], entry.get("MessageAttributes")))
                successful.append(
                    {"Id": entry["Id"], "MessageId": str(uuid.uuid4()), "MD5OfMessageBody": _md5(entry["MessageBody"])}
                )
            return 200, "application/x-amz-json-1.0", json.dumps({"Successful": successful, "Failed": []}).encode()
        if action == "SendMessage":
            store.bodies[queue].append((request["MessageBody"], request.get("MessageAttributes")))
            reply = {"MessageId": str(uuid.uuid4()), "MD5OfMessageBody": _md5(request["MessageBody"])}
            return 200, "application/x-amz-json-1.0", json.dumps(reply).encode()
        return 400, "application/x-amz-json-1.0", json.dumps({"__type": "UnsupportedOperation"}).encode()
    form = parse_qs(body.decode(), keep_blank_values=True)  # the query protocol (LiteLLM's aws_sqs)
    queue = path.rstrip("/").rsplit("/", 1)[-1]
    store.requests[queue] += 1
    message = form.get("MessageBody", [""])[0]
    store.bodies[queue].append((message, None))
    xml = (
        "<SendMessageResponse><SendMessageResult>"
        f"<MessageId>{uuid.uuid4()}</MessageId><MD5OfMessageBody>{_md5(message)}</MD5OfMessageBody>"
        "</SendMessageResult><ResponseMetadata><RequestId>x</RequestId></ResponseMetadata></SendMessageResponse>"
    )
    return 200, "text/xml", xml.encode()


async def serve(port: int, delay_s: float) -> None:
    store = Store(delay_s)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, path, _ = request_line.split(" ", 2)
                headers = {}
                for line in header_lines:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status, content_type, payload = answer(store, method, path, headers, body)
                if not path.startswith(("/stats", "/reset", "/delay")):
                    await asyncio.sleep(store.delay_s)
                writer.write(
                    f"HTTP/1.1 {status} OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(payload)}\r\n"
                    f"x-amzn-RequestId: {uuid.uuid4()}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, LOOPBACK, port, reuse_address=True, backlog=1024)
    async with server:
        await server.serve_forever()


class DelayingSqs:
    """This endpoint in its own process (so it does not share the publisher's GIL), for a benchmark to drive."""

    def __init__(self, delay_ms: float, workdir: Path) -> None:
        self.port = free_port()
        self.proc = spawn(
            [sys.executable, "-m", "bench.delaying_sqs", "--port", str(self.port), "--delay-ms", str(delay_ms)],
            workdir / f"delaying-sqs-{delay_ms:g}ms.log",
            cwd=Path(__file__).resolve().parents[1],
        )
        deadline = time.monotonic() + 30
        while not port_in_use(self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"the delaying SQS endpoint did not start; see {workdir}")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def queue_url(self, name: str) -> str:
        return f"{self.url}/000000000000/{name}"

    def stats(self) -> dict[str, dict[str, int]]:
        with urllib.request.urlopen(f"{self.url}/stats", timeout=60) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        kill(self.proc)

    def set_delay(self, delay_ms: float) -> None:
        request = urllib.request.Request(f"{self.url}/delay?ms={delay_ms:g}", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=30):
            pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=15.0)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port, args.delay_ms / 1000.0))


if __name__ == "__main__":
    main()
