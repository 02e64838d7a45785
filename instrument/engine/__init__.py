"""The decode process: model runtime, decode loop and worker, audio output, recorder, offline
render. Nothing here imports :mod:`instrument.control` (tested)."""
