"""Extra rate-distortion workload for the dense-mode targets (issue 7): EfficientNet-Lite0 after
MBConv block 4, extracted like bench/activations.py extracts block 10 (same photo, same model).

    python bench/activations_extra.py      # adds effnet_b4 to bench/data/ and its manifest
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import activations  # noqa: E402


def main() -> int:
    activations.EFFNET_BLOCK = 4
    feature = activations.effnet_feature()
    ((name, x),) = [(k, v) for k, v in feature.items()]
    x = np.ascontiguousarray(x, dtype=np.float32)
    np.save(activations.DATA_DIR / "effnet_b4.npy", x)
    manifest_path = activations.DATA_DIR / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["effnet_b4"] = activations.describe(x)
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print("effnet_b4", x.shape, f"(hooked block 4; the helper named it {name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
