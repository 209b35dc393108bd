"""A DynamoDB endpoint at a set latency, for `make bench`: forwards HTTP/1.1 requests to a local server (dynalite)
over kept-alive connections, one upstream connection per client connection, and holds each answer back for
`--latency-ms` (10 ms by default: about what in-region DynamoDB takes for a 25-item BatchWriteItem) before
passing it on. A client that sends requests concurrently, on several connections, overlaps the waits; one that
sends them one after another pays every wait.

With `--answer-writes`, BatchWriteItem requests are answered here (all items processed) instead of forwarded,
and the distinct ids they carried are counted per table (`GET /__written?table=T` answers the count): dynalite
writes one request at a time, a few milliseconds each, which would otherwise bound both sides' throughput
rather than the latency. Everything else (CreateTable, DescribeTable, ...) still goes to the server behind.

    python bench/latency_proxy.py --listen-port 0 --upstream 127.0.0.1:8000 [--latency-ms 10] [--answer-writes]

Prints `listening 127.0.0.1:PORT` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from urllib.parse import parse_qs, urlsplit


async def read_message(reader: asyncio.StreamReader) -> bytes | None:
    """One HTTP/1.1 message, head and body (Content-Length or chunked), as bytes; None at end of stream."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    length, chunked = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        return head + await reader.readexactly(length)
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        body += size_line
        size = int(size_line.split(b";")[0].strip(), 16)
        body += await reader.readexactly(size + 2)
        if size == 0:
            return head + bytes(body)


def answer(status: str, body: bytes, content_type: str = "application/x-amz-json-1.0") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def written_here(request: bytes, written: dict[str, set[str]]) -> bytes | None:
    """The answer to a BatchWriteItem (all processed), noting its ids; the count for `GET /__written`; None for
    anything to forward."""
    head, _, body = request.partition(b"\r\n\r\n")
    start = head.split(b"\r\n", 1)[0].decode("latin-1")
    if start.startswith("GET /__written"):
        table = parse_qs(urlsplit(start.split(" ")[1]).query).get("table", [""])[0]
        return answer("200 OK", str(len(written.get(table, ()))).encode(), "text/plain")
    if b"dynamodb_20120810.batchwriteitem" not in head.lower():
        return None
    for table, requests in json.loads(body)["RequestItems"].items():
        ids = written.setdefault(table, set())
        ids.update(r["PutRequest"]["Item"]["id"]["S"] for r in requests if "PutRequest" in r)
    return answer("200 OK", b'{"UnprocessedItems":{}}')


async def serve(upstream: tuple[str, int], latency: float, listen_port: int, answer_writes: bool) -> None:
    written: dict[str, set[str]] = {}

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*upstream)
        try:
            while (request := await read_message(client_reader)) is not None:
                response = written_here(request, written) if answer_writes else None
                if response is None:
                    upstream_writer.write(request)
                    await upstream_writer.drain()
                    response = await read_message(upstream_reader)
                    if response is None:
                        break
                await asyncio.sleep(latency)
                client_writer.write(response)
                await client_writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            for writer in (upstream_writer, client_writer):
                writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    port = server.sockets[0].getsockname()[1]
    print(f"listening 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen-port", type=int, default=0)
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the server behind")
    parser.add_argument("--latency-ms", type=float, default=10.0)
    parser.add_argument("--answer-writes", action="store_true",
                        help="answer BatchWriteItem here, counting its ids, instead of forwarding it")
    args = parser.parse_args()
    host, _, port = args.upstream.rpartition(":")
    asyncio.run(serve((host, int(port)), args.latency_ms / 1000, args.listen_port, args.answer_writes))


if __name__ == "__main__":
    main()
