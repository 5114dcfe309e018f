"""A minimal authoritative DNS server on 127.0.0.1 (UDP) for tests: answers A queries for names
it holds with addresses the test changes while clients run (a Kubernetes headless Service's
name as pods come and go). Other types get an empty answer; unknown names NXDOMAIN."""

from __future__ import annotations

import socket
import struct
import threading


def _read_name(packet: bytes, offset: int) -> tuple[str, int]:
    labels = []
    while True:
        length = packet[offset]
        if length == 0:
            return ".".join(labels), offset + 1
        labels.append(packet[offset + 1 : offset + 1 + length].decode("ascii"))
        offset += 1 + length


class DnsServer:
    """``records``: lower-case name -> list of IPv4 addresses (mutable while serving)."""

    def __init__(self, records: dict[str, list[str]], ttl: int = 1) -> None:
        self.records = records
        self.ttl = ttl
        self.queries = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _answer(self, query: bytes) -> bytes:
        qid, _flags, qdcount = struct.unpack(">HHH", query[:6])
        name, end = _read_name(query, 12)
        qtype, _qclass = struct.unpack(">HH", query[end : end + 4])
        question = query[12 : end + 4]
        addresses = self.records.get(name.lower().rstrip("."))
        if addresses is None:
            return struct.pack(">HHHHHH", qid, 0x8183, 1, 0, 0, 0) + question  # NXDOMAIN
        answers = b""
        count = 0
        if qtype == 1:  # A
            for ip in list(addresses):
                answers += struct.pack(">HHHIH", 0xC00C, 1, 1, self.ttl, 4) + socket.inet_aton(ip)
                count += 1
        return struct.pack(">HHHHHH", qid, 0x8180, 1, count, 0, 0) + question + answers

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                query, peer = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            self.queries += 1
            try:
                self.sock.sendto(self._answer(query), peer)
            except (IndexError, struct.error, UnicodeDecodeError):
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
