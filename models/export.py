"""Export a trained run to TorchScript with the nn~ interface, plus a TOML model card.

``python -m models.export RUN_DIR --out MODEL.ts [--streaming]``

The exported module has methods ``encode``, ``decode``, ``forward``; buffers
``<method>_params = [in_channels, in_ratio, out_channels, out_ratio]`` (int64); attribute
``sr``; ``get_methods()``, ``get_attributes()``, ``get_sample_rate()``; and, so a fine-tune
can start from the file alone, the resolved config as JSON in ``model_config_json`` (the
weights are the module's own state dict under ``model.``).
"""

import argparse
import datetime as _dt
import json
import shlex
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, List  # noqa: UP035 - TorchScript needs typing.List here

import torch
from torch import nn

from models.config import ModelConfig
from models.errors import CheckpointError, ModelsError
from models.families import build_model, set_model_streaming
from models.layers import CachedConv1d
from models.vae import VAE

JIT_DEPRECATION = r"`torch\.jit\.\w+` is deprecated"


@contextmanager
def quiet_jit() -> Iterator[None]:
    """Silence torch.jit's DeprecationWarnings (torch ≥ 2.9 warns on every entry point)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=JIT_DEPRECATION, category=DeprecationWarning)
        yield


def load_scripted(path: str | Path) -> torch.jit.ScriptModule:
    """``torch.jit.load`` on CPU without the deprecation warning."""
    with quiet_jit():
        return torch.jit.load(str(path), map_location="cpu")


class ScriptedModel(nn.Module):
    """nn~-compatible wrapper around a :class:`~models.vae.VAE`."""

    _methods: List[str]  # noqa: UP006
    _attributes: List[str]  # noqa: UP006
    encode_input_labels: List[str]  # noqa: UP006
    encode_output_labels: List[str]  # noqa: UP006
    decode_input_labels: List[str]  # noqa: UP006
    decode_output_labels: List[str]  # noqa: UP006
    forward_input_labels: List[str]  # noqa: UP006
    forward_output_labels: List[str]  # noqa: UP006

    def __init__(self, model: VAE, cfg: ModelConfig, streaming: bool, steps: int = 0) -> None:
        super().__init__()
        self.model = model
        self.train_steps = int(steps)
        self.sr = int(cfg.samplerate)
        self.latent_size = int(cfg.latent_size)
        self.ratio = int(cfg.ratio)
        self.channels = int(cfg.channels)
        self.streaming = bool(streaming)
        self.model_config_json = cfg.to_json()
        c, lat, r = cfg.channels, cfg.latent_size, cfg.ratio
        self.register_buffer("encode_params", torch.tensor([c, 1, lat, r], dtype=torch.int64))
        self.register_buffer("decode_params", torch.tensor([lat, r, c, 1], dtype=torch.int64))
        self.register_buffer("forward_params", torch.tensor([c, 1, c, 1], dtype=torch.int64))
        audio = [f"(signal) audio channel {i}" for i in range(c)]
        latent = [f"(signal) latent {i}" for i in range(lat)]
        labels_of: Any = getattr(model, "latent_labels", None)
        if labels_of is not None:  # DDSP family: pitch, loudness, timbre …
            latent = labels_of()
        self.encode_input_labels = audio
        self.encode_output_labels = latent
        self.decode_input_labels = latent
        self.decode_output_labels = audio
        self.forward_input_labels = audio
        self.forward_output_labels = audio
        self._methods = ["encode", "decode", "forward"]
        self._attributes = []

    @torch.jit.export
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Audio (batch, channels, time) → latent mean (batch, latent_size, time / ratio)."""
        with torch.no_grad():
            return self.model.encode(x)

    @torch.jit.export
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent (batch, latent_size, frames) → audio (batch, channels, frames * ratio).

        Runs on the decode worker. In streaming exports consecutive calls continue the signal.
        """
        with torch.no_grad():
            return self.model.decode(z, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Audio → audio through the latent (batch, channels, time) → same shape."""
        with torch.no_grad():
            return self.model.decode(self.model.encode(x), True)

    @torch.jit.export
    def get_methods(self) -> list[str]:
        return self._methods

    @torch.jit.export
    def get_attributes(self) -> list[str]:
        return self._attributes

    @torch.jit.export
    def get_sample_rate(self) -> int:
        return self.sr


def script_model(
    model: VAE, cfg: ModelConfig, *, streaming: bool, steps: int = 0
) -> torch.jit.ScriptModule:
    """Wrap, switch streaming on or off, and script (returns the ScriptModule)."""
    model = model.eval()
    if streaming and not cfg.causal:
        raise ModelsError("--streaming needs a causal model; this run has causal=false")
    set_model_streaming(model, streaming)
    for conv in model.modules():
        if isinstance(conv, CachedConv1d):
            conv.prepare_inference()
    synth: Any = getattr(model, "synth", None)
    if synth is not None:
        # DDSP family: filter the noise by a small convolution per frame. Same output as the
        # FFT path (tested); MKL FFTs of a single frame cost more than the whole rest.
        synth.noise_path = 1
    wrapper = ScriptedModel(model, cfg, streaming, steps).eval()
    for p in wrapper.parameters():
        p.requires_grad_(False)
    with quiet_jit():
        return torch.jit.script(wrapper)


