"""Every default path of the engine, defined once.

Paths are absolute (from the repository root), so the engine works from any current folder,
except ``RECORD_DIR``, which is relative on purpose: recordings go where the performer is.
"""

from __future__ import annotations

from pathlib import Path

from models import DEFAULT_MODEL_PATH

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT / DEFAULT_MODEL_PATH
PATCH_DIR = ROOT / "patches"
DOCS_DIR = ROOT / "docs"
UI_MAIN = ROOT / "ui" / "__main__.py"
RECORD_DIR = "recordings"
DATASET_DIR = "datasets"  # relative, like RECORD_DIR: /sillage/dataset writes beside recordings
USER_MODELS_DIR = ROOT / "models" / "user"  # fine-tuned versions, NAME-vN.ts
