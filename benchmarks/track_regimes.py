"""Tracker defaults that transfer: leave one detection regime out (issue 18).

First, boxmot's ByteTrack, OC-SORT, BoT-SORT (appearance off), norfair and motpy track every
regime of ``benchmarks/regimes.py`` (TrackEval HOTA and IDF1, combined over the regime's
sequences). Then every candidate tracker config is scored the same way on every regime. For
each regime in turn, the candidate chosen on the *other* regimes is scored on the held-out
one: that is the held-out figure. The choice: the largest worst-case margin over the best peer
(the smaller of the HOTA and IDF1 margins, its minimum over the regimes used), ties broken by
the mean of (HOTA + IDF1) / 2. The config chosen on all regimes is the one to ship. Update FPS
(CPU time inside update calls, fastest of ``--repeat`` runs) is measured for the shipped choice
and every peer.

Candidates: the current ``TrackerConfig`` defaults (adaptation off and on) plus configs drawn
around them by a seeded sampler, in pools (``--pools SEED:N[:adaptive][:fps]``; the second default
pool draws only configs with score adaptation on, at high quantiles, after the first pool
had shown those to transfer best; ``raise`` pools, the ``grid`` and ``lowbirth`` use lift-only
adaptation, added after the 2026-12-04 run; ``lowbirth`` adds persistent low-score births).
Scores of
(candidate, regime) pairs and the peers' are kept in ``--out/scores.json`` and
``--out/peers.json`` as they are made, so an interrupted
run continues where it stopped (delete the file after changing the tracker).

    .venv/bin/pip install --no-deps -r benchmarks/requirements.txt   # the peers
    python benchmarks/track_regimes.py \
        --fold-detector PETS09-S2L1=runs/sources/PETS09-S2L1/last.pt \
        --fold-detector TUD-Stadtmitte=runs/sources/TUD-Stadtmitte/last.pt
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from regimes import NAMES, load_regime  # noqa: E402
from track_peers import Heatrack, peers, track_regime  # noqa: E402

from heatrack.eval.mot import COMBINED  # noqa: E402
from heatrack.io.mot import write_atomic  # noqa: E402
from heatrack.tracking.tracker import TrackerConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


#: ``TrackerConfig``'s defaults before 2026-12-06, the centre every pool draws around (so the
#: pools stay the same candidates whatever the defaults are now; today's defaults are the
#: ``lowbirth`` candidate this protocol chose on every regime).
CENTRE = TrackerConfig(
    gate_fps_power=0.0, score_adaptation=False, score_quantile=0.9, score_raise_only=False,
    low_birth_score=1.0, low_birth_hits=5, low_birth_min_speed=0.0,
)  # fmt: skip


def candidates(n: int, seed: int, kinds: tuple[str, ...] = ()) -> list[TrackerConfig]:
    """``CENTRE`` (off and on adaptation), then ``n`` seeded draws around it (thresholds
    kept consistent). Kinds: ``adaptive``, every draw with score adaptation at a high
    quantile; ``fps``, every draw also with a frame-rate gate (``gate_fps_power`` 0.5 or 1,
    on stage 1 or on every stage); ``raise``, every draw with lift-only adaptation
    (``score_raise_only``), and the defaults with it at quantile 0.9 or 0.99 and frame-rate
    power 0 or 1 first."""
    adaptive, fps, lift = "adaptive" in kinds, "fps" in kinds, "raise" in kinds
    rng = np.random.default_rng(seed)
    base = CENTRE
    out = [base, dataclasses.replace(base, score_adaptation=True)]
    if lift:
        out += [
            dataclasses.replace(base, score_adaptation=True, score_raise_only=True,
                                score_quantile=q, gate_fps_power=p)
            for q in (0.9, 0.99) for p in (0.0, 1.0)
        ]  # fmt: skip
    first = len(out)
    while len(out) < n + first:
        high = float(rng.uniform(0.3, 0.75))
        draw = dataclasses.replace(
            base,
            high_score=round(high, 3),
            low_score=round(float(rng.uniform(0.05, min(0.3, high - 0.1))), 3),
            new_track_score=round(high + float(rng.uniform(0.0, 0.15)), 3),
            match_cost=round(float(rng.uniform(0.6, 0.9)), 3),
            low_match_cost=round(float(rng.uniform(0.3, 0.6)), 3),
            tentative_match_cost=round(float(rng.uniform(0.3, 0.6)), 3),
            min_hits=int(rng.integers(1, 4)),
            max_lost_seconds=round(float(rng.uniform(1.0, 4.0)), 2),
            fuse_score=bool(rng.random() < 0.5),
            coast_frames=int(rng.integers(0, 4)),
            reupdate_points=int(rng.choice([1, 4])),
            score_adaptation=adaptive or bool(rng.random() < 0.6),
            score_quantile=float(
                rng.choice([0.95, 0.98, 0.99] if adaptive else [0.9, 0.95, 0.98, 0.99])
            ),
        )
        if lift:
            draw = dataclasses.replace(draw, score_adaptation=True, score_raise_only=True)
        if fps:  # drawn after the rest, so the other pools' draws are as before
            draw = dataclasses.replace(
                draw,
                gate_fps_power=float(rng.choice([0.5, 1.0])),
                gate_all_stages=bool(rng.random() < 0.5),
            )
        out.append(draw)
    return out


#: The defaults with lift-only adaptation (quantile 0.99) and the frame-rate gate (power 1):
#: the centre of the ``grid`` and ``lowbirth`` pools.
LIFTED = dataclasses.replace(
    CENTRE, score_adaptation=True, score_raise_only=True, score_quantile=0.99,
    gate_fps_power=1.0,
)  # fmt: skip


def grid() -> list[TrackerConfig]:
    """``LIFTED`` over the thresholds the random pools showed to trade one regime against
    another: the start score (high = new-track score - 0.05), the stage-2 gate, min_hits and
    the lost time."""
    return [
        dataclasses.replace(LIFTED, high_score=h, new_track_score=round(h + 0.05, 2),
                            low_match_cost=lm, min_hits=mh, max_lost_seconds=lost)
        for h in (0.4, 0.45, 0.5, 0.55, 0.6) for lm in (0.3, 0.5) for mh in (1, 2)
        for lost in (2.0, 3.0)
    ]  # fmt: skip


def low_birth_grid() -> list[TrackerConfig]:
    """``LIFTED`` with persistent low-score births (``low_birth_score``, ``low_birth_hits``,
    ``low_birth_min_speed``)."""
    first = [(b, n, v) for b in (0.4, 0.5) for n in (5, 8) for v in (0.0, 0.1, 0.25, 0.5)]
    # then, around the best of those (speed 0.1 at 5 hits): fewer hits, nearer speeds
    near = [(b, n, v) for b in (0.4, 0.5) for n in (3, 4) for v in (0.07, 0.1, 0.15)]
    return [
        dataclasses.replace(LIFTED, low_birth_score=b, low_birth_hits=n, low_birth_min_speed=v)
        for b, n, v in first + near
    ]


def pools(specs: list[str]) -> list[TrackerConfig]:
    """Candidates of every ``SEED:N[:KIND[:KIND]]`` pool (kinds: adaptive, fps, raise) and of
    ``grid``, duplicates once."""
    out = {}
    for spec in specs:
        if spec in ("grid", "lowbirth"):
            made = grid() if spec == "grid" else low_birth_grid()
        else:
            seed, n, *kinds = spec.split(":")
            made = candidates(int(n), int(seed), tuple(kinds))
        for c in made:
            out.setdefault(key(c), c)
    return list(out.values())


#: Fields added to ``TrackerConfig`` after scores were kept: left out of the key at their
#: default, so a kept score stays under the key it was made with.
LATER_FIELDS = {
    "score_raise_only": False,
    "low_birth_score": 1.0,
    "low_birth_hits": 5,
    "low_birth_min_speed": 0.0,
}


def key(config: TrackerConfig) -> str:
    fields = dataclasses.asdict(config)
    for name, default in LATER_FIELDS.items():
        if fields[name] == default:
            del fields[name]
    text = json.dumps(fields, sort_keys=True, default=float)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def score(adapter, seqs, repeat: int = 1) -> dict:
    metrics, seconds, frames = track_regime(adapter, seqs, repeat)
    c = metrics[COMBINED]
    return {
        "HOTA": c["HOTA"], "IDF1": c["IDF1"], "DetA": c["DetA"], "AssA": c["AssA"],
        "MOTA": c["MOTA"], "IDSW": int(c["IDSW"]), "fps": frames / seconds if seconds else 0.0,
    }  # fmt: skip


def objective(s: dict) -> float:
    return (s["HOTA"] + s["IDF1"]) / 2


def margin(ours: dict, peer_scores: dict[str, dict]) -> float:
    """How far ``ours`` is ahead of the best peer, in the worse of HOTA and IDF1."""
    return min(ours[m] - max(p[m] for p in peer_scores.values()) for m in ("HOTA", "IDF1"))


def choose(scores, names: list[str], regimes: list[str], peer_scores=None) -> str:
    """The candidate whose worst margin over the best peer on ``regimes`` is largest (ties:
    mean objective); without peers, the best mean objective."""

    def mean(k):
        return float(np.mean([objective(scores[k][r]) for r in regimes]))

    if not peer_scores:
        return max(names, key=mean)
    return max(
        names, key=lambda k: (min(margin(scores[k][r], peer_scores[r]) for r in regimes), mean(k))
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--regimes", nargs="+", default=list(NAMES))
    ap.add_argument(
        "--pools", nargs="+", default=["0:24", "1:30:adaptive"], metavar="SEED:N[:KIND]",
        help="candidate pools: N seeded draws each (kinds: adaptive, score adaptation always "
        "on; fps, a frame-rate gate)",
    )  # fmt: skip
    ap.add_argument("--repeat", type=int, default=3, help="timing runs per sequence")
    ap.add_argument("--fold-detector", action="append", default=[], metavar="SEQ=CHECKPOINT")
    ap.add_argument("--cache", type=Path, default=ROOT / "outputs" / "regimes")
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "track_regimes")
    ap.add_argument("--no-peers", action="store_true", help="only the candidates")
    args = ap.parse_args()
    if len(set(args.regimes)) < 2:
        ap.error("leaving one regime out needs at least two regimes")
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("boxmot").setLevel(logging.ERROR)
    folds = dict(item.split("=", 1) for item in args.fold_detector)
    data = {name: load_regime(name, args.cache, folds) for name in args.regimes}

    args.out.mkdir(parents=True, exist_ok=True)
    peer_scores: dict[str, dict[str, dict]] = {}
    peer_store = args.out / "peers.json"
    if not args.no_peers:  # first: the choice below is made against them
        peer_scores = json.loads(peer_store.read_text()) if peer_store.is_file() else {}
        for name, seqs in data.items():
            for adapter in peers():
                if adapter.name not in peer_scores.get(name, {}):
                    result = score(adapter, seqs, args.repeat)
                    peer_scores.setdefault(name, {})[adapter.name] = result
                    write_atomic(peer_store, json.dumps(peer_scores, indent=1, default=float))
                print(f"  {name} {adapter.name} done", file=sys.stderr, flush=True)
        peer_scores = {name: peer_scores[name] for name in data}
    store = args.out / "scores.json"
    saved = json.loads(store.read_text()) if store.is_file() else {}
    configs = {key(c): c for c in pools(args.pools)}
    for i, (k, config) in enumerate(configs.items()):
        entry = saved.setdefault(k, {"config": dataclasses.asdict(config), "scores": {}})
        for name, seqs in data.items():
            if name not in entry["scores"]:
                entry["scores"][name] = score(Heatrack(config), seqs)
                write_atomic(store, json.dumps(saved, indent=1, default=float))
        print(
            f"candidate {i + 1}/{len(configs)} {k}: mean objective "
            f"{np.mean([objective(entry['scores'][r]) for r in data]):.2f}",
            file=sys.stderr, flush=True,
        )  # fmt: skip
    scores = {k: saved[k]["scores"] for k in configs}
    names, regimes = list(configs), list(data)
    shipped = choose(scores, names, regimes, peer_scores)
    held = {r: choose(scores, names, [o for o in regimes if o != r], peer_scores) for r in regimes}
    ours_speed = {}
    if not args.no_peers:  # the shipped choice timed like the peers
        for name, seqs in data.items():
            ours_speed[name] = score(Heatrack(configs[shipped]), seqs, args.repeat)["fps"]

    lines = [
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}; {len(configs)} candidates (pools {args.pools}); "
        f"shipped choice {shipped}",
        "",
        "| held-out regime | chosen without it | heatrack HOTA | heatrack IDF1 | best peer HOTA "
        "| best peer IDF1 | shipped choice HOTA / IDF1 (not held out) | speed-up vs fastest peer |",
        "|---|---|---:|---:|---|---|---:|---:|",
    ]
    for r in regimes:
        ours = scores[held[r]][r]
        cells = [r, held[r], f"{ours['HOTA']:.2f}", f"{ours['IDF1']:.2f}"]
        if r in peer_scores:
            p = peer_scores[r]
            bh = max(p, key=lambda n: p[n]["HOTA"])
            bi = max(p, key=lambda n: p[n]["IDF1"])
            fastest = max(p[n]["fps"] for n in p)
            cells += [f"{p[bh]['HOTA']:.2f} ({bh})", f"{p[bi]['IDF1']:.2f} ({bi})"]
            speed = f"{ours_speed[r] / fastest:.1f}x"
        else:
            cells += ["-", "-"]
            speed = "-"
        s = scores[shipped][r]
        cells += [f"{s['HOTA']:.2f} / {s['IDF1']:.2f}", speed]
        lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines))
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
        "shipped": {"key": shipped, "config": dataclasses.asdict(configs[shipped])},
        "held_out_choice": held,
        "candidates": {k: saved[k] for k in configs},
        "peers": peer_scores,
        "heatrack_fps": ours_speed,
        "table": "\n".join(lines),
    }
    write_atomic(args.out / "result.json", json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
