"""``run_instrument.py``: play live, or render offline.

User errors end with ``parser.exit(1, message)`` naming the fix; never a traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from instrument.engine.prebuffer import LATENCY_MODES
from instrument.errors import EngineError, SillageError, UserError
from instrument.paths import DEFAULT_MODEL, RECORD_DIR, ROOT, UI_MAIN

if TYPE_CHECKING:
    from instrument.link.messages import EngineSnapshot


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT (e.g. 127.0.0.1:7771), got {text!r}")
    return host or "127.0.0.1", int(port)


def _input_spec(text: str) -> tuple[str | None, int]:
    """``DEVICE[:CHANNELS]`` → (device, channels); a number or a name substring, 1 channel by
    default; an empty DEVICE (``:2``) is the default input."""
    device, sep, tail = text.rpartition(":")
    if sep and tail.strip().isdigit():
        channels = int(tail)
        if channels < 1:
            raise argparse.ArgumentTypeError(f"--input channels must be at least 1, got {tail!r}")
    else:
        device, channels = text, 1
    return (device.strip() or None), channels


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _prebuffer(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected auto or a number of frames (e.g. 512), got {text!r}"
        ) from None


def _threads(text: str) -> int:
    """``--threads``: a positive number, or ``auto`` (0: chosen from the decode time at load)."""
    if text == "auto":
        return 0
    return _positive_int(text)


def _rt_priority(text: str) -> str:
    if text in ("auto", "off") or (text.isdigit() and 1 <= int(text) <= 99):
        return text
    raise argparse.ArgumentTypeError(f"expected auto, off or a priority 1..99, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run_instrument.py",
        description="Sillage: a real-time neural audio instrument. With no arguments it plays the "
        "default patch with the default model; send OSC to 127.0.0.1:7770 (docs/osc.md).",
    )
    p.add_argument("-l", "--list-devices", action="store_true", help="list audio devices and exit")
    p.add_argument(
        "-d",
        "--device",
        help="output device: number or name substring (device or host API, e.g. 'JACK Audio')",
    )
    p.add_argument(
        "-i",
        "--input",
        type=_input_spec,
        metavar="DEVICE[:CHANNELS]",
        help="listen to this input device (number or name substring; CHANNELS default 1): "
        "the model encodes it and the patch's [listen] table mixes it in (patches/listen.toml)",
    )
    p.add_argument(
        "-r",
        "--samplerate",
        type=_positive_int,
        help="device sample rate (default: the model's; resampled when they differ)",
    )
    p.add_argument(
        "--latency",
        choices=tuple(LATENCY_MODES),
        default="low",
        help="block and prebuffer: "
        + "; ".join(f"{m.name}: {m.describe()}" for m in LATENCY_MODES.values())
        + " (default low; --blocksize and --prebuffer N override it)",
    )
    p.add_argument(
        "-b",
        "--blocksize",
        type=int,
        default=None,
        help="audio block in frames (default: the --latency mode's; offline: output block, "
        "default 256, the result is the same)",
    )
    p.add_argument(
        "--prebuffer",
        type=_prebuffer,
        default="auto",
        metavar="auto|N",
        help="ring prebuffer in frames between decode and audio: auto (default) starts at the "
        "--latency mode's and grows after an underrun, shrinking again after 30 quiet s with "
        "margin; N fixes it (e.g. 1024 = 21 ms at 48 kHz)",
    )
    p.add_argument(
        "-m",
        "--model",
        default=None,
        help=f"TorchScript model with the nn~ interface (default {DEFAULT_MODEL.relative_to(ROOT)})",
    )
    p.add_argument(
        "-p",
        "--patch",
        default="default",
        help="patch name in patches/ or a .toml path (default: default)",
    )
    p.add_argument(
        "--map",
        default=None,
        help="latent map .npz for /sillage/xy (default: the model's MODEL.map.npz if present)",
    )
    p.add_argument(
        "--osc-port", type=int, default=7770, help="OSC port to listen on (default 7770)"
    )
    p.add_argument(
        "--listen",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 for other machines)",
    )
    p.add_argument(
        "--allow",
        default=None,
        metavar="HOST[,HOST...]",
        help="take OSC only from these hosts or networks (e.g. 192.168.1.20,10.0.0.0/24); "
        "localhost always. Default: whoever can reach --listen",
    )
    p.add_argument(
        "--models-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder /sillage/model may load from (repeatable; models/ and the --model's "
        "folder always)",
    )
    p.add_argument(
        "--patches-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder /sillage/patch may load from (repeatable; patches/ always)",
    )
    p.add_argument(
        "--allow-paths",
        action="store_true",
        help="let /sillage/model and /sillage/patch load any path (only on a trusted network)",
    )
    p.add_argument(
        "--state-to",
        type=_host_port,
        action="append",
        default=None,
        metavar="HOST:PORT",
        help="send state here (default 127.0.0.1:7771; repeatable); Max/Pd can also send /sillage/subscribe PORT",
    )
    p.add_argument("--no-ui", action="store_true", help="do not start the latent map window")
    p.add_argument(
        "--threads",
        type=_threads,
        default=None,
        help="decode threads, or auto: 2 when one frame on 1 thread takes more than half its "
        "budget and 2 are measurably faster (default: auto live, shown at start; 1 offline, "
        "so that renders are bit-identical whatever the load)",
    )
    p.add_argument(
        "--backend",
        choices=("auto", "torch", "onnx"),
        default="auto",
        help="what decodes: onnx = onnxruntime on the model's ONNX twin (MODEL.onnx, checked "
        "against the .ts at load), torch = TorchScript; auto (default): the twin when it "
        "passes, else TorchScript",
    )
    p.add_argument(
        "--rt-priority",
        type=_rt_priority,
        default="auto",
        metavar="auto|off|N",
        help="real-time priority of the decode worker: auto (default) = SCHED_FIFO 10 below "
        "the audio thread where the OS allows it, else nice; off = nice only",
    )
    p.add_argument(
        "--record-dir",
        default=RECORD_DIR,
        help="where /sillage/record sessions and /sillage/tag marks go (default ./recordings)",
    )
    p.add_argument(
        "--user-models",
        default=None,
        metavar="DIR",
        help="where /sillage/train writes fine-tuned versions NAME-vN.ts (default models/user)",
    )
    p.add_argument(
        "--train-map",
        choices=("umap", "pca", "none"),
        default="umap",
        help="map /sillage/train builds for a new version (default umap: about a minute)",
    )
    p.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="stop after this many seconds (offline: length of the render)",
    )
    g = p.add_argument_group("offline render")
    g.add_argument("--offline", metavar="OUT.wav", help="render to a file instead of playing")
    g.add_argument(
        "--score",
        help='JSON Lines score: {"t": 0.25, "address": "/sillage/latent/0", "args": [1.5]} per line',
    )
    g.add_argument(
        "--input-file",
        metavar="IN.wav",
        help="listen to this audio file (with --offline; --seconds defaults to its length)",
    )
    g.add_argument(
        "--seed", type=int, default=0, help="random seed (same inputs and seed → identical file)"
    )
    g.add_argument(
        "--realtime",
        action="store_true",
        help="with --offline: run live at real time with OSC up, no sound card, and write what was played",
    )
    return p


def list_devices() -> str:
    import sounddevice as sd

    return str(sd.query_devices())


def resolve_model(arg: str | None) -> Path:
    path = Path(arg) if arg else DEFAULT_MODEL
    if not path.is_file():
        if arg is None:
            raise UserError(
                f"the default model {DEFAULT_MODEL} is missing; restore it with `git checkout models/default` or pass --model MODEL.ts"
            )
        raise UserError(
            f"model file {arg!r} not found; pass --model with a path to a TorchScript (.ts) file"
        )
    return path


def map_path(arg: str | None, model: Path) -> Path | None:
    """The latent map for /sillage/xy: --map, else MODEL.map.npz beside the model, else none."""
    if not arg:
        from mappings.latentmap import find_map

        return find_map(model)  # beside the model, or cached by a first-run build
    path = Path(arg)
    if path.is_file():
        return path
    if arg:
        raise UserError(
            f"map {arg!r} not found; build one with `python -m ui.map build --model MODEL AUDIO_DIR --out MAP.npz`"
        )
    return None


def load_map(path: Path | None) -> Any:
    if path is None:
        return None
    from mappings.latentmap import LatentMap

    try:
        return LatentMap.load(path)
    except Exception as exc:
        raise UserError(f"cannot read map {path}: {exc}") from None


def _setup(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """Offline: load model, patch and map in this process."""
    import torch

    if args.threads is None:
        args.threads = 1  # offline: one thread, the same result on every run
    torch.set_num_threads(max(args.threads, 1))
    from instrument.engine.loading import load_start

    model_path = resolve_model(args.model)
    start = load_start(model_path, args.patch, threads=args.threads, backend=args.backend)
    return start.runtime, start.patch, load_map(map_path(args.map, model_path))


def status_line(snap: EngineSnapshot) -> str:
    model = snap.model
    name, model_sr, ratio, latent, channels = (
        model.name,
        model.samplerate,
        model.ratio,
        model.latent_size,
        model.channels,
    )
    terms = snap.terms
    sr = snap.samplerate
    control = {k: v for k, v in terms.items() if k != "input"}
    budget = " + ".join(f"{k} {v:.1f}" for k, v in control.items() if math.isfinite(v))
    model_delay = "" if math.isfinite(terms.get("model", math.nan)) else " + model delay unknown"
    total = sum(v for v in control.values() if math.isfinite(v))
    rs = f" → {sr} Hz (resampled)" if sr != model_sr else ""
    threads = f"{model.threads} thread{'s' if model.threads != 1 else ''}"
    decode = f"decode {model.backend_note or model.backend}, {model.threads_note or threads}"
    priority = f", worker {snap.priority}" if snap.priority else ""
    line = (
        f"Sillage: model {name} ({model_sr} Hz{rs}, ratio {ratio}, latent {latent}, "
        f"{'stereo' if channels == 2 else 'mono'})  latency budget ≤ {total:.1f} ms = {budget}{model_delay}\n"
        f"Sillage: {decode}{priority}"
    )
    if snap.prebuffer_note:
        # --prebuffer auto: where it starts and how far it may grow (changes follow as lines)
        line += f"\nSillage: prebuffer {snap.prebuffer_note}"
    if "input" in terms:
        # input → sound: the input term (device in + block + one encoder frame) replaces the
        # wait for a control event's frame boundary
        heard = {"input": terms["input"], **{k: v for k, v in control.items() if k != "frame_wait"}}
        listen_total = sum(v for v in heard.values() if math.isfinite(v))
        listen_budget = " + ".join(f"{k} {v:.1f}" for k, v in heard.items() if math.isfinite(v))
        line += f"\nSillage: input → sound ≤ {listen_total:.1f} ms = {listen_budget}{model_delay}"
    return line


def _file_seconds(path: str) -> float:
    import soundfile

    try:
        info = soundfile.info(path)
    except (RuntimeError, OSError) as exc:
        raise UserError(
            f"cannot read --input-file {path!r} ({exc}); give a WAV/FLAC/AIFF file"
        ) from None
    return float(info.frames) / float(info.samplerate)


def run_offline(args: argparse.Namespace) -> int:
    from instrument.engine.offline import RenderError, render, write_wav
    from instrument.link.events import read_score
    from instrument.metrics import Metrics, Reporter

    if args.input and not args.realtime:
        raise UserError("--input listens to a device live; offline, give --input-file IN.wav")
    if args.input_file and args.seconds is None and not args.realtime:
        args.seconds = _file_seconds(args.input_file)
    if args.seconds is None or not args.seconds > 0:
        raise UserError("--offline needs --seconds S (a positive length)")
    if args.blocksize is not None and args.blocksize < 1:
        raise UserError(f"--blocksize must be at least 1 offline, got {args.blocksize}")
    out = Path(args.offline)
    if not out.parent.exists():
        raise UserError(f"folder {out.parent} does not exist; create it or write elsewhere")
    if args.realtime:
        return run_realtime(args, out)
    if args.blocksize is None:
        args.blocksize = 256  # offline the block changes nothing in the result (tested)
    runtime, patch, latent_map = _setup(args)
    events = []
    if args.score:
        events = read_score(args.score)
    reporter = Reporter()
    metrics = Metrics()
    sr = args.samplerate or runtime.info.samplerate
    t0 = time.perf_counter()
    try:
        audio = render(
            runtime,
            patch,
            events,
            seconds=args.seconds,
            samplerate=sr,
            blocksize=args.blocksize,
            seed=args.seed,
            reporter=reporter,
            latent_map=latent_map,
            metrics=metrics,
            input_file=args.input_file,
        )
    except RenderError as exc:
        write_wav(out, exc.partial, sr)
        print(
            f"Sillage: {exc}; kept the {exc.partial.shape[0] / sr:.2f} s rendered before in {out}",
            file=sys.stderr,
            flush=True,
        )
        return 1
    elapsed = time.perf_counter() - t0
    write_wav(out, audio, sr)
    import numpy as np

    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) if audio.size else 0.0
    print(
        f"Sillage: rendered {args.seconds:g} s to {out} ({sr} Hz, {audio.shape[1]} ch, "
        f"RMS {20 * math.log10(rms + 1e-12):.1f} dBFS) in {elapsed:.2f} s "
        f"({args.seconds / max(elapsed, 1e-9):.0f}× real time, decode {runtime.backend_note}); "
        f"rejected events: {reporter.total}"
    )
    if metrics.bad_frames:
        print(
            f"Sillage: {fault_summary(metrics.bad_frames, metrics.decode_errors, metrics.fallbacks)}"
            " (replaced by silence in the file; the messages above say when and why)",
            flush=True,
        )
        return 2
    return 0


def fault_summary(bad_frames: int, decode_errors: int, fallbacks: int) -> str:
    """``bad frames 3 (decode errors 1, fallbacks 0)``: what the live line and summaries show."""
    return (
        f"bad frames {bad_frames} (NaN/inf {bad_frames - decode_errors}, "
        f"decode errors {decode_errors}, fallbacks {fallbacks})"
    )


def _config(args: argparse.Namespace) -> Any:
    from instrument.control.live import LiveConfig
    from instrument.control.osc_files import FileRules
    from instrument.control.osc_gate import parse_allow

    state_to = tuple(args.state_to) if args.state_to else (("127.0.0.1", 7771),)
    allow = None
    if args.allow is not None:
        allow = tuple(h for h in args.allow.split(",") if h.strip())
        try:
            parse_allow(allow)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    elif args.listen in ("0.0.0.0", "", "::"):
        print(
            f"Sillage: warning: --listen {args.listen or '0.0.0.0'} takes OSC from every machine "
            "that reaches this one: anyone on the network can change the sound and load models "
            "and patches from the allowed folders. Name who may send with --allow "
            "HOST[,HOST...]",
            file=sys.stderr,
            flush=True,
        )
    files = FileRules.for_start(
        resolve_model(args.model),
        args.patch,
        # Fine-tuned versions (/sillage/train) play from their folder like the shipped models.
        models_dirs=(*args.models_dir, *([args.user_models] if args.user_models else [])),
        patches_dirs=tuple(args.patches_dir),
        allow_paths=args.allow_paths,
    )
    blocksize, prebuffer, _ = block_and_prebuffer(args)
    try:
        return LiveConfig(
            samplerate=args.samplerate or 0,
            blocksize=blocksize,
            prebuffer=prebuffer,
            osc_host=args.listen,
            osc_port=args.osc_port,
            state_to=state_to,
            allow=allow,
            files=files,
            user_models_dir=args.user_models,
            train_map=args.train_map,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None


def block_and_prebuffer(args: argparse.Namespace) -> tuple[int, int, int]:
    """The audio block, the prebuffer (the start, when adaptive) and the adaptive ceiling (0:
    fixed) from ``--latency`` and the ``--blocksize``/``--prebuffer`` that override it."""
    mode = LATENCY_MODES[args.latency]
    blocksize = mode.blocksize if args.blocksize is None else args.blocksize
    if args.prebuffer == "auto":
        return blocksize, mode.prebuffer, mode.ceiling
    return blocksize, int(args.prebuffer), 0


def worker_spec(args: argparse.Namespace, kind: str, wav_out: Path | None = None) -> Any:
    from instrument.control.live import OutputSpec, WorkerSpec
    from instrument.patch import resolve

    model = resolve_model(args.model)
    resolve(args.patch)
    the_map = map_path(args.map, model)
    blocksize, prebuffer, ceiling = block_and_prebuffer(args)
    if kind != "device":
        blocksize = blocksize or 256
    in_device, in_channels = args.input if args.input else (None, 0)
    output = OutputSpec(
        kind=kind,
        blocksize=blocksize,
        capacity=max(prebuffer, ceiling) + 8192 + max(blocksize, 256),
        samplerate=args.samplerate,
        device=args.device,
        keep_audio=wav_out is not None,
        input_device=in_device,
        input_channels=in_channels,
    )
    return WorkerSpec(
        model=str(model),
        patch=args.patch,
        output=output,
        prebuffer=prebuffer,
        prebuffer_ceiling=ceiling,
        threads=0 if args.threads is None else args.threads,  # live default: auto
        backend=args.backend,
        rt_priority=args.rt_priority,
        latent_map=str(the_map) if the_map else None,
        wav_out=str(wav_out) if wav_out else None,
        record_dir=args.record_dir,
    )


NO_OUTPUT_HINT = (
    "No usable audio output: start JACK (e.g. `jackd -d dummy -r 48000 -p 256 &`, then "
    "--device 'JACK Audio'), pick one from --list-devices, or render a file with "
    "--offline OUT.wav --seconds 10"
)


def _play(args: argparse.Namespace, engine: Any) -> int:
    """Start, print the status, run until Ctrl-C, SIGTERM or --seconds; the exit status (1
    when the decode process died and could not come back)."""
    # Ctrl-C and SIGTERM only set a flag, from launch to exit: a KeyboardInterrupt raised in
    # the middle of start() or stop() left half-started processes and, uncaught, ended the
    # control process by SIGINT (rc -2). Start-up polls the flag (LiveEngine.abort).
    stop = {"now": False}

    def on_stop(signum: int, frame: Any) -> None:
        stop["now"] = True
        engine.abort.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    try:
        engine.start()
    except EngineError as exc:
        if engine.abort.is_set():
            engine.stop()
            print("Sillage stopped before it was ready", flush=True)
            return 0
        text = str(exc)
        if text.startswith("OutputError") and "matches several" not in text:
            text = f"{text}. {NO_OUTPUT_HINT}"
        raise UserError(text) from None
    except OSError as exc:
        engine.stop()
        raise UserError(str(exc)) from None
    end = time.monotonic() + args.seconds if args.seconds else math.inf
    tty = sys.stdout.isatty()
    ui = None
    # Ctrl-C may come as soon as "ready" is out (scripts wait for that line): from here on,
    # every path goes through the clean stop below.
    try:
        print(status_line(engine.snap), flush=True)
        if engine.snap.input_note:
            print(f"Sillage: {engine.snap.input_note}", flush=True)
        print(
            f"Sillage ready: OSC on {engine.config.osc_host}:{engine.inputs[0].port}, patch {engine.snap.patch}; "
            f"state to {', '.join(f'{h}:{p}' for h, p in engine.sender.subscribers) or 'subscribers'}; Ctrl-C stops",
            flush=True,
        )
        ui = None if args.no_ui else start_ui(args, engine)
        while not stop["now"] and time.monotonic() < end and engine.failed is None:
            engine.abort.wait(min(1.0, max(0.0, end - time.monotonic())))
            line = engine.status_line()
            print(("\r" + line + "   ") if tty else line, end="" if tty else "\n", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        if tty:
            print()
        stats = engine.stop()
        if ui is not None:
            ui.terminate()
        p50, p99 = engine.decode_ms()
        med, jit = engine.latency_ms()
        latency = f"{med:.1f}±{jit:.1f} ms" if math.isfinite(med) else "not measured"
        snap = engine.snap
        if snap is not None and snap.latency_run_count and math.isfinite(snap.latency_run_ms[0]):
            # the whole run (every event and probe), not the live line's last 512
            med, jit = snap.latency_run_ms
            latency = f"{med:.1f}±{jit:.1f} ms over {snap.latency_run_count} measured"
        print(
            f"Sillage stopped: {engine.metrics.frames} frames, underruns {engine.metrics.underruns}, "
            f"decode p50 {p50:.2f} ms p99 {p99:.2f} ms, latency {latency}, "
            f"rejected {engine.rejected() or 0}"
            + engine.fault_text().replace("  ", ", ")
            + (f", device {stats}" if stats else ""),
            flush=True,
        )
    if engine.failed is not None:
        print(f"sillage: {engine.failed}", file=sys.stderr, flush=True)
        return 1
    return 0


def run_realtime(args: argparse.Namespace, out: Path) -> int:
    from instrument.control.live import LiveEngine

    engine = LiveEngine(worker_spec(args, "clock", wav_out=out), _config(args))
    rc = _play(args, engine)
    if out.exists():
        print(f"Sillage: wrote what was played to {out}", flush=True)
    return rc


def run_live(args: argparse.Namespace) -> int:
    from instrument.control.live import LiveEngine

    engine = LiveEngine(worker_spec(args, "device"), _config(args))
    return _play(args, engine)


def start_ui(args: argparse.Namespace, engine: Any) -> subprocess.Popen[bytes] | None:
    """The map window runs in its own process: it never shares the GIL with the decode worker."""
    if not UI_MAIN.is_file():
        return None
    if not (
        os.environ.get("DISPLAY")
        or os.environ.get("WAYLAND_DISPLAY")
        or sys.platform in ("darwin", "win32")
    ):
        print(
            "Sillage: no display, not starting the map window (run `python -m ui` where there is one)",
            flush=True,
        )
        return None
    host = "127.0.0.1" if engine.config.osc_host in ("0.0.0.0", "") else engine.config.osc_host
    cmd = [sys.executable, "-m", "ui", "--engine", f"{host}:{engine.inputs[0].port}"]
    cmd += ["--model", engine.spec.model]
    if engine.spec.latent_map:
        cmd += ["--map", engine.spec.latent_map]
    try:
        return subprocess.Popen(cmd, cwd=ROOT)
    except OSError as exc:
        print(f"Sillage: could not start the map window ({exc}); playing on", flush=True)
        return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.list_devices:
            print(list_devices())
            return 0
        if args.offline:
            return run_offline(args)
        if args.realtime:
            raise UserError(
                "--realtime goes with --offline OUT.wav (a headless live run written to a file)"
            )
        if args.input_file:
            raise UserError(
                "--input-file goes with --offline OUT.wav; to listen live use --input DEVICE "
                "(`-l` lists devices)"
            )
        return run_live(args)
    except UserError as exc:
        parser.exit(1, f"sillage: {exc}\n")
    except SillageError as exc:
        parser.exit(1, f"sillage: {type(exc).__name__}: {exc}\n")
    return 0
