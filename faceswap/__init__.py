"""Face swap: extract (detect, align, mask) -> train (DF / LIAE autoencoder) -> merge (track,
smooth, swap, colour transfer, blend) on takes, video files and image folders.

Modules (small, one job each)::

    errors      the FaceswapError family
    landmarks   the 68-point layout, Face records, mediapipe 478 -> 68 mapping
    backends    detector/landmark backends by name: "mediapipe" (built in, through machinima.faces:
                every shot size) and "onnx" (your models)
    align       Umeyama similarity to a mean face; face types half / mid / full / whole / head
    masks       landmark hull masks (forehead extension for whole/head), erode/blur, ONNX segmenter
    tracker     IoU + landmark tracker with ids, predicted crops; gap interpolation
    smoothing   zero-lag (offline), One-Euro (live), Savitzky-Golay landmark smoothing; jitter measure
    truth       tracking truth: a portrait moved along known paths; jitter / lag / overshoot figures
    color       colour transfer rct / lct / mkl / idt / sot
    faceset     facesets on machinima.collections: add, load for training, sort/filter
    sources     frames from a take (passes/rgb), a video file or an image folder
    extract     the extract pipeline (numbered steps)
    model       DF and LIAE autoencoders (torch)
    train       training loop: checkpoints, exact resume, preview grid, loss history; presets
    swapcheck   identity truth: dlib distances of merged frames to the source and the destination
    merge       the merge pipeline (one readable file, numbered steps)
    onnx_export ONNX export + onnxruntime runner
    cli         `machinima faceswap ...`

Heavy imports (torch, cv2, mediapipe, onnxruntime) happen inside functions.
"""
