"""The stage: a multiplayer asyncio websockets server (``machinima server``).

Directors, performers, engines and observers join one stage with signed tokens. Performers
publish canonical pose frames, engines publish cameras and events, the director slates,
records, stops and cuts takes, and every stream is written into a take (``machinima.take``).
A web director console is served at ``http://HOST:PORT/``.

Modules: ``auth`` (secret, tokens), ``recorder`` (take writing: streams, events, markers, gaps,
disk-full handling), ``stage`` (the server: connections, roles, limits, commands, fan-out),
``cli`` (``machinima server``), ``static/`` (the console page).

Errors: ``StageError`` (a ``MachinimaError``) for anything a person can fix.
"""

from .errors import StageError

__all__ = ["StageError"]
