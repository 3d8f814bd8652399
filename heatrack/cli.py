"""The ``heatrack`` command line; the only module that parses argv."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

import numpy as np

from heatrack import __version__


def _cmd_eval(args: argparse.Namespace) -> int:
    from heatrack.eval.mot import evaluate, format_table, load_sequences
    from heatrack.io.mot import write_atomic

    sequences = load_sequences(args.gt, args.results, args.seqs)
    metrics = evaluate(sequences, benchmark=args.benchmark)
    if not args.quiet:
        print(format_table(metrics))
    if args.json:
        payload = {"gt": str(args.gt), "results": str(args.results), "metrics": metrics}
        write_atomic(args.json, json.dumps(payload, indent=2) + "\n")
        if not args.quiet:
            print(f"metrics written to {args.json}")
    return 0


def _cmd_track(args: argparse.Namespace) -> int:
    from heatrack.config import load_config
    from heatrack.io.mot import write_results
    from heatrack.models.onnx import usable_backend
    from heatrack.pipeline import detections_file, find_sequence_folders, track_public_detections
    from heatrack.tracking.tracker import TrackerConfig

    args.backend = usable_backend(args.backend)  # once, for the detector and the embedder
    if args.detections is None:
        return _track_videos(args)
    config = load_config(TrackerConfig, args.config, section="tracker")
    if args.camera_motion:
        config = dataclasses.replace(config, camera_motion=True)
    embedder = _embedder_for(args)
    if embedder is not None and not args.config:  # its distance scale, its thresholds
        config = dataclasses.replace(config, **embedder.meta.get("tracker", {}))
    folders = find_sequence_folders(args.source)
    for folder in folders:
        det_path = detections_file(args.detections, folder.name, many=len(folders) > 1)
        name, rows = track_public_detections(
            folder,
            det_path,
            config,
            interpolate_gap=args.interpolate,
            smooth_sigma=args.smooth,
            embedder=embedder,
        )
        out = args.output / f"{name}.txt"
        write_results(out, rows.frames, rows.ids, rows.xywh, rows.conf)
        print(f"{name}: {len(np.unique(rows.ids))} tracks, {len(rows)} boxes -> {out}")
    return 0


def _embedder_for(args: argparse.Namespace):
    if not args.reid or args.reid == "none":
        return None
    from heatrack.models.reid import load_embedder

    weights = None if args.reid == "shipped" else args.reid
    return load_embedder(weights, backend=args.backend)


def _models_for(args: argparse.Namespace):
    from heatrack.run import Models

    return Models(
        checkpoint=str(args.checkpoint) if args.checkpoint else None,
        input_long_side=args.input_long_side,
        extra_long_sides=None if args.extra_long_sides is None else tuple(args.extra_long_sides),
        extra_min_height=args.extra_min_height,
        extra_score_scale=args.extra_score_scale,
        use_links=not args.no_links,
        backend=args.backend,
        reid=str(args.reid or "shipped"),
        config=str(args.config) if args.config else None,
        camera_motion=args.camera_motion,
        threads=args.threads,
    )


def _track_videos(args: argparse.Namespace) -> int:
    """The main job: detector + embedder + tracker on every source given."""
    from heatrack.run import TrackOptions

    models = _models_for(args)
    options = TrackOptions(
        resume=args.resume, save_every=args.save_every, render=args.render, heatmaps=args.heatmaps
    )
    if args.workers:
        from heatrack.archive import find_archive, track_archive

        items = find_archive(args.source, exclude=args.output)
        results = track_archive(
            items, args.output, models, options, workers=args.workers,
            address=args.ray_address, chunk_frames=args.chunk_frames,
            chunk_overlap=args.chunk_overlap,
        )  # fmt: skip
        failed = [r for r in results if r.status == "failed"]
        print(
            f"{len(results) - len(failed)} of {len(results)} sources tracked into "
            f"{args.output} (summary: {args.output / 'summary.csv'})"
        )
        for r in failed:
            print(f"FAILED {r.name}: {r.error}", file=sys.stderr)
        return 1 if failed else 0
    if args.chunk_frames:
        raise SystemExit("--chunk-frames splits videos across workers: give --workers too")
    return _track_sequentially(args, models, options)


def _track_sequentially(args: argparse.Namespace, models, options) -> int:
    from tqdm import tqdm

    from heatrack.archive import find_archive
    from heatrack.io.sources import SourceError, open_source
    from heatrack.run import track_source

    loaded = models.load()
    path = Path(args.source)
    many = path.is_dir() and not (path / "seqinfo.ini").is_file() and not _is_image_folder(path)
    many = many or (path.is_file() and path.suffix.lower() in (".txt", ".list"))
    items = find_archive(path, exclude=args.output) if many else [(None, args.source)]
    failed = []
    for key, spec in items:
        try:
            source = open_source(spec)
        except (SourceError, ValueError, OSError) as exc:
            if not many:
                raise
            failed.append(key)  # one corrupt video never ends the run over the others
            print(f"{key}: FAILED {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        name = key or source.name
        bar = tqdm(
            total=source.length,
            unit="frame",
            desc=name,
            smoothing=0.1,
            mininterval=0.2 if sys.stderr.isatty() else 10.0,  # logs: a line every 10 s
        )

        def progress(index, fps, tracks, bar=bar):
            bar.update(index - bar.n)
            bar.set_postfix(fps=f"{fps:.1f}", tracks=tracks, refresh=False)

        try:
            result = track_source(source, loaded, args.output, options, name, progress)
        finally:
            bar.close()
        skipped = f"; {result.undecodable} undecodable frames skipped" if result.undecodable else ""
        files = "".join(f"\n  {k + ':':9} {v}" for k, v in result.files.items())
        print(
            f"{name}: {result.tracks} tracks in {result.frames} frames "
            f"({result.fps:.1f} fps){skipped}{files}"
        )
    if failed:
        print(f"{len(failed)} of {len(items)} sources failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def _is_image_folder(path: Path) -> bool:
    from heatrack.io.sources import IMAGE_EXTS

    return any(p.suffix.lower() in IMAGE_EXTS for p in path.iterdir())


def _cmd_detect(args: argparse.Namespace) -> int:
    from heatrack.inference import InferenceConfig, load_detector
    from heatrack.io.sources import open_source
    from heatrack.models.onnx import usable_backend

    config = InferenceConfig(
        extra_min_height=args.extra_min_height, extra_score_scale=args.extra_score_scale
    ).sized(args.input_long_side, args.extra_long_sides)
    config = dataclasses.replace(
        config, decode=dataclasses.replace(config.decode, score_threshold=args.score_threshold)
    )
    detector = load_detector(args.checkpoint, config, backend=usable_backend(args.backend))
    source = open_source(args.source)
    per_frame = [(index, dets) for index, dets, _ in detector.stream(source)]
    out = args.output / f"{source.name}.txt"
    _write_detections(out, per_frame)
    n = sum(len(d) for _, d in per_frame)
    print(
        f"{source.name}: {n} detections in {len(per_frame)} frames -> {out}"
        + (f"; {len(source.skipped)} undecodable frames skipped" if source.skipped else "")
    )
    return 0


def _cmd_pseudo_label(args: argparse.Namespace) -> int:
    from heatrack.inference import Detector, InferenceConfig
    from heatrack.io.mot import SeqInfo, read_detections
    from heatrack.io.sources import VideoSource
    from heatrack.models.yolox import YoloxPeople, is_yolox
    from heatrack.pipeline import detections_by_frame
    from heatrack.train.pseudo import (
        Ensemble,
        PseudoLabelConfig,
        pseudo_label,
        write_pseudo_sequence,
    )

    cfg = PseudoLabelConfig(
        min_track_seconds=args.min_track_seconds, min_peak_score=args.min_peak_score
    )
    inference = InferenceConfig().sized(args.input_long_side)
    inference = dataclasses.replace(
        inference,
        decode=dataclasses.replace(inference.decode, score_threshold=cfg.ignore_score),
    )
    members = [
        YoloxPeople(c, score_threshold=cfg.ignore_score)
        if is_yolox(c)
        else Detector.from_checkpoint(c, inference)
        for c in args.checkpoint
    ]
    detector = members[0] if len(members) == 1 else Ensemble(members)
    for video in args.videos:
        source = VideoSource(video)
        raw = Path(args.output) / source.name / "det" / "det.txt"
        if args.reuse_detections and raw.is_file():  # relabel without running the network
            per_frame = list(detections_by_frame(read_detections(raw), source.length or 0))
        else:
            per_frame = [(index, dets) for index, dets, _ in detector.stream(source)]
            _write_detections(raw, per_frame)
        seen = [index for index, _ in per_frame]
        rows = pseudo_label(per_frame, source.fps or 30.0, source.size, cfg)
        info = SeqInfo(
            name=source.name,
            length=max(seen, default=0),
            width=source.size[0],
            height=source.size[1],
            frame_rate=source.fps or 30.0,
        )
        folder = write_pseudo_sequence(args.output, video, info, rows)
        people = rows.pedestrian_mask()
        print(
            f"{source.name}: {int(people.sum())} pseudo-pedestrian boxes in "
            f"{len(set(rows.ids[people].tolist()))} tracks, {int((~people).sum())} ignore "
            f"regions, {len(seen)} frames -> {folder}"
        )
    return 0


def _write_detections(path: Path, per_frame) -> None:
    from heatrack.io.mot import write_results
    from heatrack.pipeline import frames_to_rows

    rows = frames_to_rows(per_frame)
    write_results(path, rows.frames, rows.ids, rows.xywh, rows.conf)


def _cmd_export(args: argparse.Namespace) -> int:
    from heatrack.models.weights import export_weights, shipped_weights

    meta = json.loads(args.meta) if args.meta else {}
    if args.int8 and (args.format, args.model) != ("onnx", "embedder"):
        raise ValueError("--int8 applies to --format onnx --model embedder")
    if args.format == "onnx":
        from heatrack.inference import Detector
        from heatrack.models.onnx import export_detector, export_embedder
        from heatrack.models.reid import Embedder

        weights = args.checkpoint or shipped_weights(args.model)
        if args.model == "detector":
            det = Detector.from_checkpoint(weights)
            files = export_detector(det.model, args.output, {**det.meta, **meta})
        else:
            emb = Embedder.from_checkpoint(weights)
            files = export_embedder(emb, args.output, {**emb.meta, **meta})
            if args.int8:
                files = _quantize_export(args, emb.config.input_size)
        print("\n".join(str(f) for f in files))
        return 0
    if args.checkpoint is None:
        raise ValueError("--format torch needs --checkpoint (a training run's last.pt)")
    record = export_weights(args.checkpoint, args.output, {"model": args.model, **meta})
    print(f"{args.output}: {record['bytes'] / 1e6:.2f} MB, sha256 {record['sha256'][:16]}...")
    return 0


def _quantize_export(args: argparse.Namespace, input_size) -> list:
    """The float export just written, replaced by its int8 version calibrated on people from
    ``--calibration``."""
    from heatrack.data.reid import sample_crops
    from heatrack.io.cache import FrameCache
    from heatrack.models.onnx import quantize_embedder

    if not args.calibration:
        raise ValueError("--int8 needs --calibration: people to calibrate the int8 ranges on")
    cache = FrameCache(args.cache_dir)
    crops = sample_crops(args.calibration, input_size, args.calibration_crops, cache)
    source = ", ".join(Path(p).name for p in args.calibration)
    return quantize_embedder(args.output.with_suffix(".json"), args.output, crops, source)


def _cmd_convert_checkpoint(args: argparse.Namespace) -> int:
    from heatrack.models.weights import convert_checkpoint

    convert_checkpoint(args.old, args.new)
    print(f"{args.new}: plain data (tensors, numbers, strings); loads without unpickling code")
    return 0


def _cmd_eval_det(args: argparse.Namespace) -> int:
    from heatrack.eval.detection import APConfig, evaluate_detections
    from heatrack.eval.mot import find_gt_sequences
    from heatrack.io.mot import read_detections, read_gt, write_atomic

    cfg = APConfig(min_visibility=args.min_visibility)
    gt_dirs = find_gt_sequences(args.gt)
    names = args.seqs or [n for n in gt_dirs if (args.detections / f"{n}.txt").is_file()]
    if not names:
        raise FileNotFoundError(f"{args.detections}: no <seq>.txt for sequences of {args.gt}")
    results = {}
    for name in names:
        if name not in gt_dirs:
            raise FileNotFoundError(f"{args.gt}: no ground truth for sequence {name!r}")
        dets = read_detections(args.detections / f"{name}.txt")
        results[name] = evaluate_detections(read_gt(gt_dirs[name] / "gt" / "gt.txt"), dets, cfg=cfg)
        r = results[name]
        print(f"{name:24s} AP50 {r['AP50']:.3f}  gt {r['gt']:6d}  detections {r['detections']:6d}")
    if args.json:
        write_atomic(args.json, json.dumps(results, indent=2) + "\n")
    return 0


def _train_config(config_type, args: argparse.Namespace, held_out_field: str):
    """Load a training YAML and apply the command-line overrides shared by every model."""
    from heatrack.config import load_config

    cfg = load_config(config_type, args.config, overrides=tuple(args.set or ()))
    engine = cfg.engine
    if args.out_dir:
        engine = dataclasses.replace(engine, out_dir=str(args.out_dir))
    if args.epochs:
        engine = dataclasses.replace(engine, epochs=args.epochs)
    cfg = dataclasses.replace(cfg, engine=engine)
    if args.train_sequences:
        cfg = dataclasses.replace(cfg, train_sequences=tuple(args.train_sequences))
    if args.held_out is not None:
        cfg = dataclasses.replace(cfg, **{held_out_field: tuple(args.held_out)})
    if not cfg.train_sequences and not getattr(cfg, "train_folders", ()):
        raise ValueError(f"{args.config}: nothing to train on (train_sequences is empty)")
    return cfg


def _fit(engine, args: argparse.Namespace) -> int:
    """--resume or --init, then train; shared by every model."""
    resumed = args.resume and engine.resume(args.resume if isinstance(args.resume, Path) else None)
    if resumed:
        print(f"resumed from step {engine.step} (epoch {engine.epoch})")
    elif args.init:
        engine.load_weights(args.init)
        print(f"starting from the weights of {args.init}")
    engine.fit()
    if engine.is_main:
        print(f"checkpoint, logs and plots in {engine.out_dir}")
    return 0


def _cmd_train_detector(args: argparse.Namespace) -> int:
    from heatrack.train.detector import DetectorTrainConfig, build

    cfg = _train_config(DetectorTrainConfig, args, "val_sequences")
    engine, split = build(cfg, args.data_root)
    if engine.is_main:
        print(f"train on {', '.join(split['train'])}; validate on {', '.join(split['val']) or '-'}")
    return _fit(engine, args)


def _cmd_train_reid(args: argparse.Namespace) -> int:
    from heatrack.train.reid import ReidTrainConfig, build

    cfg = _train_config(ReidTrainConfig, args, "test_sequences")
    engine, info = build(cfg, args.data_root)
    if engine.is_main:
        print(
            f"train: {info['train_identities']} identities, {info['train_crops']} crops; "
            f"held out: {info['test_identities']} identities, {info['test_crops']} crops"
        )
    return _fit(engine, args)


def _reid_crops(args: argparse.Namespace, input_height: int = 0):
    """Crops of the given sequences, stored large enough for an ``input_height`` network
    (never smaller than the training crops), so that no model sees them upsampled."""
    from heatrack.data.reid import CropConfig, collect_crops
    from heatrack.io.cache import FrameCache
    from heatrack.models.reid import EmbedderConfig

    margin = CropConfig.stored_size[0] / EmbedderConfig.input_size[0]  # stored : input
    height = max(CropConfig.stored_size[0], round(margin * input_height))
    cfg = CropConfig(
        min_height=args.min_height,
        min_visibility=args.min_visibility,
        every=args.every,
        stored_size=(height, height // 2),
    )
    return collect_crops(args.sequences, FrameCache(args.cache_dir), cfg)


def _cmd_reid_data(args: argparse.Namespace) -> int:
    from heatrack.data.reid import export_market1501, split_identities

    crops = _reid_crops(args)
    train, test = split_identities(
        crops, test_sequences=args.test_sequences or (), test_fraction=args.test_fraction
    )
    out = export_market1501(train, test, args.output, query_per_id=args.query_per_id)
    print(
        f"{len(train)} train crops of {train.num_identities} identities, {len(test)} test crops "
        f"of {test.num_identities} identities -> {out}"
    )
    return 0


def _cmd_eval_reid(args: argparse.Namespace) -> int:
    from heatrack.data.reid import EVAL_VIEW, central_view
    from heatrack.eval.reid import ReidEvalConfig, evaluate_embeddings
    from heatrack.io.mot import write_atomic
    from heatrack.models.reid import load_embedder

    model = load_embedder(args.checkpoint)
    crops = _reid_crops(args, model.config.input_size[0])
    emb = model.embed_crops(central_view(crops.images, EVAL_VIEW, model.config.input_size))
    res = evaluate_embeddings(emb, crops, ReidEvalConfig(window_seconds=args.window_seconds))
    print(
        f"{crops.num_identities} identities, {len(crops)} crops of "
        f"{', '.join(crops.sequence_names)}; same-id crops within {args.window_seconds:g} s "
        "of a query are not in its gallery"
    )
    for mode, m in res.items():
        print(
            f"{mode + '-query':13s} rank-1 {m['rank1']:.3f}  rank-5 {m['rank5']:.3f}  "
            f"rank-10 {m['rank10']:.3f}  mAP {m['mAP']:.3f}  ({m['queries']} queries)"
        )
    if args.json:
        write_atomic(args.json, json.dumps(res, indent=2) + "\n")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from heatrack.io.mot import write_atomic
    from heatrack.report import build_report

    videos = {}
    for item in args.video or []:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = Path(item).stem, item
        videos[name] = path
    write_atomic(args.output, build_report(args.gt, args.results, videos, args.title))
    print(f"report: {args.output}")
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from heatrack.data.synthetic import SyntheticConfig, render, write_sequence

    cfg = SyntheticConfig(
        name=args.name,
        length=args.frames,
        num_people=args.people,
        seed=args.seed,
        camera_jitter=args.camera_jitter,
        width=args.width,
        height=args.height,
    )
    folder = write_sequence(render(cfg), Path(args.output) / cfg.name, video=args.video)
    print(f"wrote {folder}")
    return 0


def _add_train_arguments(t, config_name: str, held_out_flag: str, held_out_help: str) -> None:
    t.add_argument("--config", required=True, type=Path, help=f"YAML of {config_name}")
    t.add_argument(
        "--data-root",
        type=Path,
        help="folder the config's sequence paths are relative to (default: as written)",
    )
    t.add_argument("--out-dir", type=Path, help="run folder (overrides engine.out_dir)")
    t.add_argument("--epochs", type=int, help="override engine.epochs")
    t.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override any config field, dotted, value read as YAML (e.g. model.frames=1); "
        "repeatable",
    )
    t.add_argument("--train-sequences", nargs="+", metavar="SEQ", help="override train_sequences")
    t.add_argument(
        held_out_flag, dest="held_out", nargs="*", metavar="SEQ", help=f"override {held_out_help}"
    )
    t.add_argument(
        "--init",
        type=Path,
        help="start from these model weights (e.g. a self-training round); ignored when "
        "--resume finds a checkpoint",
    )
    t.add_argument(
        "--resume",
        nargs="?",
        const=True,
        type=Path,
        default=None,
        help="continue from the run folder's last.pt, or from the given checkpoint",
    )


def _add_crop_arguments(p) -> None:
    p.add_argument("sequences", nargs="+", type=Path, help="MOTChallenge sequence folders")
    p.add_argument("--min-height", type=float, default=50.0)
    p.add_argument("--min-visibility", type=float, default=0.6)
    p.add_argument("--every", type=int, default=1, help="keep one frame in this many")
    p.add_argument("--cache-dir", type=Path, default=Path("cache/frames"))


def _add_extra_long_sides(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--extra-long-sides",
        type=int,
        nargs="*",
        default=None,
        metavar="N",
        help="multi-scale: also run the detector at these long sides and merge the boxes by NMS, "
        "for every frame (none given: one pass). 320 beside 512 finds people that fill the "
        "frame, at about 1.4 times the network cost (default: InferenceConfig's passes, "
        "which large frames have of their own)",
    )
    p.add_argument(
        "--extra-min-height",
        type=float,
        default=0.0,  # InferenceConfig.extra_min_height
        metavar="PX",
        help="an extra pass keeps only people at least this tall in its own input (default "
        "%(default)s: all)",
    )
    p.add_argument(
        "--extra-score-scale",
        type=float,
        default=1.0,  # InferenceConfig.extra_score_scale
        metavar="F",
        help="an extra pass's scores are multiplied by this before the merge, so the first "
        "pass wins where both find a person (default %(default)s)",
    )


def _add_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        choices=["torch", "onnxruntime"],
        default="onnxruntime",
        help="run the models on ONNX Runtime (default: faster than torch on a CPU, about 1.2x; "
        "exported on first use and cached in $HEATRACK_CACHE or ~/.cache/heatrack; falls back "
        "to torch where that cannot be written) or on torch",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="heatrack", description="Find and follow every pedestrian in a video."
    )
    parser.add_argument("--version", action="version", version=f"heatrack {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "eval",
        help="score tracker results against ground truth (HOTA, MOTA, IDF1 via TrackEval)",
        description="Score MOTChallenge result files <RESULTS>/<seq>.txt against "
        "<GT>/<seq>/gt/gt.txt with TrackEval, per sequence and combined. Works on "
        "img1/ and video-backed sequences and on MOT15 gt; no seqmap files needed.",
    )
    p.add_argument(
        "--gt",
        required=True,
        type=Path,
        help="ground-truth root (folders <seq>/gt/gt.txt) or one sequence folder",
    )
    p.add_argument("--results", required=True, type=Path, help="folder of <seq>.txt result files")
    p.add_argument("--seqs", nargs="+", help="only these sequences (default: all with results)")
    p.add_argument(
        "--benchmark",
        choices=["MOT15", "MOT17", "MOT20"],
        help="preprocessing to apply (default: from the gt format)",
    )
    p.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser(
        "track",
        help="track every pedestrian in a video, folder, sequence, camera or stream",
        description="With no --detections: run the shipped detector, embedder and tracker on "
        "SOURCE (video file, image folder, MOT sequence folder or a root of them, camera index, "
        "URL) and write <OUTPUT>/<name>.txt (MOTChallenge, grows frame by frame; valid after "
        "Ctrl-C; --resume continues), <name>.csv, and with --render / --heatmaps MP4 videos. "
        "With --detections: public-detection mode, tracking given MOTChallenge detections.",
    )
    p.add_argument("source", help="video, image folder, sequence folder or root, camera, URL")
    p.add_argument(
        "--detections",
        type=Path,
        help="public-detection mode: det.txt for one sequence, or a folder of <seq>.txt or "
        "<seq>/det/det.txt",
    )
    p.add_argument("--output", type=Path, default=Path("outputs"), help="results folder")
    p.add_argument("--checkpoint", type=Path, help="detector weights (default: shipped)")
    p.add_argument(
        "--input-long-side",
        type=int,
        default=None,
        help="the detector sees every frame resized so its longer side is this (default: "
        "InferenceConfig's, 512, with large frames read larger); 1024 finds the small people "
        "of 1080p video better, with four times the pixels to process",
    )
    _add_extra_long_sides(p)
    _add_backend(p)
    p.add_argument(
        "--render",
        action="store_true",
        help="write an annotated MP4 (with a linking detector: motion arrows too)",
    )
    p.add_argument(
        "--heatmaps",
        action="store_true",
        help="write an MP4 of the heatmaps (with a linking detector: every detection's arrow)",
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="threads of the detector and embedder (default: every core; with --workers: "
        "the cores shared out between the workers)",
    )
    scale = p.add_argument_group(
        "archives on Ray (pip install 'heatrack[ray]')",
        "SOURCE a folder (every video and MOT sequence under it) or a list file of paths, "
        "tracked by N workers that each load the models once. Finished sources are skipped "
        "on a rerun, unfinished ones resumed, a dead worker's source retried; "
        "OUTPUT/summary.csv has a row per source and the exit code is 1 if any failed.",
    )
    scale.add_argument("--workers", type=int, default=0, metavar="N", help="parallel workers")
    scale.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="join this Ray cluster (`ray start --head` prints it) instead of starting one here",
    )
    scale.add_argument(
        "--chunk-frames",
        type=int,
        default=0,
        metavar="K",
        help="split videos longer than K frames into overlapping chunks tracked by different "
        "workers, identities stitched across each overlap",
    )
    scale.add_argument(
        "--chunk-overlap",
        type=int,
        metavar="FRAMES",
        help="frames each chunk shares with the next (default: 2 seconds of video)",
    )
    p.add_argument(
        "--save-every",
        type=int,
        default=50,
        metavar="FRAMES",
        help="save the resumable state every this many frames (and on Ctrl-C)",
    )
    p.add_argument(
        "--config",
        type=Path,
        help="YAML with a 'tracker:' section of TrackerConfig keys (default: built-in)",
    )
    p.add_argument(
        "--camera-motion",
        action="store_true",
        help="compensate camera motion estimated from the frames (reads images)",
    )
    p.add_argument(
        "--no-links",
        action="store_true",
        help="track without the detector's links in time (its displacement head and linker are "
        "skipped), keeping every other setting: what the links buy, on your video",
    )
    p.add_argument(
        "--reid",
        default=None,
        metavar="WEIGHTS",
        help="appearance: 'shipped', weights of an embedder, or 'none'. Default: shipped when "
        "tracking videos, none in public-detection mode",
    )
    p.add_argument(
        "--interpolate",
        type=int,
        default=0,
        metavar="FRAMES",
        help="offline: fill gaps of up to FRAMES frames inside tracks (0: off)",
    )
    p.add_argument(
        "--smooth",
        type=float,
        default=0.0,
        metavar="SIGMA",
        help="offline: Gaussian smoothing of interpolated tracks, in frames",
    )
    p.set_defaults(func=_cmd_track)

    p = sub.add_parser(
        "detect",
        help="run a trained heatmap detector on any source; write MOTChallenge detections",
        description="Stream SOURCE (video, image folder, MOT sequence, camera, URL) through the "
        "T-frame detector (each frame encoded once, maps averaged over windows) and write "
        "<OUTPUT>/<seq>.txt in det.txt format.",
    )
    p.add_argument("source", help="video, image folder, MOT sequence folder, camera index or URL")
    p.add_argument(
        "--checkpoint",
        type=Path,
        help="weights: a training last.pt or an exported model (default: the shipped model)",
    )
    p.add_argument("--output", required=True, type=Path, help="folder for <seq>.txt")
    p.add_argument(
        "--input-long-side",
        type=int,
        default=None,
        help="every frame is resized so its longer side is this (default: as `track`)",
    )
    _add_extra_long_sides(p)
    p.add_argument("--score-threshold", type=float, default=0.3)
    _add_backend(p)
    p.set_defaults(func=_cmd_detect)

    p = sub.add_parser(
        "eval-det",
        help="detection AP at IoU 0.5 against ground truth, ignore regions honoured",
        description="AP50 of <DETECTIONS>/<seq>.txt against <GT>/<seq>/gt/gt.txt. Distractor "
        "classes and pedestrians less visible than --min-visibility are ignore regions.",
    )
    p.add_argument("--gt", required=True, type=Path, help="gt root or one sequence folder")
    p.add_argument("--detections", required=True, type=Path, help="folder of <seq>.txt")
    p.add_argument("--seqs", nargs="+")
    p.add_argument("--min-visibility", type=float, default=0.25)
    p.add_argument("--json", type=Path)
    p.set_defaults(func=_cmd_eval_det)

    p = sub.add_parser(
        "pseudo-label",
        help="label unlabelled videos with a trained detector, for self-training",
        description="Detect and track people in each video; tracks that persist become "
        "pseudo ground truth and uncertain detections ignore regions. Writes a video-backed "
        "MOTChallenge folder OUTPUT/<name> per video, ready for train_sequences.",
    )
    p.add_argument("videos", nargs="+", type=Path)
    p.add_argument(
        "--checkpoint",
        required=True,
        type=Path,
        nargs="+",
        help="the teacher: heatrack detector weights, or a COCO YOLOX .onnx export (its person "
        "class); several make an ensemble whose members must agree",
    )
    p.add_argument("--output", required=True, type=Path)
    p.add_argument("--input-long-side", type=int, default=512, help="heatrack teachers' input size")
    p.add_argument("--min-track-seconds", type=float, default=0.5)
    p.add_argument("--min-peak-score", type=float, default=0.4)
    p.add_argument(
        "--reuse-detections",
        action="store_true",
        help="relabel from the detections saved in OUTPUT/<name>/det/det.txt by an earlier run",
    )
    p.set_defaults(func=_cmd_pseudo_label)

    p = sub.add_parser(
        "convert-checkpoint",
        help="rewrite an older heatrack checkpoint (with numpy numbers in it) as plain data",
        description="heatrack loads weights with torch.load(weights_only=True): a file holding "
        "Python objects is refused, because unpickling them could run code. Checkpoints of older "
        "heatrack versions hold numpy numbers; this reads them allowing numpy's data types "
        "only (anything else is still refused) and writes NEW as tensors, numbers and strings.",
    )
    p.add_argument("old", type=Path)
    p.add_argument("new", type=Path)
    p.set_defaults(func=_cmd_convert_checkpoint)

    p = sub.add_parser(
        "export",
        help="export weights: torch (for shipping, with checksum) or ONNX",
        description="--format torch keeps only what inference needs from a training checkpoint: "
        "OUTPUT (.pt) and OUTPUT.json with its SHA-256 and --meta. --format onnx writes the "
        "detector as OUTPUT.encoder.onnx + OUTPUT.head.onnx (per-frame encoder and window "
        "head, for streaming; plus OUTPUT.pair.onnx, the frame-pair displacement head, for a "
        "detector that links frames) or the embedder as OUTPUT.onnx, each with OUTPUT.json.",
    )
    p.add_argument("--model", choices=["detector", "embedder"], default="detector")
    p.add_argument("--checkpoint", type=Path, help="weights (default for onnx: the shipped)")
    p.add_argument("--format", choices=["torch", "onnx"], default="torch")
    p.add_argument("--output", required=True, type=Path)
    p.add_argument("--meta", help="JSON object recorded beside the weights")
    p.add_argument(
        "--int8", action="store_true",
        help="embedder only: quantise the ONNX export to int8 (about twice as fast on CPUs "
        "with VNNI), calibrated on the people of --calibration",
    )  # fmt: skip
    p.add_argument(
        "--calibration", nargs="+", type=Path, metavar="PATH",
        help="MOT sequence folders (ground-truth boxes) or identity folders (Market-1501 / "
        "CUHK naming) whose people set the int8 ranges",
    )  # fmt: skip
    p.add_argument("--calibration-crops", type=int, default=256, metavar="N")
    p.add_argument("--cache-dir", type=Path, default=Path("cache/frames"))
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser(
        "train",
        help="train a model (detector, reid)",
        description="Train a model; launch under torchrun for DistributedDataParallel.",
    )
    train_sub = p.add_subparsers(dest="model", required=True, metavar="MODEL")
    t = train_sub.add_parser(
        "detector",
        help="train the multi-frame heatmap detector",
        description="Train HeatmapNet on MOTChallenge sequences listed in the config (img1/ or "
        "video-backed). Writes last.pt, log.csv, tensorboard/, loss.png and val_heatmap.png to "
        "the run folder; --resume continues from last.pt.",
    )
    _add_train_arguments(t, "DetectorTrainConfig", "--val-sequences", "validation sequences")
    t.set_defaults(func=_cmd_train_detector)
    t = train_sub.add_parser(
        "reid",
        help="train the appearance embedder (triplet + identity loss on gt crops)",
        description="Train the Embedder on person crops cut from MOTChallenge ground truth: "
        "P x K batches, batch-hard triplet loss plus identity cross-entropy. CMC and mAP on "
        "held-out identities after every epoch; same outputs and --resume as the detector.",
    )
    _add_train_arguments(t, "ReidTrainConfig", "--test-sequences", "held-out sequences")
    t.set_defaults(func=_cmd_train_reid)

    p = sub.add_parser(
        "reid-data",
        help="export person crops from MOT ground truth as Market-1501 folders",
        description="Cut pedestrian crops (filtered by height and visibility, every k frames) "
        "from MOTChallenge sequences into bounding_box_train/, query/ and bounding_box_test/ "
        "with identity-disjoint splits, for heatrack or any other ReID tool.",
    )
    _add_crop_arguments(p)
    held = p.add_mutually_exclusive_group(required=True)
    held.add_argument("--test-sequences", nargs="+", help="held-out sequence names")
    held.add_argument("--test-fraction", type=float, help="fraction of identities held out")
    p.add_argument("--query-per-id", type=int, default=1)
    p.add_argument("--output", required=True, type=Path)
    p.set_defaults(func=_cmd_reid_data)

    p = sub.add_parser(
        "eval-reid",
        help="CMC rank-1/5/10 and mAP of an embedder on the identities of given sequences",
        description="Every crop is a query; its gallery is every other crop except the same "
        "identity within --window-seconds (near-duplicates). Single- and multi-query (the "
        "query's tracklet averaged).",
    )
    _add_crop_arguments(p)
    p.add_argument(
        "--checkpoint",
        help="embedder weights (default: the shipped one); 'imagenet' for raw ImageNet features",
    )
    p.add_argument("--window-seconds", type=float, default=1.0)
    p.add_argument("--json", type=Path)
    p.set_defaults(func=_cmd_eval_reid)

    p = sub.add_parser(
        "report",
        help="write one self-contained HTML page about tracking results",
        description="Metrics table, HOTA/DetA/AssA charts, a timeline of identity switches and "
        "fragmentations, track-length histograms and thumbnails of the longest identities, in "
        "one offline HTML file.",
    )
    p.add_argument("--gt", required=True, type=Path, help="gt root or one sequence folder")
    p.add_argument("--results", required=True, type=Path, help="folder of <seq>.txt")
    p.add_argument(
        "--video",
        nargs="+",
        metavar="[SEQ=]PATH",
        help="frames for thumbnails (default: the gt sequence folders)",
    )
    p.add_argument("--output", type=Path, default=Path("report.html"))
    p.add_argument("--title", default="heatrack report")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser(
        "synth",
        help="render a synthetic pedestrian sequence with exact ground truth",
        description="Write a MOTChallenge sequence folder (seqinfo.ini, gt/gt.txt, img1/ or a "
        "video) of drawn pedestrians with occlusions, entries, exits and scale changes.",
    )
    p.add_argument("output", type=Path, help="parent folder; the sequence goes in OUTPUT/NAME")
    p.add_argument("--name", default="SYNTH-01")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--people", type=int, default=6)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--camera-jitter", type=float, default=0.0, help="camera shake, pixels/frame")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--video", action="store_true", help="write a video instead of img1/")
    p.set_defaults(func=_cmd_synth)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        # Bad input: one clear line naming the file, line or frame, no traceback.
        print(f"heatrack {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
