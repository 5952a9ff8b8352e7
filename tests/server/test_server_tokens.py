"""Tokens under fuzz: every malformed, forged, odd or expired token is refused with its
documented close code and reason, never a crash; a connection lives no longer than its token."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time

from hypothesis import given, settings, strategies as st
from server_helpers import client, perform, refused, run, stage, token, url, wait_for
from machinima import protocol as P

SECRET = b"k" * 32
NOW = 1_800_000_000.0


def _sign(secret: bytes, body: bytes) -> str:
    import hashlib
    import hmac

    b = P._b64(body)
    return b + "." + P._b64(hmac.new(secret, b.encode(), hashlib.sha256).digest())


def _valid_claims(claims: object) -> bool:
    """The oracle, written apart from verify_token: what a well-formed version-1 claim is."""
    if not isinstance(claims, dict):
        return False
    v, role, name, exp = (claims.get(k) for k in ("v", "role", "name", "exp"))
    return (type(v) is int and v == 1 and role in P.ROLES and isinstance(name, str) and 1 <= len(name) <= 63
            and name[0].isascii() and name[0].isalnum() and all(c.isascii() and (c.isalnum() or c in "_.- ") for c in name)
            and type(exp) in (int, float) and math.isfinite(exp) and abs(exp) < 2**62)


def _outcome(tok: object, now: float = NOW) -> str:
    try:
        c = P.verify_token(SECRET, tok, now=now)
    except P.ProtocolError as exc:
        assert exc.code in ("bad_token", "expired_token"), exc.code
        return exc.code
    assert c.role in P.ROLES and P.check_name(c.name) and math.isfinite(c.expires) and c.expires > now
    return "ok"


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=120), st.from_regex(r"[A-Za-z0-9_\-]{0,60}\.[A-Za-z0-9_\-]{0,60}", fullmatch=True),
                 st.none(), st.integers(), st.lists(st.text(max_size=3), max_size=3)))
def test_fuzz_verify_token_refuses_junk_with_bad_token(tok):
    assert _outcome(tok) == "bad_token"


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 200), st.characters())
def test_fuzz_one_changed_character_is_never_accepted(pos, ch):
    good = _sign(SECRET, json.dumps({"v": 1, "role": "director", "name": "dana", "exp": NOW + 60}).encode())
    pos %= len(good)
    bad = good[:pos] + ch + good[pos + 1:]
    assert _outcome(bad) == ("ok" if bad == good else "bad_token")  # a non-ASCII signature too


_odd = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True, allow_infinity=True),
                 st.sampled_from(["inf", "nan", "-inf", "1e400", "", "dana\n", "d\u202ea", "x" * 64, "director"]), st.text(max_size=8))


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.sampled_from(["v", "role", "name", "exp", "extra"]), _odd | st.sampled_from([1, "dana", NOW + 60, *P.ROLES]), max_size=5))
def test_fuzz_claims_signed_with_the_real_secret_are_checked_too(claims):
    # Signed by the stage itself (a buggy issuer, a leaked secret): the contents still decide.
    body = json.dumps(claims, allow_nan=True).encode()
    outcome = _outcome(_sign(SECRET, body))
    if _valid_claims(claims):
        assert outcome in ("ok", "expired_token") and (outcome == "ok") == (claims["exp"] > NOW)
    else:
        assert outcome == "bad_token", claims


def _fuzzed_tokens(root, n: int) -> list[tuple[str, int, str, str]]:
    """(hello text, close code, close reason prefix, error code) for n deterministic cases."""
    from server.auth import load_secret

    secret = load_secret(root)
    rng = random.Random(19)
    good = P.make_token(secret, "director", "dana", ttl_s=3600)
    alphabet = "abcXYZ019-_.=+/ é€\u0000\u202e😀"
    cases = []
    for i in range(n):
        kind = i % 8
        if kind == 0:  # random text
            tok = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 80)))
        elif kind == 1:  # a real token with one character changed (non-ASCII in the signature too)
            p = rng.randrange(len(good))
            tok = good[:p] + rng.choice(alphabet.replace(good[p], "")) + good[p + 1:]
        elif kind == 2:  # signed with another secret
            tok = P.make_token(bytes(rng.randrange(256) for _ in range(32)), "director", "dana")
        elif kind == 3:  # signed with the real secret, odd contents
            claims = rng.choice([{"v": 1, "role": "director", "name": "dana", "exp": "inf"},
                                 {"v": 1, "role": "director", "name": "dana", "exp": "nan"},
                                 {"v": 1, "role": "root", "name": "dana", "exp": time.time() + 60},
                                 {"v": 1, "role": "director", "name": "da\nna", "exp": time.time() + 60},
                                 {"v": 1, "role": "director", "name": "", "exp": time.time() + 60},
                                 {"v": 2, "role": "director", "name": "dana", "exp": time.time() + 60},
                                 {"v": 1, "role": "director", "exp": time.time() + 60}, [1, 2]])
            text = json.dumps(claims) if rng.random() < 0.8 else '{"v":1,"role":"director","name":"dana","exp":Infinity}'
            tok = _sign(secret, text.encode())
        elif kind == 4:  # expired
            tok = P.make_token(secret, "observer", f"o{i}", ttl_s=1, now=time.time() - rng.randrange(2, 10**6))
            cases.append((P.encode_control("hello", token=tok), P.CLOSE_EXPIRED, "expired token: ", "expired_token"))
            continue
        elif kind == 5:  # not a string at all, or a lone surrogate: a bad hello, not a token
            tok = rng.choice([None, 17, 1.5, [], {"a": 1}, True, "\ud800" + good])
            cases.append((json.dumps({"type": "hello", "token": tok}), P.CLOSE_BAD_TOKEN, "bad hello: ", "bad_message"))
            continue
        elif kind == 6:  # long
            tok = good * rng.randrange(2, 40)
        else:  # base64url-shaped junk
            tok = "".join(rng.choice("ABCabc012_-") for _ in range(rng.randrange(1, 60))) + "." + "".join(rng.choice("ABCabc012_-") for _ in range(43))
        cases.append((P.encode_control("hello", token=tok), P.CLOSE_BAD_TOKEN, "bad token: ", "bad_token"))
    return cases


def test_2000_fuzzed_tokens_over_a_real_websocket_are_each_refused_in_words(root, caplog):
    cases = _fuzzed_tokens(root, 2000)

    async def main():
        async with stage(root) as srv:
            sem = asyncio.Semaphore(24)

            async def guarded(case):
                async with sem:
                    return await refused(url(srv), case[0])

            results = await asyncio.gather(*(guarded(c) for c in cases))
            assert not srv.conns
            # the stage is still fine for a real client
            d = await client(srv, "director", "dana")
            assert await d.ping() < 5
            await d.close()
            return results

    caplog.set_level(logging.INFO)
    results = run(main(), timeout=240)
    for (hello, code, prefix, err_code), (got_code, reason, msgs) in zip(cases, results):
        assert got_code == code and reason.startswith(prefix), (hello[:120], got_code, reason)
        assert len(msgs) == 1 and json.loads(msgs[0])["code"] == err_code, (hello[:120], msgs)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], "a traceback or an error in the log"


def test_a_connection_lives_no_longer_than_its_token(root):
    async def main():
        async with stage(root) as srv:
            d = await client(srv, "director", "dana", reconnect=False)
            lasting = await client(srv, "observer", "olga", reconnect=False)
            from machinima.client import StageClient

            brief = StageClient(url(srv), token(root, "observer", "oscar", ttl=1.2), reconnect=False)
            await brief.open()
            perf = StageClient(url(srv), token(root, "performer", "alice", ttl=1.5), reconnect=False)
            await perf.open()
            await perform(perf, 1)
            await d.record()
            sending = asyncio.ensure_future(perform(perf, 150, 60))  # 2.5 s, past the expiry
            await wait_for(lambda: not brief.connected, timeout=5)
            assert brief.close_code == P.CLOSE_EXPIRED and brief.close_reason.startswith("expired token")
            await sending
            assert perf.connected, "a performer in the running take is kept until the take stops"
            res = await d.stop()
            assert res["samples"] >= 150
            await wait_for(lambda: not perf.connected, timeout=5)
            assert perf.close_code == P.CLOSE_EXPIRED
            assert lasting.connected and d.connected
            await d.close(), await lasting.close()

    run(main())


def test_a_secret_made_twice_at_once_is_one_secret(tmp_path):
    """`machinima server` starting while `machinima server token` runs (a guide does both at once):
    both get the same complete secret, neither a traceback nor half a file."""
    import multiprocessing as mp

    from server.auth import load_secret

    for n in range(5):
        root = tmp_path / f"r{n}"
        with mp.get_context("fork").Pool(4) as pool:
            got = pool.map(load_secret, [root] * 8)
        assert len(set(got)) == 1 and len(got[0]) == 32
        assert sorted(p.name for p in root.iterdir()) == [".stage-secret"]  # no temporary file left
