"""Detection, 68-point landmarks, alignment and face types on real photos."""

from __future__ import annotations

import math

import numpy as np
import pytest

from faceswap.align import FACE_TYPES, align, check_size, estimate_yaw_pitch, face_transform, similarity_params, transform_points, umeyama
from faceswap.errors import BackendError, FaceswapError
from faceswap.landmarks import eye_distance

# Checked by hand on the photos (pixel x, y): outer/inner eye corners, nose tip, mouth corners, chin.
KEY = [36, 39, 42, 45, 30, 48, 54, 8]
HAND = {
    "grace": [[210, 195], [238, 194], [291, 192], [319, 190], [267, 238], [233, 281], [300, 277], [269, 333]],
    "astronaut": [[195, 101], [212, 104], [237, 106], [255, 105], [225, 127], [201, 139], [246, 141], [220, 178]],
}


@pytest.fixture(scope="module")
def backend():
    from faceswap.backends import get_backend

    b = get_backend("mediapipe")
    yield b
    b.close()


@pytest.mark.parametrize("name", ["grace", "astronaut"])
def test_detector_finds_the_face_and_68_points_land_near_hand_checked_positions(backend, name, request):
    img = request.getfixturevalue(name)
    faces = backend.detect(img)
    assert len(faces) == 1
    lm = faces[0].landmarks
    assert lm.shape == (68, 2)
    hand = np.array(HAND[name], float)
    iod = np.linalg.norm(hand[[0, 1]].mean(0) - hand[[2, 3]].mean(0))
    err = np.linalg.norm(lm[KEY] - hand, axis=1) / iod
    assert err.max() < 0.2, err  # within a fifth of the eye distance, each point
    assert err.mean() < 0.1
    yaw, pitch = estimate_yaw_pitch(lm)
    assert abs(yaw) < 0.2 and abs(pitch) < 0.3  # both photos are frontal


def test_no_face_is_an_empty_list_and_tracking_region_without_face_is_none(backend):
    blank = np.full((240, 320, 3), 90, np.uint8)
    assert backend.detect(blank) == []
    assert backend.landmarks(blank, np.array([100, 60, 180, 160.0])) is None


def test_unknown_backend_and_missing_onnx_model_say_what_to_do(tmp_path):
    from faceswap.backends import get_backend

    with pytest.raises(BackendError, match="unknown face backend"):
        get_backend("nope")
    with pytest.raises(BackendError, match="not found"):
        get_backend("onnx", landmarks=tmp_path / "missing.onnx")


def test_alignment_recovers_a_known_similarity(backend, astronaut):
    import cv2

    lm = backend.detect(astronaut)[0].landmarks
    angle, scale, t = 12.0, 0.8, (40.0, -25.0)
    m = cv2.getRotationMatrix2D((256, 256), angle, scale)
    m[:, 2] += t
    moved = cv2.warpAffine(astronaut, m, (512, 512), borderMode=cv2.BORDER_REFLECT)
    lm2 = backend.detect(moved)[0].landmarks
    # the crop transforms must differ by exactly the applied similarity: T2 = T1 @ M^-1
    t1 = np.vstack([face_transform(lm, "full", 256), [0, 0, 1]])
    t2 = np.vstack([face_transform(lm2, "full", 256), [0, 0, 1]])
    rel = np.linalg.inv(t2) @ t1  # original pixels -> moved pixels, should be M
    s_rel, a_rel, _ = similarity_params(rel[:2])
    assert s_rel == pytest.approx(scale, rel=0.03)
    assert math.degrees(a_rel) == pytest.approx(-angle, abs=1.5)  # OpenCV's +angle turns counter-clockwise on screen
    pts = np.array([[256.0, 256.0], [300.0, 200.0], [150.0, 120.0]])
    assert np.abs(transform_points(pts, rel[:2]) - transform_points(pts, m)).max() < 0.05 * eye_distance(lm)
    # and Umeyama itself recovers an exact similarity from points
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 100, (20, 2))
    exact = umeyama(pts, transform_points(pts, m))
    assert np.allclose(exact[:2], m, atol=1e-9)


