"""Carry TCP connections from 127.0.0.1:<port> inside a lab namespace to pinet's database or
broker outside it (standard library only; started by ``pinet_lab up``).

pinet's processes in the lab's server namespace (web server, worker, discovery listener) use
the same PostgreSQL and Redis as the operator's panel, but a namespace has its own loopback:
127.0.0.1:5432 in there is nobody. This process listens on the namespace's loopback (its
listening sockets are made by a thread that entered the namespace) and connects out from the
host's namespace, to exactly the endpoints it was given, nothing else.

    python -m provisioning.lab.relay --netns NS 5432=127.0.0.1:5432 6379=db.example:6379
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import threading

from .netns import in_netns

log = logging.getLogger("pinet.lab.relay")
CHUNK = 65536


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(CHUNK):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        # Pass the end on, so the other direction ends too once its peer is done.
        for sock, how in ((sink, socket.SHUT_WR), (source, socket.SHUT_RD)):
            try:
                sock.shutdown(how)
            except OSError:
                pass


def _serve(listener: socket.socket, target: tuple[str, int]) -> None:
    while True:
        client, _ = listener.accept()
        try:
            upstream = socket.create_connection(target, timeout=10)
            upstream.settimeout(None)
        except OSError as exc:
            log.warning("cannot reach %s:%s: %s", *target, exc)
            client.close()
            continue
        threading.Thread(target=_carry, args=(client, upstream), daemon=True).start()


def _carry(client: socket.socket, upstream: socket.socket) -> None:
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def parse_mapping(text: str) -> tuple[int, tuple[str, int]]:
    local, _, remote = text.partition("=")
    host, _, port = remote.rpartition(":")
    if not (local.isdigit() and port.isdigit() and host):
        raise argparse.ArgumentTypeError(f"{text!r} is not PORT=HOST:PORT")
    return int(local), (host.strip("[]"), int(port))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m provisioning.lab.relay")
    parser.add_argument("--netns", required=True)
    parser.add_argument("mappings", nargs="+", type=parse_mapping, metavar="PORT=HOST:PORT")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s relay %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    threads = []
    for port, target in args.mappings:
        listener = in_netns(args.netns, lambda port=port: socket.create_server(("127.0.0.1", port), backlog=64))
        log.info("listening on 127.0.0.1:%s in %s for %s:%s", port, args.netns, *target)
        threads.append(threading.Thread(target=_serve, args=(listener, target), daemon=True))
    for thread in threads:
        thread.start()
    log.info("ready")
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
