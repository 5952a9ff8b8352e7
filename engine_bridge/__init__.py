"""engine_bridge: the live link between the stage and game engines, both ways.

Out (stage -> engine), from a recorded take or the live stage, on a drift-free schedule:
VMC protocol (EVMC4U/Unity, VMC4UE/Unreal, VSeeFace, Warudo, Blender VMC receivers), VRChat OSC
trackers, and a JSON-over-websocket plugin protocol for engine-side plugins.
In (engine -> take): camera tracks and events over OSC or the plugin protocol.

Modules (each small, sans-I/O where it is a format):
    errors      the package's exception family
    scheduler   absolute-deadline ticker, playhead (pause/seek/speed), jitter statistics
    mapping     the TOML mapping file: engines, performer -> avatar, bones, trackers
    vrchat      VRChat OSC tracker messages (sans-I/O)
    protocol    the plugin protocol: JSON messages, versioned, validated (sans-I/O)
    targets     engine targets registered by name (vmc, vrchat, plugin) + entry points
    plugin_server  the websocket server that drives ``protocol`` for engine plugins
    ingest      cameras/events in (OSC listener), into a take or to the stage server
    player      take playback: frames, loop, range, speed, pause/seek, fan-out to targets
    live        relay of the live stage to targets
    cli         ``machinima bridge ...``
"""
