"""models/nn.py: the one reader of the nn~ contract and the model card, including the optional
[latent] table that names the pitch and loudness dimensions."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest

from models.nn import ContractError, LatentCard, card_latent, read_card

LATENT_CARD = """\
delay_samples = 0

[latent]
pitch_dim = 0
pitch_scale = 2.0
loudness_dim = 1
loudness_ref_db = -20.0
loudness_db_per_unit = 6
"""


def test_old_cards_have_no_latent_table(tmp_path: Path) -> None:
    model = tmp_path / "old.ts"
    model.with_suffix(".toml").write_text("delay_samples = 512\n")
    card = read_card(model)
    assert card == {"delay_samples": 512}
    assert card_latent(card, latent_size=8) == LatentCard()
    assert all(v is None for v in vars(LatentCard()).values())


def test_latent_table_is_read_with_defaults(tmp_path: Path) -> None:
    model = tmp_path / "new.ts"
    model.with_suffix(".toml").write_text(LATENT_CARD)
    latent = card_latent(read_card(model), latent_size=4)
    assert latent == LatentCard(
        pitch_dim=0,
        pitch_scale=2.0,
        pitch_ref_hz=440.0,  # the default
        loudness_dim=1,
        loudness_ref_db=-20.0,
        loudness_db_per_unit=6.0,
    )
    assert isinstance(latent.loudness_db_per_unit, float)
    assert latent.to_table()["pitch_ref_hz"] == 440.0 and LatentCard().to_table() == {}
    assert latent.pitch_to_latent(880.0) == pytest.approx(2.0)  # one octave up, 2 units/octave
    assert latent.latent_to_pitch(-2.0) == pytest.approx(220.0)
    assert math.isclose(latent.latent_to_pitch(latent.pitch_to_latent(330.0)), 330.0)


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ({"pitch_dim": 4}, r"pitch_dim = 4 must be a dimension 0..3"),
        ({"pitch_dim": 1.5}, "pitch_dim"),
        ({"pitch_scale": "12"}, "pitch_scale"),
        ({"pitch_ref_hz": 0.0}, "pitch_ref_hz"),
        ({"timbre_dims": [1, 7]}, "timbre_dims"),
    ],
)
def test_bad_latent_tables_name_the_key(table: dict, match: str) -> None:
    with pytest.raises(ContractError, match=match):
        card_latent({"latent": table}, latent_size=4)


def test_extra_keys_are_kept_out_of_the_way() -> None:
    # DDSP exports write timbre_dims and a loudness_definition note into [latent]
    table = {"pitch_dim": 0, "timbre_dims": [2, 3], "loudness_definition": "RMS dBFS"}
    latent = card_latent({"latent": table}, latent_size=4)
    assert latent.timbre_dims == (2, 3)
    assert latent.to_table() == {"pitch_dim": 0, "pitch_ref_hz": 440.0, "timbre_dims": [2, 3]}


def test_runtime_and_snapshot_carry_the_latent_table(mono_model: Path, tmp_path: Path) -> None:
    from instrument.engine.runtime import ModelRuntime
    from instrument.errors import ModelError

    plain = ModelRuntime(mono_model)
    assert plain.info.latent == LatentCard()

    copy = tmp_path / "withlatent.ts"
    shutil.copy(mono_model, copy)
    copy.with_suffix(".toml").write_text(LATENT_CARD)
    info = ModelRuntime(copy).info
    assert info.latent.pitch_dim == 0 and info.latent.pitch_scale == 2.0
    assert info.delay_samples == 0

    copy.with_suffix(".toml").write_text("[latent]\npitch_dim = 99\n")
    with pytest.raises(ModelError, match="pitch_dim = 99"):
        ModelRuntime(copy)
