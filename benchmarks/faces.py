"""The cheaper face detector (``face_detector`` version 2) against the current one (version 1), per frame.

    python -m benchmarks.faces [--n 40] [--seed 3] [--repeats 3]

Renders a demo corpus with :mod:`demo.synth` (its default mix: 360p-heavy, a third of the videos with faces),
samples every video's frames as the ``fast`` profile does and resizes them as the faces component does before
its request (long side 480), then runs both detectors' kernels (:func:`extraction.kernels.faces.detect_faces` with
version 1's and version 2's :class:`~extraction.kernels.faces.HaarConfig`) on every frame, one thread, in this
process. Agreement is per frame: "face present" (count > 0) and the face count equal; it is reported over all
frames and separately for the frames of face shots and of no-face shots (the generator's truth). Speed is the CPU
seconds of the whole frame set, best of ``--repeats`` passes for each detector, interleaved (CPU time, not wall: the
machine may be shared). Last line: ``faces_speedup=<x> presence_agreement=<a> count_agreement=<a>``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def detector_configs() -> dict[str, Any]:
    """version -> the HaarConfig ``face_detector`` serves with at that version (its ``model.py`` reads the same)."""
    from extraction.kernels.faces import haar_config

    return {v: haar_config(v, max_faces=16) for v in ("1", "2")}


def corpus_frames(n: int, seed: int, work: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """The corpus' frames as the faces component sends them, and per frame whether its shot shows faces."""
    import cv2

    from demo import synth
    from extraction.config import load_profile
    from extraction.decode import sample_frames

    cfg = load_profile("fast")
    s, side = cfg.sampling, int(cfg.params("faces").get("max_side", 480))
    specs = synth.generate(n, work, seed=seed, progress=False, clean=True, edge_cases=False)
    frames, truth = [], []
    for spec in specs:
        fr = sample_frames(str(work / "videos" / spec.filename), s.fps, s.max_frames, s.max_side)
        for f, t in zip(fr.rgb, fr.timestamps, strict=True):
            k = max(0, int(np.searchsorted(spec.shot_starts, int(round(float(t) * spec.fps)), side="right")) - 1)
            truth.append(bool(spec.face_shots[k]))
            sc = side / max(f.shape[:2])
            frames.append(cv2.resize(f, (round(f.shape[1] * sc), round(f.shape[0] * sc)),
                                     interpolation=cv2.INTER_AREA) if sc < 1 else f)
    return frames, np.asarray(truth)


def run_detector(cascade: Any, frames: list[np.ndarray], cfg: Any) -> tuple[float, np.ndarray]:
    """(CPU seconds, face count per frame) of one pass over ``frames``, one frame per call as in a request."""
    from extraction.kernels.faces import detect_faces

    c0 = time.process_time()
    counts = [int(detect_faces(cascade, f[None], cfg)[2][0, 0]) for f in frames]
    return time.process_time() - c0, np.asarray(counts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.faces", description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=40, help="demo videos to render")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3, help="passes per detector (best is kept)")
    args = ap.parse_args(argv)
    import cv2

    from extraction.kernels.faces import load_cascade

    cv2.setNumThreads(1)  # one stub = one request at a time; threads would only blur the CPU comparison
    work = Path(tempfile.mkdtemp(prefix="bench-faces-"))
    try:
        _log(f"rendering {args.n} demo videos into {work} ...")
        frames, truth = corpus_frames(args.n, args.seed, work)
        cfgs = detector_configs()
        cascade = load_cascade()
        best = {v: float("inf") for v in cfgs}
        counts: dict[str, np.ndarray] = {}
        for r in range(args.repeats):
            for v, cfg in cfgs.items():
                sec, counts[v] = run_detector(cascade, frames, cfg)
                best[v] = min(best[v], sec)
            _log(f"pass {r + 1}/{args.repeats}: " + ", ".join(f"v{v} {best[v]:.2f}s" for v in cfgs))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    old, new = counts["1"], counts["2"]
    presence = (old > 0) == (new > 0)
    same = old == new
    print(f"\nface detector v2 ({cfgs['2']}) vs v1 ({cfgs['1']}) on {len(frames)} frames of {args.n} demo videos "
          f"(seed {args.seed}); {int(truth.sum())} frames of face shots, {int((~truth).sum())} of no-face shots")
    print(f"{'frames':<16}{'n':>6}{'v1 present':>12}{'v2 present':>12}{'presence agr':>14}{'count agr':>11}")
    for name, m in (("face shots", truth), ("no-face shots", ~truth), ("all", np.ones_like(truth))):
        if m.any():
            print(f"{name:<16}{int(m.sum()):>6}{(old[m] > 0).mean():>12.3f}{(new[m] > 0).mean():>12.3f}"
                  f"{presence[m].mean():>14.3f}{same[m].mean():>11.3f}")
    per_frame = {v: best[v] / max(len(frames), 1) * 1000 for v in cfgs}
    print(f"CPU per frame (best of {args.repeats}, one thread): v1 {per_frame['1']:.2f} ms, v2 {per_frame['2']:.2f} ms")
    print(f"faces_speedup={best['1'] / best['2']:.2f} presence_agreement={presence.mean():.3f} "
          f"count_agreement={same.mean():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
