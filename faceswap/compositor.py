"""Step 6 of a merge: swap one batch. ``Compositor`` aligns, swaps (batched), recolours, masks
and blends faces back into their frames, touching only each face's region; ``make_swapper``
loads the network (torch or onnxruntime); ``swap_functions`` is the frame function that a local
merge and every Ray worker share, so both write the same pixels under the same keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from .align import face_transform, invert_affine, transform_points
from .color import transfer
from .masks import erode_blur, hull_mask
from .merge_options import MergeOptions
from .seamless import seamless_clone


class Compositor:
    """Align, swap (batched), recolour, mask and blend faces into frames, touching only each face's region."""

    def __init__(self, swapper: Callable[[np.ndarray], np.ndarray] | None, res: int, face_type: str, opts: MergeOptions) -> None:
        self.swapper = swapper
        self.res = res
        self.face_type = face_type
        self.opts = opts
        self.segmenter = None
        if opts.occlusion_model:
            from .masks import OnnxSegmenter

            self.segmenter = OnnxSegmenter(opts.occlusion_model)

    def swap_faces(self, faces: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """uint8 aligned faces -> [(float rgb, float mask)] (the network on the whole batch)."""
        if not faces:
            return []
        if self.swapper is None:  # engine "none": the pipeline without the network
            return [(f.astype(np.float32) / 255.0, np.ones(f.shape[:2], np.float32)) for f in faces]
        x = np.stack(faces).astype(np.float32).transpose(0, 3, 1, 2) / 255.0
        outs = []
        for i in range(0, len(x), max(1, self.opts.batch)):
            outs.append(self.swapper(x[i:i + self.opts.batch]))
        y = np.concatenate(outs)
        return [(np.ascontiguousarray(o[:3].transpose(1, 2, 0)), o[3]) for o in y]

    def frames(self, images: list[np.ndarray], landmarks: list[dict[int, np.ndarray]], *, inplace: bool = False) -> list[np.ndarray]:
        """Composite every face of every image; ``inplace`` paints into ``images`` (no copy)."""
        import cv2

        res = self.res
        jobs = []  # (frame index, matrix, aligned dst, aligned landmarks)
        for i, (img, faces) in enumerate(zip(images, landmarks)):
            for tid, lm in sorted(faces.items()):
                if self.opts.tracks is not None and tid not in self.opts.tracks:
                    continue
                m = face_transform(lm, self.face_type, res)
                aligned = cv2.warpAffine(img, m, (res, res), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                jobs.append((i, m, aligned, transform_points(lm, m)))
        swapped = self.swap_faces([j[2] for j in jobs])
        out = list(images) if inplace else [img.copy() for img in images]
        by_frame: dict[int, list] = {}
        for job, sw in zip(jobs, swapped):
            by_frame.setdefault(job[0], []).append((job, sw))

        def paste_all(i: int) -> None:  # faces of one frame in order; frames in parallel
            for (_, m, aligned, alm), (rgb, nmask) in by_frame[i]:
                out[i] = self._paste(out[i], m, aligned, alm, rgb, nmask)

        if self.opts.workers > 1 and len(by_frame) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(self.opts.workers) as ex:  # OpenCV releases the GIL
                list(ex.map(paste_all, sorted(by_frame)))
        else:
            for i in sorted(by_frame):
                paste_all(i)
        return out

    def _paste(self, frame: np.ndarray, m: np.ndarray, aligned: np.ndarray, alm: np.ndarray, rgb: np.ndarray, nmask: np.ndarray) -> np.ndarray:
        import cv2

        o, res = self.opts, self.res
        # mask: network mask x landmark hull, eroded and feathered (in face space: cheap)
        mask = np.minimum(np.clip(nmask, 0, 1), hull_mask(alm, (res, res), self.face_type))
        if self.segmenter is not None:  # what covers the face stays in front of it
            mask = np.minimum(mask, self.segmenter(aligned))
        mask = erode_blur(mask, o.erode, o.blur)
        dst = aligned.astype(np.float32) / 255.0
        face = transfer(rgb, dst, o.color, src_mask=mask, ref_mask=mask) if o.color != "none" else rgb
        if o.sharpen > 0:
            blur = cv2.GaussianBlur(face, (0, 0), 1.0)
            face = np.clip(face + o.sharpen * (face - blur), 0, 1)
        if o.grain > 0:
            face = _match_grain(face, dst, mask, o.grain)
        # the face's region in the frame: the mask's bounding box mapped back, clipped
        ys, xs = np.nonzero(mask > 1.0 / 255)
        if len(xs) == 0:
            return frame
        inv = invert_affine(m)
        bx0, by0, bx1, by1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        corners = transform_points(np.array([[bx0, by0], [bx1, by0], [bx1, by1], [bx0, by1]], float), inv)
        h, w = frame.shape[:2]
        x0, y0 = np.floor(corners.min(0)).astype(int) - 1
        x1, y1 = np.ceil(corners.max(0)).astype(int) + 1
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return frame
        inv_roi = inv.copy()
        inv_roi[:, 2] -= (x0, y0)
        size = (int(x1 - x0), int(y1 - y0))
        face_u8 = np.clip(face * 255 + 0.5, 0, 255).astype(np.uint8)
        face_roi = cv2.warpAffine(face_u8, inv_roi, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mask_roi = cv2.warpAffine(mask, inv_roi, size, flags=cv2.INTER_LINEAR, borderValue=0)
        roi = np.ascontiguousarray(frame[y0:y1, x0:x1])
        if o.blend == "seamless" and mask_roi.max() > 0.5:
            hard = (mask_roi > 0.5).astype(np.uint8) * 255
            yy, xx = np.nonzero(hard)
            center = (int((xx.min() + xx.max() + 1) // 2), int((yy.min() + yy.max() + 1) // 2))
            try:  # OpenCV's Poisson clone, solved 2-7x faster (faceswap.seamless: it was 85 % of a merge without the network)
                face_roi = seamless_clone(face_roi, roi, hard, center)
            except (ValueError, cv2.error):
                pass  # a mask touching the border: fall back to the feathered alpha below
        frame[y0:y1, x0:x1] = cv2.blendLinear(face_roi, roi, mask_roi, 1.0 - mask_roi)
        return frame


def _match_grain(face: np.ndarray, dst: np.ndarray, mask: np.ndarray, amount: float) -> np.ndarray:
    import cv2

    sel = mask > 0.5
    if sel.sum() < 16:
        return face
    hp = lambda x: x - cv2.GaussianBlur(x, (0, 0), 1.0)  # noqa: E731
    need = float(hp(dst)[sel].std()) - float(hp(face)[sel].std())
    if need <= 0:
        return face
    rng = np.random.default_rng(int(dst.sum() * 1000) % (2**32))
    return np.clip(face + rng.normal(0, need * amount, face.shape).astype(np.float32), 0, 1)


def make_swapper(model_dir: str | Path | None, engine: str, device: str = "auto"):
    """(swapper or None, res, face type, model doc)."""
    if engine == "none" and model_dir is None:
        return None, None, None, {}
    from .modeldoc import read_model_doc

    doc = read_model_doc(model_dir)
    res, ft = int(doc["model"]["res"]), doc["model"]["face_type"]
    if engine == "none":
        return None, res, ft, doc
    if engine == "onnx":
        from .onnx_export import ONNX_NAME, OrtSwapper, export_onnx

        p = Path(model_dir) / ONNX_NAME
        if not p.exists():
            export_onnx(model_dir)
        return OrtSwapper(p), res, ft, doc
    from .onnx_export import TorchSwapper

    return TorchSwapper(model_dir, device=device), res, ft, doc


def swap_functions(source: Any, comp: Compositor, used: dict[int, dict[int, np.ndarray]], order: list[int] | None = None):
    """(process, frame_inputs) of the swap loop: a local merge's and every Ray worker's. The key
    of a frame is its smoothed landmarks: new tracking redoes exactly the frames that moved.

    ``order``: the frames the loop will ask for, in order: they are decoded ahead on a thread
    while the frames before them are composited (a video on one thread, its decoder reads in
    order); ``process.close()`` stops the read-ahead."""
    from machinima.frameio import Prefetch

    reads = Prefetch(order, source.read, depth=4, workers=1 if source.kind == "video" else None) if order else None

    def process(batch: list[int]) -> list[dict[str, np.ndarray]]:
        imgs = [reads.get(f) if reads is not None else source.read(f) for f in batch]
        return [{"rgb": o} for o in comp.frames(imgs, [used.get(f, {}) for f in batch], inplace=True)]

    process.close = reads.close if reads is not None else (lambda: None)  # type: ignore[attr-defined]

    def frame_inputs(f: int) -> dict[str, Any]:
        faces = used.get(f, {})
        return {"lm": {str(t): np.round(lm, 2).tolist() for t, lm in faces.items()}}

    return process, frame_inputs

