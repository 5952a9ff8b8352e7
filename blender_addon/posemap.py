"""Camera and pose-map maths for the passes (no bpy).

- ``camera_frame``: a Blender camera (matrix_world in Blender's Z-up world, lens, sensor, fit,
  shift) -> ``machinima.passes.CameraFrame`` in canonical Y-up space.
- ``openpose_keypoints``: canonical poses -> the 18 OpenPose (COCO) body keypoints in world space.
- ``draw_pose_map``: keypoints projected through a camera -> an OpenPose-style RGB skeleton map
  (black background, the limb colours ControlNet's openpose model was trained on).
"""

from __future__ import annotations

import numpy as np

from machinima import quat, skeleton
from machinima.passes import CameraFrame

# canonical (x, y, z) -> Blender (x, -z, y), as a 4x4 acting on column vectors
CANONICAL_TO_BLENDER = np.array([[1.0, 0, 0, 0], [0, 0, -1.0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1.0]])


def camera_frame(matrix_world: np.ndarray, *, width: int, height: int, lens_mm: float, sensor_mm: float,
                 sensor_fit: str = "HORIZONTAL", sensor_height_mm: float = 24.0, shift: tuple[float, float] = (0.0, 0.0),
                 clip: tuple[float, float] = (0.1, 1000.0)) -> CameraFrame:
    """CameraFrame of a Blender camera. Blender cameras look down local -Z with +Y up, the same
    OpenGL convention the passes use, so only the world basis changes."""
    m = np.asarray(matrix_world, float)
    # drop scale from the camera matrix (a scaled camera object still projects the same)
    rot = m[:3, :3] / np.linalg.norm(m[:3, :3], axis=0)
    cam_to_world_b = np.eye(4)
    cam_to_world_b[:3, :3] = rot
    cam_to_world_b[:3, 3] = m[:3, 3]
    w2c = np.linalg.inv(cam_to_world_b) @ CANONICAL_TO_BLENDER
    fit = sensor_fit.upper()
    if fit == "AUTO":
        fit = "HORIZONTAL" if width >= height else "VERTICAL"
    if fit == "VERTICAL":
        f = lens_mm / (sensor_height_mm if sensor_fit.upper() == "VERTICAL" else sensor_mm) * height
    else:
        f = lens_mm / sensor_mm * width
    size = max(width, height)
    k = np.array([[f, 0.0, width / 2.0 - shift[0] * size], [0.0, f, height / 2.0 + shift[1] * size], [0.0, 0.0, 1.0]])
    return CameraFrame(k, w2c, int(width), int(height), float(lens_mm), float(sensor_mm), (float(clip[0]), float(clip[1])))


# OpenPose COCO-18 order
KEYPOINTS = ("nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist", "r_hip", "r_knee",
             "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear")
_DIRECT = {"r_shoulder": "RightUpperArm", "r_elbow": "RightLowerArm", "r_wrist": "RightHand", "l_shoulder": "LeftUpperArm",
           "l_elbow": "LeftLowerArm", "l_wrist": "LeftHand", "r_hip": "RightUpperLeg", "r_knee": "RightLowerLeg",
           "r_ankle": "RightFoot", "l_hip": "LeftUpperLeg", "l_knee": "LeftLowerLeg", "l_ankle": "LeftFoot",
           "r_eye": "RightEye", "l_eye": "LeftEye"}
# limbs (pairs of keypoint indices) and colours as in OpenPose / controlnet-aux draw_bodypose
LIMBS = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13), (1, 0),
         (0, 14), (14, 16), (0, 15), (15, 17))
COLORS = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0), (0, 255, 85),
          (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255),
          (255, 0, 170), (255, 0, 85))


def openpose_keypoints(poses: np.ndarray) -> np.ndarray:
    """World positions (..., 18, 3) of the OpenPose keypoints of canonical poses (..., 55, 7)."""
    pos, rot = skeleton.forward_kinematics(poses)
    out = np.zeros(pos.shape[:-2] + (18, 3))
    for k, name in enumerate(KEYPOINTS):
        if name in _DIRECT:
            out[..., k, :] = pos[..., skeleton.BONE_INDEX[_DIRECT[name]], :]
    out[..., 1, :] = (out[..., 2, :] + out[..., 5, :]) / 2
    head = skeleton.BONE_INDEX["Head"]
    hp, hq = pos[..., head, :], rot[..., head, :]
    out[..., 0, :] = hp + quat.rotate(hq, np.broadcast_to([0.0, 0.07, 0.11], hp.shape))
    out[..., 16, :] = hp + quat.rotate(hq, np.broadcast_to([-0.08, 0.06, 0.0], hp.shape))
    out[..., 17, :] = hp + quat.rotate(hq, np.broadcast_to([0.08, 0.06, 0.0], hp.shape))
    return out


def draw_pose_map(cam: CameraFrame, keypoints: list[np.ndarray], *, stick: int | None = None) -> np.ndarray:
    """An OpenPose-style map (H, W, 3) uint8 of each performer's keypoints (18, 3) in world space.
    Keypoints behind the camera are left out, and so are limbs touching them."""
    import cv2

    h, w = cam.height, cam.width
    img = np.zeros((h, w, 3), np.uint8)
    stick = stick or max(1, round(4 * max(w, h) / 512))
    near = cam.clip[0]
    for kp in keypoints:
        uv, depth = cam.project(kp)
        ok = depth > near
        layer = np.zeros_like(img)
        for (a, b), color in zip(LIMBS, COLORS):
            if ok[a] and ok[b]:
                pa, pb = uv[a], uv[b]
                if np.all(np.abs(np.concatenate([pa, pb])) < 1e5):
                    cv2.line(layer, tuple(int(round(x)) for x in pa), tuple(int(round(x)) for x in pb), tuple(int(c * 0.6) for c in color),
                             stick, lineType=cv2.LINE_AA)
        img = np.maximum(img, layer)
        for k, color in enumerate(COLORS):
            if ok[k] and np.all(np.abs(uv[k]) < 1e5):
                cv2.circle(img, tuple(int(round(x)) for x in uv[k]), stick, color, -1, lineType=cv2.LINE_AA)
    return img
