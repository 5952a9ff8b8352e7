"""The stage client, for ``server.client`` imports: it lives in the hub (``machinima.client``)
so that the engine bridge and mocap, which may not import this package, share it."""

from machinima.client import ProtocolError, StageClient, SyncStageClient

__all__ = ["StageClient", "SyncStageClient", "ProtocolError"]
