"""Checks bench/anomaly_nab.py against NAB's own published results.

NAB's repository keeps, per detector, each file's anomaly scores (results/<detector>/<folder>/
<detector>_<file>.csv), the corpus threshold its sweeper chose (config/thresholds.json) and
each file's standard-profile raw score at that threshold (results/<detector>/
<detector>_standard_scores.csv). This script feeds NAB's own scores of each detector to our
scorer at NAB's threshold and compares the per-file raw scores with NAB's (NAB's TP/FP columns count rows, not windows),
on the 24 files of ../shared/data/nab, and prints the score NAB's own published scores of
each detector reach on those files when swept as our bench sweeps ours (the fair yardstick
for the 24-file figure). Run: `python bench/anomaly_nab_check.py GIT_DIR`, where
GIT_DIR is a clone (or bare mirror) of github.com/numenta/NAB.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from anomaly_nab import load_corpus, normalised, raw_score, weights  # noqa: E402

DETECTORS = ("null", "random", "numenta", "contextOSE", "ARTime")


def show(git_dir: Path, path: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"HEAD:{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def main() -> None:
    git_dir = Path(sys.argv[1])
    nab = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT.parent / "shared" / "data" / "nab"
    corpus = load_corpus(nab)
    thresholds = json.loads(show(git_dir, "config/thresholds.json"))
    for det in DETECTORS:
        th = thresholds[det]["standard"]["threshold"]
        published = {
            r["File"]: r
            for r in csv.DictReader(
                io.StringIO(show(git_dir, f"results/{det}/{det}_standard_scores.csv"))
            )
        }
        worst, ours_total, theirs_total, compared = 0.0, 0.0, 0.0, 0
        own: dict[str, np.ndarray] = {}
        for f in corpus:
            if f.name not in published:
                continue
            folder, name = f.name.split("/")
            rows = list(
                csv.DictReader(io.StringIO(show(git_dir, f"results/{det}/{folder}/{det}_{name}")))
            )
            scores = np.array([float(r["anomaly_score"]) for r in rows])
            own[f.name] = scores
            ours = raw_score(f, weights(f), scores >= th)[0]
            pub = published[f.name]
            theirs = float(pub["Score"])
            worst = max(worst, abs(ours - theirs))
            ours_total, theirs_total = ours_total + ours, theirs_total + theirs
            compared += 1
        print(
            f"{det:11s} threshold {th:.4f}: raw score on the 24 files ours {ours_total:9.3f}  NAB {theirs_total:9.3f}  "
            f"largest per-file difference {worst:.4f} ({compared} files NAB lists)"
        )
        listed = [f for f in corpus if f.name in own]
        best = normalised(listed, own)
        print(
            f"{'':11s} its scores swept on these files as bench/anomaly_accuracy.py does: {best['score']:.1f}"
        )


if __name__ == "__main__":
    main()
