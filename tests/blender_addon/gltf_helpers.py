"""Reading an animated glTF with pygltflib and evaluating its node hierarchy in plain numpy (an
evaluator written here from the glTF 2.0 spec, independent of Blender's importer)."""

from __future__ import annotations

import numpy as np

from machinima import quat


def accessor(gltf, index: int) -> np.ndarray:
    """An accessor's data as float32 (n, components) from the GLB's binary chunk."""
    acc = gltf.accessors[index]
    view = gltf.bufferViews[acc.bufferView]
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}[acc.type]
    dtype = {5126: np.float32, 5123: np.uint16, 5121: np.uint8, 5125: np.uint32}[acc.componentType]
    blob = gltf.binary_blob()
    start = (view.byteOffset or 0) + (acc.byteOffset or 0)
    stride = view.byteStride or np.dtype(dtype).itemsize * width
    rows = [np.frombuffer(blob, dtype, width, start + i * stride) for i in range(acc.count)]
    return np.array(rows, dtype=np.float64)


def _matrix(t, r, s) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = quat.to_matrix(np.asarray(r, float)) * np.asarray(s, float)[None, :]
    m[:3, 3] = t
    return m


def node_world_positions(gltf, animation: int, time_s: float) -> dict[int, np.ndarray]:
    """World position of every node at a sampled time (a key must sit there: no interpolation)."""
    trs = {}
    for i, n in enumerate(gltf.nodes):
        if n.matrix:
            raise AssertionError("the exporter wrote a matrix; this evaluator reads TRS only")
        trs[i] = [list(n.translation or [0, 0, 0]), list(n.rotation or [0, 0, 0, 1]), list(n.scale or [1, 1, 1])]
    anim = gltf.animations[animation]
    slot = {"translation": 0, "rotation": 1, "scale": 2}
    for ch in anim.channels:
        if ch.target.path not in slot:
            continue
        times = accessor(gltf, anim.samplers[ch.sampler].input)[:, 0]
        k = int(np.argmin(np.abs(times - time_s)))
        assert abs(times[k] - time_s) < 1e-5, (ch.target.node, times[k], time_s)
        trs[ch.target.node][slot[ch.target.path]] = accessor(gltf, anim.samplers[ch.sampler].output)[k]
    parent = {c: i for i, n in enumerate(gltf.nodes) for c in (n.children or [])}
    world: dict[int, np.ndarray] = {}

    def get(i: int) -> np.ndarray:
        if i not in world:
            local = _matrix(*trs[i])
            world[i] = get(parent[i]) @ local if i in parent else local
        return world[i]

    return {i: get(i)[:3, 3] for i in range(len(gltf.nodes))}
