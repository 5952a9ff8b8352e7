"""Micro-datasets and LoRA training.

- ``lora.dataset``: import images into a dataset (the hub's ``machinima.collections`` format,
  kind ``"dataset"``) from image folders, videos and takes' passes, with blur / exposure /
  near-duplicate filters; kohya side-car captions (``images/NAME.txt``) with a trigger template.
- ``lora.coverage``: what a set contains and lacks (head pose, expression, light, sharpness,
  resolution) as a PNG report, and where a source set does not cover a destination set.
- ``lora.train``: LoRA (peft) training on a local diffusers base; kohya/A1111/ComfyUI output.
- ``lora.kohya``: key-layout conversion between peft/diffusers and kohya.

Heavy imports (torch, diffusers, cv2, mediapipe) stay inside functions.
"""

from .errors import BaseModelError, CaptionerError, DatasetError, ImportSourceError, LoraError, TrainConfigError

__all__ = ["LoraError", "DatasetError", "ImportSourceError", "BaseModelError", "TrainConfigError", "CaptionerError"]
