"""The controller a patch builds: sources → conditioning → mapping → target latent.

:class:`ChainController` implements :class:`instrument.control.Controller`. ``validate`` runs on
the OSC thread and only parses; ``on_event``, ``target``, ``reset`` and ``outbox`` run on the
decode worker. Every signal keeps its last good value: a message that fails to decode changes
nothing (never a jump), and a silent sensor is held, then eased to rest
(:class:`mappings.conditioning.Staleness`).

Learning commands arrive as ``/sillage/learn <command>``:

``record`` / ``stop``
    Record (inputs, current latent target) pairs at most every ``record_interval_s`` while the
    inputs are fresh; the sound follows the direct target (``/sillage/latent``, ``/sillage/xy``)
    meanwhile, so you hear what you demonstrate.
``train`` / ``run`` / ``pause`` / ``clear`` / ``save``
    Fit the regression (kNN at once, MLP a few steps per frame), play its output, go back to the
    direct target, forget the examples, write them to the patch's ``examples`` file.
``midi``
    MIDI learn: the next moved MIDI control replaces the next mapping input, in turn.
``calibrate`` / ``calibrate_stop`` / ``centre``
    Capture every conditioned signal's min/max while you move; use them as ranges; take the
    current values as the centres of bipolar signals.

Wekinator mode (a ``wekinator`` source): ``/wekinator/control/startRecording``,
``stopRecording``, ``train``, ``startRunning``, ``stopRunning``, ``deleteAllExamples``,
``outputs f...`` act the same way, examples are recorded per ``/wek/inputs`` message, and the
outputs go to ``/wek/outputs`` on the configured host:port (default 127.0.0.1:12000).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from instrument.link.events import Event
from instrument.patch.contract import ControlState, Outgoing
from instrument.protocol import OSCInputError
from mappings.conditioning import Conditioner, Staleness
from mappings.errors import InputError, floats
from mappings.matrix import LoopMapping, MatrixMapping
from mappings.regression import Demonstrations
from mappings.sources import MidiSource, Source, VectorSource

if TYPE_CHECKING:
    from instrument.patch.voice import VoicePart

NOTE_ADDRESSES = ("/midi/note", "/midi/bend", "/midi/cc")  # cc: the sustain pedal (64)

LEARN = "/sillage/learn"
SAVE_THREAD = "sillage-save-examples"
WEK_CONTROL = "/wekinator/control/"
WEK_COMMANDS = (
    "startRecording", "stopRecording", "train", "startRunning", "stopRunning",
    "deleteAllExamples", "outputs", "cancelTrain",
)  # fmt: skip


class Signal:
    """One named input of the mapping: its conditioner and its hold-then-ease state."""

    def __init__(self, conditioner: Conditioner, hold_s: float | None, ease_s: float) -> None:
        self.conditioner = conditioner
        self.stale = Staleness(conditioner.rest, hold_s, ease_s)

    def update(self, t: float, raw: float) -> None:
        self.stale.update(t, self.conditioner(t, raw))

    def reset(self) -> None:
        self.conditioner.reset()
        self.stale.reset()


@dataclass
class MappingSpec:
    """What the controller computes from its input vector (built by :mod:`instrument.patch`)."""

    kind: str = "direct"  # direct | matrix | loop | regression
    inputs: list[str] = field(default_factory=list)
    matrix: MatrixMapping | None = None
    loop: LoopMapping | None = None
    demos: Demonstrations | None = None
    examples_path: Path | None = None
    record_interval_s: float = 0.05
    mlp_steps_per_frame: int = 4
    run_on_load: bool = True


class ChainController:
    """A patch's control chain. See the module docstring."""

    def __init__(
        self, name: str, latent_size: int, sources: Sequence[Source], mapping: MappingSpec,
        signals: dict[str, Signal], *, wek_output: tuple[str, int] = ("127.0.0.1", 12000),
        midi: str | None = None, voice: VoicePart | None = None,
    ) -> None:  # fmt: skip
        self.name = name
        #: The keyboard and sensor-pitch parts ([voice], [pitch]); None when the patch has none.
        self.voice = voice
        #: Why a part of the patch plays nothing on this model (the engine reports it once).
        self.notice = voice.notice if voice is not None else ""
        self.latent_size = int(latent_size)
        self.sources = list(sources)
        self.mapping = mapping
        self.signals = signals
        self.wek_output = wek_output
        self.midi = midi
        self.dropped: dict[str, int] = {}
        #: The engine may set this to its reporter's ``reject(kind, message)`` (rate-limited):
        #: events that reach ``on_event`` unvalidated (MIDI, scores) and fail are reported too.
        self.on_reject: Callable[[str, str], None] | None = None
        self._out: list[Outgoing] = []
        self.recording = False
        self.running = (
            mapping.kind == "regression"
            and mapping.run_on_load
            and bool(mapping.demos and mapping.demos.trained)
        )
        self._t_last_record = -math.inf
        self._learn_midi = False
        self._learn_slot = 0
        self._wek = next((s for s in self.sources if s.kind == "wekinator"), None)
        self._wek_outputs: np.ndarray | None = None
        self._wek_inputs: np.ndarray | None = None
        self._wek_fresh = False
        self._x = np.zeros(len(mapping.inputs))
        self._base = np.zeros(self.latent_size)
        self._t_now = 0.0
        self._read = self._value_now  # bound once: target() builds nothing per frame
        self._exact: dict[str, Source] = {}
        for s in self.sources:
            if isinstance(s, (VectorSource, MidiSource)):
                for a in s._ranges if isinstance(s, MidiSource) else (s.address,):
                    self._exact[a] = s

    # --- Controller protocol -------------------------------------------------------------
    def osc_ports(self) -> Sequence[int]:
        return sorted({s.port for s in self.sources if s.port})

    def _source_for(self, address: str) -> Source | None:
        exact = self._exact.get(address)
        if exact is not None:
            return exact
        for s in self.sources:
            if s.owns(address):
                return s
        return None

    def validate(self, address: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """Check a non-core message (OSC thread; pure)."""
        if address.startswith(WEK_CONTROL) and self._wek is not None:
            cmd = address[len(WEK_CONTROL) :]
            if cmd not in WEK_COMMANDS:
                raise OSCInputError(
                    "unknown_address", f"{address}: Sillage supports {', '.join(WEK_COMMANDS)}"
                )
            if cmd == "outputs":
                try:
                    return tuple(float(v) for v in floats(address, args, at_least=1))
                except InputError as exc:
                    raise OSCInputError(exc.kind, str(exc)) from None
            return tuple(args)
        source = self._source_for(address)
        if source is None:
            raise OSCInputError(
                "unknown_address",
                f"unknown address {address!r}; patch {self.name!r} listens to "
                f"{', '.join(s.kind for s in self.sources) or 'core /sillage addresses only'} "
                "(see docs/control.md)",
            )
        try:
            return source.check(address, args)
        except InputError as exc:
            raise OSCInputError(exc.kind, str(exc)) from None

    def on_event(self, event: Event, state: ControlState) -> None:
        """Apply one event (decode worker). Bad events are counted and dropped."""
        address = event.address
        try:
            if address == LEARN:
                self._learn(str(event.args[0]) if event.args else "", state)
                return
            if address.startswith(WEK_CONTROL):
                self._wek_control(address[len(WEK_CONTROL) :], event.args, state)
                return
            source = self._source_for(address)
            if source is None:
                self._drop(
                    "unknown_address", f"{address}: no input of patch {self.name!r} takes it"
                )
                return
            values = source.signals(event.time, address, event.args)
        except (InputError, ValueError, TypeError, IndexError) as exc:
            self._drop(getattr(exc, "kind", "type"), f"{address}: {exc} (last good value held)")
            return
        if self._learn_midi and isinstance(source, MidiSource) and address == "/midi/cc":
            self._bind_midi(next(iter(values), None))
        voices = self.voice.voices if self.voice is not None else None
        # Checked above by the source (channel, note, velocity ranges); the input's channel
        # filter applies to notes as to controls.
        if (
            voices is not None
            and address in NOTE_ADDRESSES
            and isinstance(source, MidiSource)
            and (not source.channel or int(event.args[0]) == source.channel)
        ):
            try:
                voices.on_midi(address, event.args)
            except InputError as exc:
                self._drop(exc.kind, f"{address}: {exc}")
        for name, raw in values.items():
            sig = self.signals.get(name)
            if sig is not None:
                sig.update(event.time, raw)
        if source is self._wek:
            self._wek_input(event, values, state)

    def target(self, t: float, state: ControlState) -> np.ndarray:
        """Target latent at time ``t``, shape (latent_size,). Runs on the decode worker."""
        z = self._mapped(t, state)
        if self.voice is None:
            return z
        base = self._base
        base[:] = z
        self._t_now = t
        return self.voice.apply(t, base, self._read)

    @property
    def n_voices(self) -> int:
        """Model streams to decode and mix (1 unless a polyphonic keyboard plays)."""
        return self.voice.n_voices if self.voice is not None else 1

    def voice_targets(self) -> np.ndarray | None:
        """Every keyboard voice's latent from the last :meth:`target`, shape (voices,
        latent_size); None without a polyphonic keyboard. Decode worker."""
        if self.voice is None or self.voice.n_voices < 2:
            return None
        return self.voice.rows()

    def voice_active(self, voice: int) -> bool:
        """Whether voice ``voice`` sounds now (idle voices need not be decoded)."""
        return self.voice.active(voice) if self.voice is not None else voice == 0

    def fixed_dims(self) -> list[int]:
        """Latent dimensions in absolute units (pitch, loudness) that scaling must not move."""
        return self.voice.fixed_dims() if self.voice is not None else []

    def _value_now(self, name: str) -> float:
        sig = self.signals.get(name)
        return sig.stale.value(self._t_now) if sig is not None else 0.0

    def _mapped(self, t: float, state: ControlState) -> np.ndarray:
        m = self.mapping
        x = self._x
        for k, name in enumerate(m.inputs):
            sig = self.signals.get(name)
            x[k] = sig.stale.value(t) if sig is not None else 0.0
        if m.kind == "matrix" and m.matrix is not None:
            return m.matrix(x, state.centre)
        if m.kind == "loop" and m.loop is not None:
            return m.loop(t, x, state.centre)
        if m.kind == "regression" and m.demos is not None:
            return self._regression(t, x, state)
        return state.target

    def reset(self, state: ControlState) -> None:
        """Panic: forget filter state and held inputs (decode worker)."""
        for sig in self.signals.values():
            sig.reset()
        for s in self.sources:
            s.reset()
        if self.voice is not None:
            self.voice.reset()
        if self.mapping.loop is not None:
            self.mapping.loop.reset()
        self.recording = False

    def outbox(self) -> list[Outgoing]:
        out, self._out = self._out, []
        return out

    # --- regression ----------------------------------------------------------------------
    def _regression(self, t: float, x: np.ndarray, state: ControlState) -> np.ndarray:
        demos = self.mapping.demos
        assert demos is not None
        if self._wek is not None:
            return self._wek_target(state)
        if self.recording:
            fresh = any(
                (s := self.signals.get(n)) is not None
                and s.stale.fresh(t)
                and s.stale.t_last > -math.inf
                for n in self.mapping.inputs
            )
            if fresh and t - self._t_last_record >= self.mapping.record_interval_s:
                demos.add(x, self._fit(state.target))
                self._t_last_record = t
            return state.target
        demos.train_steps(self.mapping.mlp_steps_per_frame)
        if self.running and demos.trained:
            return demos.predict(x)
        return state.target

    def _fit(self, v: np.ndarray) -> np.ndarray:
        out = np.zeros(self.latent_size)
        n = min(len(v), self.latent_size)
        out[:n] = v[:n]
        return out

    def _learn(self, cmd: str, state: ControlState) -> None:
        demos = self.mapping.demos
        if cmd == "midi":
            self._learn_midi = bool(self.mapping.inputs)
        elif cmd == "calibrate":
            for sig in self.signals.values():
                sig.conditioner.start_calibration()
        elif cmd == "calibrate_stop":
            for sig in self.signals.values():
                sig.conditioner.stop_calibration()
        elif cmd == "centre":
            for sig in self.signals.values():
                sig.conditioner.set_centre()
        elif demos is None:
            self._drop(
                "learn", f"/sillage/learn {cmd}: patch {self.name!r} has no regression mapping"
            )
        elif cmd == "record":
            self.recording, self.running = True, False
        elif cmd == "stop":
            self.recording = False
        elif cmd == "train":
            self.recording = False
            self.running = demos.train()
        elif cmd == "run":
            self.recording = False
            self.running = demos.trained or demos.train()
        elif cmd == "pause":
            self.running = False
        elif cmd == "clear":
            demos.clear()
            self.running = False
        elif cmd == "save" and self.mapping.examples_path is not None:
            text = json.dumps(demos.to_dict())
            path = self.mapping.examples_path
            # File I/O off the decode worker: a short-lived thread writes the JSON.
            threading.Thread(
                target=path.write_text, args=(text,), name=SAVE_THREAD, daemon=True
            ).start()
        else:
            self._drop(
                "learn",
                f"/sillage/learn {cmd!r}: expected record, stop, train, run, pause, clear, save, "
                "midi, calibrate, calibrate_stop or centre",
            )

    def _bind_midi(self, name: str | None) -> None:
        inputs = self.mapping.inputs
        if name is None or not inputs:
            return
        slot = self._learn_slot % len(inputs)
        old = self.signals.get(inputs[slot])
        self.signals[name] = Signal(
            Conditioner(old.conditioner.spec if old and not old.conditioner.identity else None),
            None, 1.0,
        )  # fmt: skip
        inputs[slot] = name
        self._learn_slot = slot + 1
        self._learn_midi = False

    # --- Wekinator -----------------------------------------------------------------------
    def _wek_control(self, cmd: str, args: tuple[Any, ...], state: ControlState) -> None:
        if cmd == "startRecording":
            self._learn("record", state)
        elif cmd == "stopRecording":
            self._learn("stop", state)
        elif cmd == "train":
            self._learn("train", state)
        elif cmd == "startRunning":
            self._learn("run", state)
        elif cmd == "stopRunning":
            self._learn("pause", state)
        elif cmd == "deleteAllExamples":
            self._learn("clear", state)
        elif cmd == "outputs":
            self._wek_outputs = self._fit(np.asarray(floats(cmd, args, at_least=1)))
        elif cmd == "cancelTrain":
            return
        else:
            self._drop("unknown_address", f"/wekinator/control/{cmd} is not supported")

    def _wek_input(self, event: Event, values: dict[str, float], state: ControlState) -> None:
        demos = self.mapping.demos
        x = np.array(list(values.values()))
        if demos is None:
            return
        if demos.n_inputs != len(x):
            if len(demos):
                self._drop(
                    "arity",
                    f"/wek/inputs: {len(x)} numbers, but the examples have {demos.n_inputs}; "
                    "send the same count or deleteAllExamples",
                )
                return
            self.mapping.demos = demos = Demonstrations(
                len(x), self.latent_size, model=demos.model_kind, k=demos.knn.k,
                hidden=demos.mlp.hidden,
            )  # fmt: skip
        self._wek_inputs = x
        self._wek_fresh = True
        if self.recording:
            y = self._wek_outputs if self._wek_outputs is not None else self._fit(state.target)
            demos.add(x, y)

    def _wek_target(self, state: ControlState) -> np.ndarray:
        demos = self.mapping.demos
        assert demos is not None
        demos.train_steps(self.mapping.mlp_steps_per_frame)
        if self.recording or not self.running or not demos.trained or self._wek_inputs is None:
            if self._wek_outputs is not None and self.recording:
                return self._wek_outputs
            return state.target
        z = demos.predict(self._wek_inputs)
        if self._wek_fresh:
            self._wek_fresh = False
            host, port = self.wek_output
            self._out.append(Outgoing(host, port, "/wek/outputs", tuple(float(v) for v in z)))
        return z

    def _drop(self, kind: str, message: str) -> None:
        """Count a dropped event; report it through ``on_reject`` when the engine set one."""
        self.dropped[kind] = self.dropped.get(kind, 0) + 1
        if self.on_reject is not None:
            self.on_reject(kind, message)
