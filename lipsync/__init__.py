"""lipsync: speech -> mouth shapes for avatars (takes, live VMC, Blender shape keys) and
mouth re-sync on live-action faces. See docs/lipsync.md.

Python API::

    from lipsync.audio import load_audio
    from lipsync.analyze import lipsync_audio
    track = lipsync_audio(load_audio("line.wav"), fps=24, text="hello there")
    track.shapes   # Rhubarb shape per frame; track.visemes (Oculus); track.vrm (n, 5) A I U E O; track.cues
"""
