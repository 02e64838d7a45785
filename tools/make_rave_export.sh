#!/usr/bin/env bash
# Make a streaming TorchScript model with RAVE's own exporter (`rave export --streaming`,
# PyPI acids-rave 2.3.1), from an untrained (randomly initialised) RAVE built from one of
# RAVE's gin configs. The weights are random: it is for interface tests, not for music.
#
#   tools/make_rave_export.sh OUT.ts
#   SILLAGE_RAVE_MODEL=OUT.ts .venv/bin/python -m pytest tests/test_rave_export.py
#
# Environment (all optional):
#   RAVE_VENV     separate venv for acids-rave            (default /tmp/ravevenv)
#   RAVE_CONFIG   RAVE gin config(s), comma separated     (default v2; e.g. v2_small, v2,causal)
#   RAVE_LATENT   full latent size of the model           (default 8)
#   RAVE_DIMS     latent dims the export keeps            (default = RAVE_LATENT; a power of 2)
#   RAVE_SR       sampling rate                           (default: the config's, 44100 for v2)
#   RAVE_SEED     seed of the random weights              (default 0)
#
# acids-rave is never installed into the project's .venv: it pins pytorch-lightning 1.9 and
# scipy 1.10 and pulls a CUDA torchaudio. In its own venv:
#   - torch is held at 2.13.0 (the CPU wheel the project uses) by a constraint file;
#   - setuptools<81, because pytorch-lightning 1.9 imports pkg_resources;
#   - torchaudio's compiled extension (a CUDA build for another torch) cannot load on the
#     CPU torch and `import torchaudio` raises; RAVE only uses torchaudio's pure-Python
#     transforms (Spectrogram, MelSpectrogram), and torchaudio skips its extension when the
#     .so files are absent, so they are removed from that venv.
#
# Without training, RAVE's `fidelity` buffer (cumulated PCA variance, set at the end of
# training phase 1) is all zeros and the exporter keeps max(argmax(fidelity > .95), 1) -> 1
# latent dim. We write a fidelity curve that crosses .95 at RAVE_DIMS, with the identity PCA,
# so the export keeps RAVE_DIMS dims (decode_params[0]). With RAVE_DIMS == RAVE_LATENT the
# exporter adds no noise dims, so (with v2's noise-free decoder) decode is deterministic.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUT.ts" >&2
    exit 2
fi
OUT=$(realpath -m "$1")
VENV=${RAVE_VENV:-/tmp/ravevenv}
CONFIG=${RAVE_CONFIG:-v2}
LATENT=${RAVE_LATENT:-8}
DIMS=${RAVE_DIMS:-$LATENT}
SR=${RAVE_SR:-}
SEED=${RAVE_SEED:-0}
PY=${PYTHON:-python3}

# 1. the separate venv
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
CONSTRAINTS=$(mktemp)
WORK=$(mktemp -d)
trap 'rm -rf "$CONSTRAINTS" "$WORK"' EXIT
printf 'torch==2.13.0\nsetuptools<81\n' >"$CONSTRAINTS"
if ! "$VENV/bin/python" -c "import rave, scripts.export" >/dev/null 2>&1; then
    "$VENV/bin/pip" install -q -c "$CONSTRAINTS" torch==2.13.0
    "$VENV/bin/pip" install -q -c "$CONSTRAINTS" "setuptools<81" acids-rave==2.3.1
    SITE=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    rm -f "$SITE"/torchaudio/lib/*.so
fi
"$VENV/bin/python" -c "import torch, rave; assert torch.__version__.startswith('2.13.0'), torch.__version__"

# 2. an untrained RAVE, saved as a run folder (config.gin + a .ckpt) like `rave train` leaves
RUN="$WORK/run"
mkdir -p "$RUN/version_0/checkpoints"
RAVE_CONFIG="$CONFIG" RAVE_LATENT="$LATENT" RAVE_DIMS="$DIMS" RAVE_SR="$SR" RAVE_SEED="$SEED" \
RUN="$RUN" "$VENV/bin/python" - <<'EOF'
import math
import os

import gin
import torch

import rave

torch.manual_seed(int(os.environ["RAVE_SEED"]))
latent, dims = int(os.environ["RAVE_LATENT"]), int(os.environ["RAVE_DIMS"])
if dims < 1 or dims > latent or dims & (dims - 1):
    raise SystemExit(f"RAVE_DIMS={dims}: must be a power of 2 between 1 and RAVE_LATENT={latent}")
configs = [c if c.endswith(".gin") else c + ".gin" for c in os.environ["RAVE_CONFIG"].split(",")]
bindings = [f"LATENT_SIZE = {latent}"]
if os.environ["RAVE_SR"]:
    bindings.append(f"SAMPLING_RATE = {int(os.environ['RAVE_SR'])}")
gin.parse_config_files_and_bindings(configs, bindings)  # as `rave train --config ... --override`
model = rave.RAVE(n_channels=1)
# cumulated explained variance: <= .95 up to dim dims-1, > .95 from it on (1.0 at the end)
fid = torch.ones(latent)
for i in range(latent):
    fid[i] = min(0.9 * (i + 1) / dims, 1.0) if i < dims - 1 else (0.96 if i < latent - 1 else 1.0)
model.fidelity.copy_(fid)
run = os.environ["RUN"]
with open(os.path.join(run, "config.gin"), "w") as f:
    f.write(gin.operative_config_str())  # what scripts/train.py writes
torch.save({"state_dict": model.state_dict()},
           os.path.join(run, "version_0", "checkpoints", "untrained.ckpt"))
print(f"untrained RAVE: configs {configs}, sr {model.sr}, latent {latent}, "
      f"fidelity {[round(float(v), 3) for v in fid]}")
EOF

# 3. RAVE's own exporter, unmodified
"$VENV/bin/rave" export --run "$RUN" --streaming --name rave --output "$WORK/out"
mkdir -p "$(dirname "$OUT")"
mv "$WORK/out/rave_streaming.ts" "$OUT"
"$VENV/bin/python" - "$OUT" <<'EOF'
import sys

import torch

m = torch.jit.load(sys.argv[1])
print(f"{sys.argv[1]}: sr {int(m.sr)}, decode_params {m.decode_params.tolist()}, "
      f"encode_params {m.encode_params.tolist()}, methods {list(m.get_methods())}")
EOF
