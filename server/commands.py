"""The stage's control messages (step 3 of ``server.stage``): each text message validated once,
checked against the sender's role, answered once (a re-sent id gets the kept answer), then the
``_cmd_<type>`` handler. A mixin of ``StageServer``: it works on the server's state."""

from __future__ import annotations

import logging
import time
from typing import Any

from machinima import __version__
from machinima import protocol as P
from machinima.catalog import Catalog
from machinima.errors import DiskFullError, MachinimaError, TimecodeError
from machinima.take import Take, iter_take_folders, read_manifest
from machinima.timecode import Timecode, time_of_day

from .conn import Conn, ws_frame as _ws_frame
from .errors import RecordingError

log = logging.getLogger("machinima.server")


class StageCommands:
    """``_on_text`` and the ``_cmd_*`` handlers of ``StageServer``."""

    async def _on_text(self, conn: Conn, raw: str) -> None:
        try:
            msg = P.parse_control(raw)
        except P.ProtocolError as exc:
            await conn.ws.send(P.error_message(exc))
            return
        mid = msg.get("id")
        key = (conn.name, mid) if mid else None
        if key and key in self._answers:
            await conn.ws.send(self._answers[key])
            return
        mtype = msg["type"]
        try:
            if self.allowed_types is not None and mtype not in self.allowed_types:
                raise P.ProtocolError("forbidden", f"{self.endpoint} is for watching ({', '.join(sorted(self.allowed_types))}): send {mtype} to /stage on the main port")
            if mtype not in P.PERMISSIONS[conn.role]:
                raise P.ProtocolError("forbidden", f"a {conn.role} may not send {mtype}", hint="ask for a director token" if mtype in P.PERMISSIONS["director"] else None)
            if mtype == "hello":
                raise P.ProtocolError("bad_message", "already said hello on this connection")
            result = getattr(self, f"_cmd_{mtype}")(conn, msg)
            reply = P.encode_control("ack", id=mid, result=result or {})
        except P.ProtocolError as exc:
            exc.id = mid
            reply = P.error_message(exc)
        except DiskFullError as exc:
            self._recording_failed(exc)
            reply = P.error_message(P.ProtocolError("disk_full", f"recording stopped: {exc}", id=mid))
        except RecordingError as exc:
            reply = P.error_message(P.ProtocolError("server_error", str(exc), id=mid))
        except Exception as exc:  # never crash the stage for one command
            log.exception("command %s failed", mtype)
            reply = P.error_message(P.ProtocolError("server_error", f"{mtype} failed: {exc}", id=mid))
        if key:
            self._answers[key] = reply
            while len(self._answers) > self.limits.id_cache:
                self._answers.popitem(last=False)
        await conn.ws.send(reply)

    def _cmd_subscribe(self, conn: Conn, msg: dict[str, Any]) -> dict[str, Any]:
        conn.frames = msg.get("frames", True)
        perf = msg.get("performers")
        conn.performers = frozenset(perf) if perf is not None else None
        conn.encoding = P.ENCODINGS[msg.get("encoding", "f32")]
        conn.events = msg.get("events", True)
        self._groups_cache = None
        if conn.frames:
            conn.start_probe(min(1.0, self.limits.slow_close_s / 4))
        return {"frames": conn.frames, "performers": perf, "encoding": msg.get("encoding", "f32"), "events": conn.events}

    def _cmd_slate(self, conn: Conn, msg: dict[str, Any]) -> dict[str, Any]:
        for k in ("production", "scene", "shot"):
            if k in msg:
                if not msg[k].strip():
                    raise P.ProtocolError("bad_message", f"slate {k} may not be empty")
                self.slate[k] = msg[k].strip()
        self._state_dirty = True
        return {"slate": dict(self.slate)}

    def _cmd_record(self, conn: Conn, msg: dict[str, Any]) -> dict[str, Any]:
        if self.recorder.recording:
            raise P.ProtocolError("already_recording", f"take {self.recorder.take.id} is already recording; stop it first")
        tc_in, origin_ns = self._timecode_in(msg.get("timecode"))
        for k, v in (msg.get("slate") or {}).items():
            self.slate[k] = v.strip()
        performers = sorted(n for n, s in self.sources.items() if s.kind == P.KIND_POSE and s.conn is not None)
        notes = list(msg.get("notes") or [])
        try:
            take = self.recorder.start(dict(self.slate), performers=performers, notes=notes, timecode_in=tc_in, origin_ns=origin_ns)
        except DiskFullError as exc:
            raise P.ProtocolError("disk_full", f"cannot record: {exc}") from None
        take.manifest.extra["stage"] = {"director": conn.name, "server": f"machinima {__version__}"}
        take.save()
        self._loss_at_start = {n: s.loss for n, s in self.sources.items()}
        self.last_take = take.id
        self._state_dirty = True
        return {"take": take.id, "take_number": take.manifest.slate.take, "timecode_in": take.manifest.timecode_in, "slate": dict(self.slate), "performers": performers}

    def _timecode_in(self, given: str | None) -> tuple[str, int]:
        """Timecode in of a new take and the monotonic instant it stands for: the one the
        director gives, else the stage clock's time of day (as Unreal's Take Recorder stamps
        takes), frame-aligned so the take's frames are the time of day's frames."""
        if given:
            try:
                return str(Timecode.parse(given, self.recorder.fps)), time.monotonic_ns()
            except TimecodeError as exc:
                raise P.ProtocolError("bad_message", f"record.timecode: {exc}") from None
        tc, origin_ns = time_of_day(self.recorder.fps)
        return str(tc), origin_ns

    def _cmd_stop(self, conn: Conn, msg: dict[str, Any], cut: bool = False) -> dict[str, Any]:
        if not self.recorder.recording:
            raise P.ProtocolError("not_recording", "no take is recording")
        # Network loss per performer during the take (missing sequence numbers), for post.
        stage_info = self.recorder.take.manifest.extra.setdefault("stage", {})
        stage_info["loss"] = {p: self.sources[p].loss - self._loss_at_start.get(p, 0) for p in self.recorder.performers() if p in self.sources}
        result = self.recorder.stop(cut=cut)
        self.last_take = result["take"]
        self._state_dirty = True
        return result

    def _cmd_cut(self, conn: Conn, msg: dict[str, Any]) -> dict[str, Any]:
        return self._cmd_stop(conn, msg, cut=True)

    def _cmd_marker(self, conn: Conn, msg: dict[str, Any]) -> dict[str, Any]:
        if not self.recorder.recording:
            raise P.ProtocolError("not_recording", "markers go into a running take; press record first")
        marker = self.recorder.marker(time.monotonic_ns(), msg["name"], msg.get("note", ""), msg.get("color", "red"))
        self._state_dirty = True
        return {"take": self.recorder.take.id, "marker": marker}

    def _cmd_note(self, conn: Conn, msg: dict[str, Any]) -> dict[str, Any]:
        tid = msg.get("take")
        running = self.recorder.take
        if running is not None and tid in (None, running.id):
            running.add_note(msg["text"])
            return {"take": running.id, "notes": list(running.manifest.notes)}
        tid = tid or self.last_take
        if not tid or "/" in tid or tid.startswith(".") or not (self.root / tid).is_dir():
            raise P.ProtocolError("not_found", f"no take {tid!r} on this stage" if tid else "no take yet: record one first")
        take = Take.open(self.root / tid, writable=True)
        try:
            take.add_note(msg["text"])
            try:
                Catalog(self.root).upsert(take.path, take.manifest)
            except Exception:
                pass
            return {"take": take.id, "notes": list(take.manifest.notes)}
        finally:
            take.close()

    def _cmd_kick(self, conn: Conn, msg: dict[str, Any]) -> dict[str, Any]:
        target = self.conns.get(msg["name"])
        if target is None:
            raise P.ProtocolError("not_found", f"no client named {msg['name']!r} on the stage")
        self._close(target, P.CLOSE_KICKED, f"kicked by {conn.name}: {msg.get('reason', '')}".strip(": "))
        self._detach(target, "kicked")
        return {"kicked": target.name}

    def _cmd_takes(self, conn: Conn, msg: dict[str, Any]) -> dict[str, Any]:
        limit = max(1, min(int(msg.get("limit") or 50), 500))
        rows = []
        for folder in iter_take_folders(self.root):
            try:
                m = read_manifest(folder)
            except MachinimaError:
                continue
            rows.append({"id": m.id, "status": m.status, "slate": vars(m.slate), "created": m.created, "timecode_in": m.timecode_in,
                         "timecode_out": m.timecode_out, "notes": m.notes, "markers": m.markers, "performers": [p.get("name") for p in m.performers]})
        rows.sort(key=lambda r: (r["created"], r["id"]), reverse=True)
        return {"takes": rows[:limit]}

    def _cmd_event(self, conn: Conn, msg: dict[str, Any]) -> dict[str, Any]:
        t_ns = time.monotonic_ns()
        payload = {"name": msg["name"], "payload": msg.get("payload", {}), "from": conn.name}
        recorded = False
        if self.recorder.recording:
            recorded = self._guard(lambda: self.recorder.event(t_ns, payload))
        frame = _ws_frame(P.encode_control("event", name=msg["name"], payload=msg.get("payload", {}), **{"from": conn.name}, t_ns=time.time_ns()).encode(), 0x1)
        for c in list(self.conns.values()):
            if c.events and c is not conn:
                c.write(frame)
        return {"recorded": recorded}

    def _cmd_ping(self, conn: Conn, msg: dict[str, Any]) -> dict[str, Any]:
        conn.write(_ws_frame(P.encode_control("pong", t=msg.get("t"), server_t=time.time()).encode(), 0x1))  # t: finite (parse_control)
        return {"server_t": time.time()}