def save_scripted(scripted: torch.jit.ScriptModule, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with quiet_jit():
        scripted.save(str(path))


def load_checkpoint(source: str | Path) -> dict[str, Any]:
    """Load ``RUN_DIR/checkpoint.pt`` (or a ``.pt`` path) into a dict.

    Raises
    ------
    CheckpointError
        If the path holds no checkpoint, naming what was looked for.
    """
    p = Path(source)
    ckpt = p / "checkpoint.pt" if p.is_dir() else p
    if not ckpt.is_file():
        raise CheckpointError(f"no checkpoint at {ckpt}: train first (python -m models.train)")
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
    except Exception as e:
        raise CheckpointError(f"cannot read checkpoint {ckpt}: {e}") from e
    if "model" not in state or "config" not in state:
        raise CheckpointError(f"{ckpt} is not a models.train checkpoint (no model/config)")
    return state


def model_from_checkpoint(state: dict[str, Any]) -> tuple[VAE, ModelConfig]:
    cfg = ModelConfig.from_dict(state["config"])
    model: VAE = build_model(cfg)  # type: ignore[assignment]  # or a DDSP: same interface
    model.load_state_dict(state["model"])
    return model, cfg


def load_weights(source: str | Path) -> tuple[ModelConfig, dict[str, torch.Tensor], int]:
    """Config, weights and step count of a model to fine-tune from.

    ``source`` is a run dir / checkpoint from this trainer, or an exported ``.ts`` (which
    carries its config as ``model_config_json`` and its weights under ``model.``).
    """
    p = Path(source)
    if p.suffix == ".ts":
        if not p.is_file():
            raise CheckpointError(f"no model file at {p}")
        try:
            ts = load_scripted(p)
            cfg = ModelConfig.from_json(str(ts.model_config_json))
        except (RuntimeError, AttributeError) as e:
            raise CheckpointError(
                f"{p} is not a Sillage export (no model_config_json): fine-tune from its run "
                f"directory instead ({e})"
            ) from e
        # The scripted state also holds non-persistent buffers (streaming caches, inference
        # matrices): keep only what a fresh model of this config saves.
        expected = set(build_model(cfg).state_dict())
        weights = {
            k[len("model.") :]: v.clone()
            for k, v in ts.state_dict().items()
            if k.startswith("model.") and k[len("model.") :] in expected
        }
        return cfg, weights, int(getattr(ts, "train_steps", 0))
    state = load_checkpoint(p)
    return ModelConfig.from_dict(state["config"]), state["model"], int(state.get("step", 0))


def load_vae(source: str | Path) -> tuple[VAE, ModelConfig, int]:
    """A :class:`VAE` — or, for ``family = "ddsp"``, a :class:`~models.ddsp.DDSP` with the
    same interface — (eval mode) from a run dir, checkpoint or exported ``.ts``."""
    cfg, weights, steps = load_weights(source)
    model: VAE = build_model(cfg)  # type: ignore[assignment]
    model.load_state_dict(weights)
    return model.eval(), cfg, steps


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))


