"""The control process: OSC and MIDI in, state out, and the wiring that starts the decode
process. Never imports torch (tested): it must stay light and start fast."""
