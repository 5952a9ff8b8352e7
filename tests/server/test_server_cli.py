"""CLI (token, start), TLS, kick, ping timeouts, and the client's reconnect policy."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import subprocess
import sys

import pytest
from websockets.asyncio.client import connect

from server_helpers import REPO, client, run, server_env, stage, token, url, wait_for
from machinima import protocol as P
from machinima.client import StageClient


def test_token_command_issues_tokens_the_server_accepts(root):
    out = subprocess.run([sys.executable, "-m", "server", "token", "--role", "engine", "--name", "unity", "--ttl", "15m", "--root", str(root)],
                         capture_output=True, text=True, env=server_env(), cwd=str(REPO), timeout=60)
    assert out.returncode == 0, out.stderr
    from server.auth import load_secret

    claims = P.verify_token(load_secret(root), out.stdout.strip())
    assert (claims.role, claims.name) == ("engine", "unity")
    bad = subprocess.run([sys.executable, "-c", "from machinima.cli import main; main()", "server", "token", "--role", "producer", "--name", "x", "--root", str(root)],
                         capture_output=True, text=True, env=server_env(), cwd=str(REPO), timeout=60)
    assert bad.returncode == 1 and "unknown role 'producer'" in bad.stderr and "Traceback" not in bad.stderr


def test_parse_ttl_and_secret_errors(tmp_path):
    from server.auth import load_secret, parse_ttl
    from server.errors import StageError

    assert (parse_ttl("90s"), parse_ttl("15m"), parse_ttl("12h"), parse_ttl("2d"), parse_ttl("30")) == (90, 900, 43200, 172800, 30)
    with pytest.raises(StageError, match="90s, 15m"):
        parse_ttl("soon")
    (tmp_path / ".stage-secret").write_text("zz\n")
    with pytest.raises(StageError, match="not a hex secret"):
        load_secret(tmp_path)


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return tmp_path / "cert.pem", tmp_path / "key.pem"


def test_tls_stage(root, tmp_path):
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))

    async def main():
        async with stage(root, ssl=server_ctx) as srv:
            d = StageClient(f"wss://127.0.0.1:{srv.port}/stage", token(root, "director", "dana"), ssl=client_ctx)
            await d.open()
            assert d.role == "director" and await d.ping() < 5
            await d.close()

    run(main())


def test_kicked_client_does_not_reconnect_and_silent_clients_time_out(root):
    async def main():
        async with stage(root, limit_kw={"ping_interval": 0.2, "ping_timeout": 0.3}) as srv:
            d = await client(srv, "director", "dana")
            p = await client(srv, "performer", "mallory", reconnect=True)
            assert (await d.kick("mallory", "wrong suit"))["kicked"] == "mallory"
            await p.wait_closed(timeout=10)
            assert p.close_code == P.CLOSE_KICKED and "wrong suit" in p.close_reason
            await asyncio.sleep(0.3)
            assert "mallory" not in srv.conns  # no automatic comeback after a kick
            with pytest.raises(P.ProtocolError) as err:
                await d.kick("nobody")
            assert err.value.code == "not_found"
            # A client that stops answering pings is closed by the keepalive.
            silent = await connect(url(srv), compression=None, proxy=None, ping_interval=None)
            await silent.send(P.encode_control("hello", token=token(root, "observer", "silent")))
            await silent.recv()
            silent.transport.pause_reading()
            await wait_for(lambda: "silent" not in srv.conns, timeout=10)
            silent.transport.abort()
            await d.close()

    run(main())


def test_http_serves_the_console_offline_and_nothing_else(root):
    import json as _json
    import urllib.error
    import urllib.request

    def get(port, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
                return r.status, r.headers.get("Content-Type"), r.read()
        except urllib.error.HTTPError as e:
            return e.code, None, b""

    async def main():
        async with stage(root) as srv:
            loop = asyncio.get_running_loop()
            fetch = lambda path: loop.run_in_executor(None, get, srv.port, path)
            status, ctype, body = await fetch("/")
            assert status == 200 and ctype.startswith("text/html") and b"console.js" in body
            assert b"http://" not in body and b"https://" not in body  # no CDN
            status, ctype, body = await fetch("/console.js")
            assert status == 200 and "javascript" in ctype and b"https://" not in body
            status, _, body = await fetch("/skeleton.json")
            doc = _json.loads(body)
            assert len(doc["bones"]) == 55 and doc["parents"][0] == -1
            status, _, body = await fetch("/health")
            assert _json.loads(body)["clients"] == 0 and b"dana" not in body
            for bad in ("/.stage-secret", "/../.stage-secret", "/static/console.js", "/nope.html"):
                assert (await fetch(bad))[0] == 404, bad

    run(main())


def test_the_server_says_each_thing_once(root):
    """`machinima server` at --log-level info: the addresses, a join, a take and a leave are each
    one line (websockets' own "connection open" / "server listening" lines used to repeat them)."""
    import socket
    import urllib.request

    from server_helpers import ServerProcess

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        udp = s.getsockname()[1]
    srv = ServerProcess(root, "--udp", f"vmc:{udp}", "--log-level", "info")
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/health", timeout=10).read()

        async def session():
            async with StageClient(srv.url, token(root, "director", "dana")) as d:
                await d.record()
                await d.stop()

        run(session())
    finally:
        srv.proc.terminate()
        out, err = srv.proc.communicate(timeout=20)
    lines = [line.split(" INFO ", 1)[-1] for line in (out + err).splitlines() if line.strip()]
    # the first line, "listening on ws://...", was read by ServerProcess: nothing says it again
    assert not any(f":{srv.port}/stage" in x or f"listening on 127.0.0.1:{srv.port}" in x for x in lines), lines
    assert sum(f"udp 127.0.0.1:{udp}" in x for x in lines) == 1, lines
    assert sum("dana" in x and "joined" in x for x in lines) == 1 and not any("connection open" in x for x in lines), lines
    assert sum("dana left" in x for x in lines) == 1 and not any("connection closed" in x for x in lines), lines
    assert not any("HTTP response sent" in x or "server clos" in x for x in lines), lines
