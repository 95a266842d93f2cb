"""Raw HTTPS as a hostile peer speaks it: hand-written requests, half-sent ones, abrupt closes."""
import json
import secrets
import socket
import struct
import time
import urllib.parse

from integration.support import https_context


def address(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname, parts.port


def tls_connect(cluster, url: str, timeout: float = 10.0):
    """A TLS connection to an ingress or serving, trusting the cluster's CA."""
    return tls_wrap(cluster, socket.create_connection(address(url), timeout=timeout))


def tls_wrap(cluster, sock):
    return https_context(cluster).wrap_socket(sock)


def request_bytes(method: str, path: str, body: bytes = b"", headers: dict | None = None) -> bytes:
    """A request as written on the wire; a Content-Length is added unless `headers` gives one."""
    headers = {"Host": "x", **(headers or {})}
    if body and "Content-Length" not in headers:
        headers["Content-Length"] = str(len(body))
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"{method} {path} HTTP/1.1\r\n{head}\r\n".encode() + body


def exchange(cluster, url: str, data: bytes, timeout: float = 30.0) -> tuple[int, object]:
    """Send `data` as is; (status, JSON body or raw bytes) of the answer."""
    with tls_connect(cluster, url, timeout) as tls:
        tls.sendall(data)
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = tls.recv(65536)
            if not chunk:
                raise ConnectionError(f"{url} closed the connection without an answer")
            reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next((int(line.split(":", 1)[1]) for line in lines[1:] if line.lower().startswith("content-length:")), 0)
        while len(body) < length:
            chunk = tls.recv(65536)
            if not chunk:
                break
            body += chunk
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


def abort(sock) -> None:
    """Close with a reset, as a client that crashes or is killed does: the server's next write fails."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def stage(client, x) -> str:
    """Stage a query's shares on both holders as the client does, and go no further: its request id."""
    request_id = secrets.token_hex(16)
    for holder, share in zip(client.holders, client._share(x)):
        holder.request("PUT", f"/v2/requests/{request_id}/input", body=share.astype("<i8").tobytes(),
                       headers={"Authorization": f"Bearer {secrets.token_urlsafe(32)}", "X-Batch-Size": str(len(x))})
    return request_id


def post_and_reset(cluster, serving_url, client, request_id, linger=0.0) -> None:
    """Ask serving to run a staged request of one input, then reset the connection `linger` s later."""
    body = json.dumps({"id": request_id, "count": 1, "shareId": client.share_id}).encode()
    tls = tls_connect(cluster, serving_url)
    tls.sendall(request_bytes("POST", "/v1/predict", body, {"Content-Type": "application/json"}))
    time.sleep(linger)
    abort(tls)