def to_toml(data: dict[str, Any]) -> str:
    """Minimal TOML writer: scalars and lists at top level, one level of tables."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for k, v in data.items():
        if isinstance(v, dict):
            lines += ["", f"[{k}]"] + [f"{kk} = {_toml_value(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"


def model_card(
    cfg: ModelConfig, state: dict[str, Any], *, streaming: bool, command: str, model: VAE
) -> dict[str, Any]:
    """Everything a player or a later trainer needs to know about the exported file."""
    # The PQMF filters are fixed, not learnt: leave them out of the count.
    n_params = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("pqmf."))
    if cfg.family == "ddsp":
        encode_decode_delay = 0  # causal analysis windows, no PQMF: encode adds no delay
    elif cfg.causal:
        encode_decode_delay = model.pqmf.delay
    else:
        encode_decode_delay = -1
    card: dict[str, Any] = {
        "format": "sillage-model-card/1",
        "sample_rate": cfg.samplerate,
        "ratio": cfg.ratio,
        "latent_size": cfg.latent_size,
        "channels": cfg.channels,
        "causal": cfg.causal,
        "streaming": streaming,
        # A causal decoder answers a latent change in the same frame: no model delay.
        "model_delay_samples": 0 if cfg.causal else -1,
        "delay_samples": 0 if cfg.causal else -1,  # the key instrument.runtime reads
        "encode_decode_delay_samples": encode_decode_delay,
        "parameters": n_params,
        "steps": int(state.get("step", 0)),
        "base_steps": int(state.get("base_steps", 0)),
        "base_model": state.get("base", ""),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "torch_version": torch.__version__,
        "training_data": state.get("data_summary", {}),
        "commands": {
            "train": state.get("command", ""),
            "export": command,
        },
        "config": {k: v for k, v in cfg.to_dict().items() if k != "extra"},
    }
    latent_card: Any = getattr(model, "latent_card", None)
    if latent_card is not None:
        # DDSP family: which latent dimension is pitch / loudness, and their scales. The
        # engine reads [latent] pitch_dim, pitch_scale, pitch_ref_hz, loudness_dim,
        # loudness_ref_db, loudness_db_per_unit.
        card["family"] = cfg.family
        card["latent"] = latent_card()
        settings: Any = getattr(model, "settings", None)
        card["ddsp"] = dict(settings.to_dict())
    return card


def fit_latent_from_folder(
    model: VAE, cfg: ModelConfig, folder: str | Path, n_windows: int = 64, seed: int = 12345
) -> None:
    """Refit the exposed-latent PCA (see :meth:`VAE.fit_latent_stats`) on audio in ``folder``."""
    import numpy as np

    from models.data import AudioDataset

    data = AudioDataset.from_folder(
        folder,
        samplerate=cfg.samplerate,
        channels=cfg.channels,
        n_samples=cfg.n_samples,
        verbose=False,
    )
    x = torch.from_numpy(data.batch(np.random.default_rng(seed), n_windows))
    model.eval()
    model.fit_latent_stats(x)


def export_run(
    source: str | Path,
    out: str | Path,
    *,
    streaming: bool = False,
    command: str = "",
    latent_data: str | Path | None = None,
) -> tuple[Path, Path]:
    """Export a run dir or checkpoint to ``out`` (.ts) and ``out`` with suffix .toml.

    ``latent_data``: a folder of audio to refit the exposed-latent centre/axes on first
    (otherwise the fit saved with the checkpoint is used).

    Returns
    -------
    (ts_path, card_path)
    """
    state = load_checkpoint(source)
    model, cfg = model_from_checkpoint(state)
    if latent_data is not None:
        fit_latent_from_folder(model, cfg, latent_data)
        state.setdefault("data_summary", {})["latent_fit_folder"] = str(latent_data)
    out = Path(out)
    steps = int(state.get("step", 0)) + int(state.get("base_steps", 0))
    scripted = script_model(model, cfg, streaming=streaming, steps=steps)
    save_scripted(scripted, out)
    card = model_card(cfg, state, streaming=streaming, command=command, model=model)
    card["file_bytes"] = out.stat().st_size
    card_path = out.with_suffix(".toml")
    card_path.write_text(to_toml(card))
    return out, card_path


def rescript(source: str | Path, out: str | Path) -> Path:
    """Script an exported ``.ts`` again with this repository's code: same config, weights
    and step count (read from the file itself), streaming kept as it was. For changes that
    compute the same sound more cheaply (issue 13); no training run is needed. The card
    beside ``out`` (copied from beside ``source`` when missing) gets the new ``file_bytes``.
    """
    import tomllib

    source, out = Path(source), Path(out)
    cfg, weights, steps = load_weights(source)
    streaming = bool(load_scripted(source).streaming)
    model = build_model(cfg)
    model.load_state_dict(weights)
    save_scripted(script_model(model, cfg, streaming=streaming, steps=steps), out)  # type: ignore[arg-type]
    card_src = out.with_suffix(".toml")
    if not card_src.is_file():
        card_src = source.with_suffix(".toml")
    if card_src.is_file():
        card = tomllib.loads(card_src.read_text())
        card["file_bytes"] = out.stat().st_size
        out.with_suffix(".toml").write_text(to_toml(card))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m models.export", description="Export a run to nn~ TorchScript."
    )
    parser.add_argument("run_dir", help="run directory (or checkpoint .pt) from models.train")
    parser.add_argument("--out", required=True, help="output .ts path (card written beside)")
    parser.add_argument(
        "--streaming",
        action="store_true",
        help="keep convolution caches inside the module so consecutive decode calls "
        "continue the signal (batch 1 per loaded copy; needs a causal model)",
    )
    parser.add_argument(
        "--latent-data",
        metavar="AUDIO_DIR",
        help="refit the exposed latent (centre, PCA axes, scale) on this audio before export, "
        "e.g. the section of the corpus a piece uses; default: the fit saved in the run",
    )
    args = parser.parse_args(argv)
    command = "python -m models.export " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    try:
        ts, card = export_run(
            args.run_dir,
            args.out,
            streaming=args.streaming,
            command=command,
            latent_data=args.latent_data,
        )
    except ModelsError as e:
        parser.exit(1, f"{type(e).__name__}: {e}\n")
    print(f"wrote {ts} ({ts.stat().st_size / 1e6:.2f} MB) and {card}")


if __name__ == "__main__":
    main()
