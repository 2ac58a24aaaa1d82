"""Record in a model folder the fingerprints of the films it learnt from, for a model trained before
they were recorded (``mammo.data.image_fingerprints``; see mammo/fingerprint.py).

    python scripts/record_fingerprints.py --model mammo/weights/v3 --data ../shared/data/mias1024

The model's ``config.json`` lists the pixel hashes of its training and validation films
(``mammo.data.image_sha256``). Every film under ``--data`` (imagefolders, as the model was trained on)
whose pixels are one of those is fingerprinted, and the fingerprints are written into the config,
sorted. Nothing is written unless every recorded film is found: a model whose films are not all
here keeps its config as it was (the app then recognises only the very pixels of its films). So it
is for models trained on imagefolders, as the packaged ones are: a version retrained in the app also
learnt submitted cases, which no imagefolder holds (a retrain made since records the fingerprints
itself).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mammo.data import film_identities, folder_examples  # noqa: E402
from mammo.errors import said_in_one_line  # noqa: E402
from mammo.imaging import MIN_SIDE  # noqa: E402
from mammo.model import read_config  # noqa: E402


def record_fingerprints(model: Path, data: list[Path]) -> int:
    """Write the fingerprints of ``model``'s recorded films found under ``data``; how many. ValueError
    (nothing written) when the model records no films or some are not under ``data``."""
    config = read_config(model)
    mammo = config["mammo"]
    recorded = set((mammo.get("data") or {}).get("image_sha256") or ())
    if not recorded:
        raise ValueError(f"{model} records no training films (mammo.data.image_sha256)")
    min_side = int((mammo.get("preprocess") or {}).get("min_side", MIN_SIDE))
    examples = [e for folder in data for e in folder_examples(folder)]
    found = {identity.sha256: identity.fingerprint for identity in film_identities(examples, min_side)
             if identity.sha256 in recorded}
    if len(found) < len(recorded):
        raise ValueError(f"{len(recorded) - len(found)} of the {len(recorded)} films {model} learnt from are "
                         f"not under {', '.join(map(str, data))}: nothing written")
    mammo["data"]["image_fingerprints"] = sorted(set(found.values()))
    (model / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return len(found)


@said_in_one_line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a model folder (config.json)")
    parser.add_argument("--data", type=Path, nargs="+", required=True, help="the imagefolders it learnt from")
    args = parser.parse_args(argv)
    count = record_fingerprints(args.model, args.data)
    print(f"{args.model}: the fingerprints of its {count} films recorded")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
