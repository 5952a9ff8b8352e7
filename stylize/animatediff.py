"""AnimateDiff video-to-video (and its ControlNet variant) for whole takes, in sliding context
windows blended inside the denoising loop: one motion, no seams, any length.

    animate_take(take, look, motion)
      1. check inputs: the look (sd15, img2img), the motion settings, the take's frames and passes
      2. build the engine: base model + motion adapter (+ motion LoRAs, LoRAs, ControlNets), all
         from local paths; a missing one -> one message saying what to put where
      3. split the frames into segments (the look's shots: motion never runs across a cut)
      4. run the segments through ``machinima.poststep.PostStep``: a finished run skips, a rerun
         recomputes unfinished segments exactly (windows and noise are pure functions of the seed)
      5. encode the finished frames to ``<step-id>.mp4``

    AnimateDiffEngine.video(frames, controls, prompts=..., seed=..., strength=...)
      1. check inputs (frame shapes, one prompt per frame, window <= what the adapter supports)
      2. resize to the model's multiple, timesteps from steps x strength
      3. encode the frames to latents (VAE, in chunks), add the seed's noise for the whole take
      4. prompt embeddings per frame (per-shot prompts work inside a window), controls per frame
      5. denoise: at every step, plan the windows (``ContextWindows``), predict each window's
         noise (UNetMotionModel + ControlNets, CFG), blend the predictions across overlaps with
         normalized weights, then one scheduler step on the whole take
      6. decode (VAE, in chunks) and resize back

The diffusers pipeline (``AnimateDiffVideoToVideoPipeline`` or
``AnimateDiffVideoToVideoControlNetPipeline``) holds the components and does the loading (local
folders and single files, LoRA adapters, prompt encoding); the loop in ``animate_engine`` replaces its
``__call__`` because that one denoises all frames in one window.

The code lives in modules of one job each; every name stays importable from here:
``animate_look`` (the ``[animatediff]`` settings), ``animate_engine`` (models and the denoising
loop), ``animate_segments`` (segments, controls), ``animate_run`` (the take as a resumable step),
``animate_tiny`` (tiny random models for tests and benchmarks).
"""

from __future__ import annotations

from .animate_engine import ADAPTER_EXPECT, AnimateDiffEngine, load_motion_adapter
from .animate_look import BETA_SCHEDULES, MotionSpec, check_look, load_animate_look, parse_animate_look
from .animate_run import OUTPUT, STEP_KIND, AnimateResult, animate_source, animate_take
from .animate_segments import Segment, control_images, plan_segments
from .animate_tiny import tiny_engine, tiny_motion_components

__all__ = ["ADAPTER_EXPECT", "BETA_SCHEDULES", "OUTPUT", "STEP_KIND", "AnimateDiffEngine", "AnimateResult", "MotionSpec",
           "Segment", "animate_source", "animate_take", "check_look", "control_images", "load_animate_look",
           "load_motion_adapter", "parse_animate_look", "plan_segments", "tiny_engine", "tiny_motion_components"]