def test_face_types_grow_the_crop_and_sizes_are_checked(backend, grace):
    lm = backend.detect(grace)[0].landmarks
    scales = [similarity_params(face_transform(lm, ft, 256))[0] for ft in FACE_TYPES]
    assert all(a > b for a, b in zip(scales, scales[1:]))  # half > mid > full > whole > head zoom
    face, mat = align(grace, lm, "whole", 64)
    assert face.shape == (64, 64, 3) and mat.shape == (2, 3)
    for bad in (32, 2048):
        with pytest.raises(FaceswapError, match="out of range"):
            check_size(bad)
    with pytest.raises(FaceswapError, match="unknown face type"):
        face_transform(lm, "torso", 256)


def test_two_people_in_one_frame_get_two_tracks(backend, grace, astronaut):
    import cv2

    from faceswap.tracker import FaceFinder

    pair = np.hstack([cv2.resize(grace, (300, 352)), cv2.resize(astronaut, (352, 352))])
    finder = FaceFinder(backend, redetect_every=100)
    first = finder(0, pair)
    assert len(first) == 2
    moved = np.roll(pair, 6, axis=1)
    second = finder(1, moved)  # tracked, not re-detected
    assert finder.detections == 1
    by_side = lambda faces: {f.track: f.center[0] < 300 for f in faces}  # noqa: E731
    assert by_side(first) == by_side(second)


def _export(module, path, size):
    import torch

    torch.onnx.export(module.eval(), (torch.rand(1, 3, size, size),), str(path), input_names=["x"], output_names=["y"],
                      opset_version=17, dynamo=False)


def test_onnx_backend_runs_user_models_by_the_documented_contract(tmp_path, backend, grace):
    """A stand-in detector (fixed box) and landmark model (fixed points) exported to ONNX."""
    import torch

    ref = backend.detect(grace)[0]
    det_size = 320
    sx, sy = det_size / grace.shape[1], det_size / grace.shape[0]
    box_in = torch.tensor([[ref.box[0] * sx, ref.box[1] * sy, ref.box[2] * sx, ref.box[3] * sy, 0.9]], dtype=torch.float32)

    class Det(torch.nn.Module):
        def forward(self, x):
            return box_in + 0 * x.mean()

    # landmarks in [0, 1] of the crop that the backend cuts (1.4x the box, square, centred)
    cx, cy = (ref.box[0] + ref.box[2]) / 2, (ref.box[1] + ref.box[3]) / 2
    half = max(ref.box[2] - ref.box[0], ref.box[3] - ref.box[1]) * 1.4 / 2
    norm = torch.tensor((ref.landmarks - [cx - half, cy - half]) / (2 * half), dtype=torch.float32)[None]

    class Lmk(torch.nn.Module):
        def forward(self, x):
            return norm + 0 * x.mean()

    _export(Det(), tmp_path / "det.onnx", det_size)
    _export(Lmk(), tmp_path / "lmk.onnx", 128)
    from faceswap.backends import get_backend

    ob = get_backend("onnx", detector=tmp_path / "det.onnx", landmarks=tmp_path / "lmk.onnx")
    faces = ob.detect(grace)
    assert len(faces) == 1 and faces[0].score == pytest.approx(0.9)
    assert np.abs(faces[0].landmarks - ref.landmarks).max() < 1.0  # mapped back to image pixels


def test_identity_meter_tells_people_apart(backend, grace, astronaut):
    from faceswap.identity import IdentityMeter

    meter = IdentityMeter()
    mirror = np.ascontiguousarray(astronaut[:, ::-1])
    e_a = meter.embedding(astronaut, backend.detect(astronaut)[0].landmarks)
    e_m = meter.embedding(mirror, backend.detect(mirror)[0].landmarks)
    e_g = meter.embedding(grace, backend.detect(grace)[0].landmarks)
    assert meter.distance(e_a, e_m) < 0.6 < meter.distance(e_a, e_g)  # dlib's same-person threshold
