"""``heatrack report``: one self-contained HTML page about a set of tracking results.

Everything is inline (CSS, SVG charts, JPEG thumbnails as data URIs): the page can be mailed
or attached to an issue and opens anywhere, offline. Sections: the metrics table, HOTA / DetA
/ AssA bars, a timeline of identity switches and fragmentations per sequence (hover a mark for
its frame and ids), track-length histograms, and thumbnails of the longest identities.
"""

from __future__ import annotations

import base64
import html
import os

import cv2
import numpy as np

from heatrack.eval.events import identity_events
from heatrack.eval.mot import COMBINED, FIELDS, SequenceData, evaluate, load_sequences
from heatrack.io.render import colour_for

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em}td,th{padding:3px 7px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
tr.combined{font-weight:bold;border-top:2px solid #999}
.thumbs{display:flex;flex-wrap:wrap;gap:10px}.id{border:1px solid #ddd;padding:4px}
.id img{height:96px;margin-right:2px}.muted{color:#777;font-size:.85em}
"""


def build_report(
    gt_root: str | os.PathLike,
    results_dir: str | os.PathLike,
    videos: dict[str, str | os.PathLike] | None = None,
    title: str = "heatrack report",
    thumbnails: int = 6,
) -> str:
    """The HTML text. ``videos`` maps sequence names to frame sources for thumbnails
    (default: the gt sequence folder itself, when it holds images or a video)."""
    from heatrack.eval.mot import find_gt_sequences

    sequences = load_sequences(gt_root, results_dir)
    metrics = evaluate(sequences)
    folders = find_gt_sequences(gt_root)
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p class=muted>Ground truth {html.escape(str(gt_root))}; results "
        f"{html.escape(str(results_dir))}; scored by TrackEval (HOTA, CLEAR, Identity).</p>",
        "<h2>Metrics</h2>",
        _metrics_table(metrics),
        "<h2>HOTA, DetA, AssA</h2>",
        _bars(metrics),
        "<h2>Identity switches and fragmentations</h2>",
        "<p class=muted>Red: identity switch; orange: fragmentation (a person tracked again "
        "after a gap). Hover a mark for the frame and the ids.</p>",
    ]
    for s in sequences:
        parts.append(_timeline(s))
    parts.append("<h2>Track lengths</h2>")
    parts.append("<div class=thumbs>" + "".join(_histogram(s) for s in sequences) + "</div>")
    parts.append("<h2>Identities</h2>")
    for s in sequences:
        source = (videos or {}).get(s.name, folders.get(s.name))
        parts.append(_thumbnails(s, source, thumbnails))
    body = "\n".join(parts)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def _metrics_table(metrics: dict[str, dict]) -> str:
    head = "<tr><th>sequence</th>" + "".join(f"<th>{f}</th>" for f in FIELDS) + "</tr>"
    rows = []
    for name, vals in metrics.items():
        cls = " class=combined" if name == COMBINED else ""
        cells = "".join(
            f"<td>{vals[f]:.2f}</td>" if isinstance(vals[f], float) else f"<td>{vals[f]}</td>"
            for f in FIELDS
        )
        rows.append(f"<tr{cls}><td>{html.escape(name)}</td>{cells}</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _bars(metrics: dict[str, dict]) -> str:
    names = list(metrics)
    keys = ("HOTA", "DetA", "AssA")
    colours = ("#3b6fb6", "#e08a2c", "#3a9a5b")
    group, bar, height, left = 3 * 22 + 18, 22, 200, 40
    width = max(left + group * len(names) + 10, left + 3 * 70 + 50)
    out = [f'<svg width="{width}" height="{height + 60}" role="img" aria-label="bar chart">']
    for y in range(0, 101, 25):
        py = 10 + height * (1 - y / 100)
        out.append(f'<line x1="{left}" x2="{width}" y1="{py}" y2="{py}" stroke="#eee"/>')
        out.append(f'<text x="{left - 4}" y="{py + 4}" font-size="10" text-anchor="end">{y}</text>')
    for i, name in enumerate(names):
        x0 = left + i * group + 6
        for k, (key, colour) in enumerate(zip(keys, colours, strict=True)):
            v = float(metrics[name][key])
            h = height * max(0.0, min(v, 100.0)) / 100
            out.append(
                f'<rect x="{x0 + k * bar}" y="{10 + height - h}" width="{bar - 3}" height="{h}" '
                f'fill="{colour}"><title>{html.escape(name)} {key} {v:.2f}</title></rect>'
            )
        label = html.escape(name[:14])
        out.append(
            f'<text x="{x0 + 1.5 * bar}" y="{height + 26}" font-size="10" '
            f'text-anchor="middle">{label}</text>'
        )
    for k, (key, colour) in enumerate(zip(keys, colours, strict=True)):
        out.append(
            f'<rect x="{left + k * 70}" y="{height + 40}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{left + k * 70 + 14}" y="{height + 49}" font-size="11">{key}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _timeline(s: SequenceData) -> str:
    events = identity_events(s.gt, s.results)
    width, left, height = 1000, 10, 50
    length = max(s.length, 1)
    switches = sum(e.kind == "switch" for e in events)
    frags = len(events) - switches
    out = [
        f"<h3>{html.escape(s.name)}: {switches} switches, {frags} fragmentations</h3>",
        f'<svg width="{width + 2 * left}" height="{height + 20}" role="img" '
        f'aria-label="timeline of identity events">',
        f'<line x1="{left}" x2="{left + width}" y1="{height / 2}" y2="{height / 2}" '
        'stroke="#999"/>',
    ]
    for e in events:
        x = left + width * (e.frame - 1) / length
        y, colour = (12, "#d62728") if e.kind == "switch" else (height - 12, "#ff9f1c")
        tip = (
            f"frame {e.frame}: {e.kind} of person {e.gt_id}, track {e.previous_track_id} "
            f"-> {e.track_id}"
        )
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y - 8}" y2="{y + 8}" stroke="{colour}" '
            f'stroke-width="2"><title>{html.escape(tip)}</title></line>'
        )
    for frac in (0, 0.25, 0.5, 0.75, 1):
        x = left + width * frac
        frame = 1 + round(frac * (length - 1))
        out.append(f'<text x="{x}" y="{height + 15}" font-size="10" text-anchor="middle">'
                   f"{frame}</text>")  # fmt: skip
    out.append("</svg>")
    return "".join(out)


def _histogram(s: SequenceData, bins: int = 12) -> str:
    _, lengths = np.unique(s.results.ids, return_counts=True)
    width, height = 320, 150
    out = [
        f"<div class=id><b>{html.escape(s.name)}</b> ({len(lengths)} tracks)<br>",
        f'<svg width="{width}" height="{height + 20}" role="img" aria-label="histogram">',
    ]
    if len(lengths):
        counts, edges = np.histogram(lengths, bins=bins)
        top = max(int(counts.max()), 1)
        bw = width / bins
        for i, c in enumerate(counts):
            h = (height - 10) * c / top
            tip = f"{c} tracks of {edges[i]:.0f}-{edges[i + 1]:.0f} frames"
            out.append(
                f'<rect x="{i * bw + 1:.1f}" y="{height - h:.1f}" width="{bw - 2:.1f}" '
                f'height="{h:.1f}" fill="#3b6fb6"><title>{tip}</title></rect>'
            )
        out.append(f'<text x="0" y="{height + 15}" font-size="10">{edges[0]:.0f}</text>')
        out.append(f'<text x="{width}" y="{height + 15}" font-size="10" text-anchor="end">'
                   f"{edges[-1]:.0f} frames</text>")  # fmt: skip
    out.append("</svg></div>")
    return "".join(out)


def _thumbnails(s: SequenceData, source, count: int, per_id: int = 4) -> str:
    title = f"<h3>{html.escape(s.name)}</h3>"
    if source is None:
        return title + "<p class=muted>No frames given for thumbnails (--video).</p>"
    ids, lengths = np.unique(s.results.ids, return_counts=True)
    chosen = ids[np.argsort(-lengths, kind="stable")[:count]]
    wanted: dict[int, list[tuple[int, np.ndarray]]] = {}
    for tid in chosen:
        rows = s.results[s.results.ids == tid]
        picks = np.linspace(0, len(rows) - 1, min(per_id, len(rows))).round().astype(int)
        for k in picks:
            wanted.setdefault(int(rows.frames[k]), []).append((int(tid), rows.xyxy[k]))
    crops: dict[int, list[str]] = {int(t): [] for t in chosen}
    try:
        from heatrack.io.sources import open_source

        for frame, image in open_source(source):
            for tid, box in wanted.get(frame, []):
                crops[tid].append(_jpeg_crop(image, box))
            if frame >= max(wanted, default=0):
                break
    except (OSError, RuntimeError, ValueError) as exc:
        return title + f"<p class=muted>Frames unavailable: {html.escape(str(exc))}</p>"
    cards = []
    for tid in chosen:
        r, g, b = colour_for(int(tid))[::-1]
        imgs = "".join(
            f'<img alt="track {tid}" src="data:image/jpeg;base64,{c}">' for c in crops[int(tid)]
        )
        n = int(lengths[ids == tid][0])
        cards.append(
            f'<div class=id style="border-color:rgb({r},{g},{b})"><b>id {tid}</b> '
            f"({n} frames)<br>{imgs}</div>"
        )
    return title + "<div class=thumbs>" + "".join(cards) + "</div>"


def _jpeg_crop(image: np.ndarray, box: np.ndarray, height: int = 96) -> str:
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    x0, y0 = int(max(0, np.floor(x0))), int(max(0, np.floor(y0)))
    x1, y1 = int(min(w, np.ceil(x1))), int(min(h, np.ceil(y1)))
    crop = image[y0:y1, x0:x1]
    if crop.size == 0:
        crop = np.zeros((height, height // 2, 3), np.uint8)
    scale = height / crop.shape[0]
    crop = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), height))
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return base64.b64encode(buf.tobytes()).decode("ascii") if ok else ""
