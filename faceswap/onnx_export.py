"""ONNX export of a trained model and the onnxruntime runner merge uses (the real-time path).

``export_onnx(model_dir)`` writes ``<model>/swap.onnx``: input ``face`` float32
``(N, 3, res, res)`` RGB in [0, 1] (N dynamic), output ``out`` ``(N, 4, res, res)``: the swapped
face's RGB and its mask. ``OrtSwapper`` runs it with CUDA when onnxruntime-gpu finds a GPU,
else on the CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import ModelError

ONNX_NAME = "swap.onnx"


def export_onnx(model_dir: str | Path, out: str | Path | None = None, *, opset: int = 17) -> Path:
    import torch

    from .model import SwapNet
    from .modeldoc import load_model

    model, doc = load_model(model_dir, device="cpu")
    res = int(doc["model"]["res"])
    net = SwapNet(model).eval()
    out = Path(out) if out else Path(model_dir) / ONNX_NAME
    tmp = out.with_name(f".{out.name}.tmp")
    x = torch.rand(1, 3, res, res)
    with torch.no_grad():
        torch.onnx.export(net, (x,), str(tmp), input_names=["face"], output_names=["out"], opset_version=opset,
                          dynamic_axes={"face": {0: "n"}, "out": {0: "n"}}, dynamo=False)
    tmp.replace(out)
    meta = {"res": res, "iteration": doc.get("iteration"), "arch": doc["model"]["arch"], "face_type": doc["model"]["face_type"]}
    (out.with_suffix(".json")).write_text(json.dumps(meta, indent=2) + "\n")
    return out


class OrtSwapper:
    """Callable: (N, 3, res, res) float32 -> (N, 4, res, res) float32, by onnxruntime."""

    def __init__(self, path: str | Path, providers: list[str] | None = None, threads: int | None = None) -> None:
        p = Path(path)
        if p.is_dir():
            p = p / ONNX_NAME
        if not p.exists():
            raise ModelError(f"no ONNX model at {p}", hint="export it with `machinima faceswap export-onnx --model DIR`")
        import onnxruntime as ort

        from .backends import _providers

        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        self.sess = ort.InferenceSession(str(p), so, providers=providers or _providers())
        self.res = int(self.sess.get_inputs()[0].shape[2])

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        return np.asarray(self.sess.run(None, {"face": np.ascontiguousarray(faces, np.float32)})[0], np.float32)


class TorchSwapper:
    """The same interface on the torch model (fp16 autocast on CUDA)."""

    def __init__(self, model_dir: str | Path, device: str = "auto") -> None:
        from .model import SwapNet
        from .modeldoc import load_model

        model, doc = load_model(model_dir, device=device)
        self.net = SwapNet(model).eval()
        self.device = next(model.parameters()).device
        self.res = int(doc["model"]["res"])

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(faces, np.float32)).to(self.device)
            if self.device.type == "cuda":
                with torch.autocast("cuda", dtype=torch.float16):
                    y = self.net(x)
            else:
                y = self.net(x)
            return y.float().cpu().numpy()
