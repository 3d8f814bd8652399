import csv
import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from heatrack.cli import main
from heatrack.data.synthetic import SyntheticConfig, render, write_sequence
from heatrack.io.cache import FrameCache
from heatrack.models.heatmap import HeatmapNetConfig
from heatrack.train.detector import (
    AugmentConfig,
    ClipDataset,
    DetectorTrainConfig,
    StillImages,
    StillImagesConfig,
    _Sequence,
    build,
    detector_loss,
    normalise,
)
from heatrack.train.engine import EngineConfig


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("det")
    for seed, name, video in [(1, "TRAIN-A", True), (2, "VAL-B", False)]:
        seq = render(SyntheticConfig(name=name, length=16, num_people=5, seed=seed))
        write_sequence(seq, root / name, video=video)
    return root


def small_config(root, tmp_path, frames=3, **engine):
    return DetectorTrainConfig(
        train_sequences=(str(root / "TRAIN-A"),),
        val_sequences=(str(root / "VAL-B"),),
        cache_dir=str(tmp_path / "cache"),
        input_size=(160, 96),
        batch_size=2,
        clips_per_epoch=4,
        model=HeatmapNetConfig(frames=frames, channels=16),
        engine=EngineConfig(
            out_dir=str(tmp_path / "run"), epochs=1, warmup_steps=1, checkpoint_every=1, **engine
        ),
    )


def test_clips_share_one_augmentation_and_targets_follow_the_boxes(synth_root, tmp_path):
    # Zoomed out so far that the frame never fills the crop: padding shows, and must sit at
    # the same pixels in every frame of the clip (one geometric transform per clip).
    cfg = dataclasses.replace(
        small_config(synth_root, tmp_path),
        augment=AugmentConfig(scale_range=(0.5, 0.5), flip=True, color=0.0, paste_prob=0.0),
    )
    seq = _Sequence(synth_root / "TRAIN-A", FrameCache(tmp_path / "c"), 960)
    ds = ClipDataset([seq], cfg, train=True, length=40, seed=0)
    grey = normalise(np.full((1, 1, 1, 3), 114.0))[0, :, 0, 0]
    for i in range(40):
        item = ds[i]
        assert item["clip"].shape == (3, 3, 96, 160)
        assert item["heatmap"].shape == (3, 24, 40) and item["mask"].shape == (3, 24, 40)
        pads = [
            torch.isclose(item["clip"][k], grey[:, None, None], atol=1e-4).all(0) for k in range(3)
        ]
        assert pads[0].any()
        assert all(torch.equal(pads[0], p) for p in pads[1:])
        # Every bump peak sits where the frame is, never in a cell that is all padding.
        peaks = item["heatmap"] == 1
        for k in range(3):
            all_pad = pads[k].reshape(24, 4, 40, 4).all(dim=3).all(dim=1)
            assert not (peaks[k] & all_pad).any()


def test_a_few_training_steps_lower_the_loss(synth_root, tmp_path):
    torch.manual_seed(0)
    cfg = small_config(synth_root, tmp_path)
    engine, _ = build(cfg)
    ds = ClipDataset(
        [_Sequence(synth_root / "TRAIN-A", FrameCache(cfg.cache_dir), 960)],
        cfg,
        train=False,
        length=2,
    )
    batch = {k: torch.stack([ds[0][k], ds[1][k]]) for k in ds[0]}
    model = engine.model
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(25):
        loss, _ = detector_loss(model, batch, torch.device("cpu"), cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], losses


def test_train_cli_writes_checkpoint_logs_plots_and_resumes(synth_root, tmp_path):
    cfg = small_config(synth_root, tmp_path)
    path = tmp_path / "det.yaml"
    path.write_text(yaml.safe_dump(_plain(dataclasses.asdict(cfg))))
    assert main(["train", "detector", "--config", str(path)]) == 0
    run = tmp_path / "run"
    for name in ("last.pt", "log.csv", "epochs.csv", "loss.png", "val_heatmap.png"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["step"] == 2 and state["epoch"] == 1
    assert main(["train", "detector", "--config", str(path), "--epochs", "2", "--resume"]) == 0
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["step"] == 4 and state["epoch"] == 2 and len(state["history"]) == 2


@pytest.mark.slow
def test_distributed_training_with_two_cpu_processes(synth_root, tmp_path):
    cfg = small_config(synth_root, tmp_path)
    path = tmp_path / "det.yaml"
    path.write_text(yaml.safe_dump(_plain(dataclasses.asdict(cfg))))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        "-m",
        "heatrack",
        "train",
        "detector",
        "--config",
        str(path),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert state["step"] == 1  # 4 clips / (batch 2 x 2 processes)


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def test_copy_paste_adds_people_with_targets(synth_root, tmp_path):
    base = small_config(synth_root, tmp_path)
    seq = _Sequence(synth_root / "TRAIN-A", FrameCache(tmp_path / "c"), 960)
    plain = dataclasses.replace(base, augment=AugmentConfig(paste_prob=0.0, color=0.0))
    pasted = dataclasses.replace(
        base, augment=AugmentConfig(paste_prob=1.0, paste_max=3, color=0.0)
    )
    a = ClipDataset([seq], plain, train=True, length=20, seed=5)
    b = ClipDataset([seq], pasted, train=True, length=20, seed=5)
    assert len(b.people) > 0
    more = sum(int(b[i]["valid"][0].sum()) - int(a[i]["valid"][0].sum()) for i in range(20))
    assert more > 10  # about two extra people a clip, less what falls outside or hides others
    item = b[0]
    assert float(item["heatmap"].max()) == pytest.approx(1.0)


def test_soft_alpha_and_paste_geometry():
    from heatrack.train.detector import _paste, _soft_alpha

    alpha = _soft_alpha((40, 20))
    assert alpha[20, 10] == pytest.approx(1.0) and alpha[0, 0] == 0.0
    img = np.zeros((50, 50, 3), np.float32)
    box = _paste(img, np.full((40, 20, 3), 200.0, np.float32), alpha, 40.0, 5.0, 1.0)
    assert box == [40, 5, 50, 45]  # clipped at the right border
    assert img[25, 45].max() > 100 and img[25, 10].max() == 0


def test_sequence_weighting_lets_small_sequences_be_seen(synth_root, tmp_path):
    cache = FrameCache(tmp_path / "c")
    big = _Sequence(synth_root / "TRAIN-A", cache, 960)
    small = _Sequence(synth_root / "VAL-B", cache, 960)
    small.labelled = small.labelled[:3]  # one clip
    base = small_config(synth_root, tmp_path)
    by_clip = ClipDataset(
        [big, small], dataclasses.replace(base, sequence_weight_power=1.0), True, 1
    )
    by_seq = ClipDataset(
        [big, small], dataclasses.replace(base, sequence_weight_power=0.0), True, 1
    )
    n = len(by_clip.starts[0][1])
    assert n > 10 and len(by_clip.starts[1][1]) == 1
    assert by_clip.sequence_probs == pytest.approx([n / (n + 1), 1 / (n + 1)])
    assert by_seq.sequence_probs == pytest.approx([0.5, 0.5])


def test_backbone_learning_rate_scale_and_init_from_weights(synth_root, tmp_path):
    cfg = small_config(synth_root, tmp_path, backbone_lr_scale=0.1)
    engine, _ = build(cfg)
    backbone = {id(p) for p in engine.model.backbone.parameters()}
    groups = engine.optimizer.param_groups
    assert [g["scale"] for g in groups] == [0.1, 1.0]
    assert {id(p) for p in groups[0]["params"]} == backbone
    engine._train_step(next(iter(engine.loader_fn(0))))
    assert groups[0]["lr"] == pytest.approx(0.1 * groups[1]["lr"])

    # --init: another run's weights, a fresh optimiser and step counter.
    first = tmp_path / "first.pt"
    torch.save({"model": engine.model.state_dict()}, first)
    other, _ = build(dataclasses.replace(cfg, engine=dataclasses.replace(cfg.engine, seed=7)))
    other.load_weights(first)
    mine, theirs = engine.model.state_dict(), other.model.state_dict()
    for a, b in zip(mine.values(), theirs.values(), strict=True):
        assert torch.equal(a, b)
    assert other.step == 0

    # A tensor of another shape (a head sized for other data) starts fresh; the rest loads.
    name = next(k for k, v in mine.items() if v.ndim == 4)
    state = dict(mine)
    state[name] = torch.zeros(3, *mine[name].shape[1:])
    torch.save({"model": state}, first)
    third, _ = build(dataclasses.replace(cfg, engine=dataclasses.replace(cfg.engine, seed=8)))
    fresh = third.model.state_dict()[name].clone()
    third.load_weights(first)
    loaded = third.model.state_dict()
    assert torch.equal(loaded[name], fresh)
    assert all(torch.equal(loaded[k], v) for k, v in mine.items() if k != name)


def _yolo_dataset(root, boxes_per_image):
    """A YOLO folder: grey images with a dark person-sized block per box; labels normalised.
    ``None`` for an image leaves its label file out, ``[]`` writes an empty one."""
    import cv2

    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i, boxes in enumerate(boxes_per_image):
        image = np.full((120, 200, 3), 160, np.uint8)
        lines = []
        for x0, y0, x1, y1 in boxes or []:
            image[y0:y1, x0:x1] = 30
            cx, cy, w, h = (x0 + x1) / 400, (y0 + y1) / 240, (x1 - x0) / 200, (y1 - y0) / 120
            lines.append(f"0 {cx} {cy} {w} {h}\n")
        cv2.imwrite(str(root / "images" / f"im{i}.png"), image)
        if boxes is not None:
            (root / "labels" / f"im{i}.txt").write_text("".join(lines))
    return root


def test_still_images_become_clips_whose_targets_follow_the_camera(tmp_path):
    root = _yolo_dataset(tmp_path / "stills", [[(40, 20, 70, 100), (120, 30, 150, 110)], [], None])
    still = StillImages(StillImagesConfig(path="stills", camera_motion=0.05), root, 960)
    assert still.labelled == [1, 2, 3] and [len(still.rows[f]) for f in (1, 2, 3)] == [2, 0, 0]
    cfg = DetectorTrainConfig(
        input_size=(160, 96),
        model=HeatmapNetConfig(frames=3, channels=16, displacement=True),
        augment=AugmentConfig(scale_range=(1.0, 1.0), flip=False, color=0.0, paste_prob=0.0),
    )
    ds = ClipDataset([still], cfg, train=True, length=30, seed=0)
    moved = 0
    for i in range(30):
        item = ds[i]
        # What a still cannot teach is masked: no displacement target anywhere in its clip.
        assert not item["linked"].any()
        n = item["valid"].sum(dim=1)
        if n.sum() == 0:  # the negative images: nothing to find, nothing ignored
            assert item["heatmap"].max() == 0 and item["mask"].min() == 1
            continue
        assert (n == 2).all()  # both people in every frame
        # The bumps follow the camera: each frame's peaks sit on the dark blocks of its image.
        for k in range(3):
            dark = item["clip"][k].mean(0) < -1.0  # the blocks, after normalisation
            cells = dark.reshape(24, 4, 40, 4).float().mean(dim=(1, 3)) > 0.5
            peaks = item["heatmap"][k] == 1
            assert peaks.sum() == 2 and (peaks & cells).sum() == 2
        first, last = item["index"][0, :2], item["index"][2, :2]
        moved += int(not torch.equal(first, last))
    assert moved > 5  # the camera did move between frames in most clips


def test_still_datasets_get_their_share_of_clips(synth_root, tmp_path):
    root = _yolo_dataset(tmp_path / "stills", [[(40, 20, 70, 100)]] * 4)
    cfg = dataclasses.replace(small_config(synth_root, tmp_path), sequences_weight=3.0)
    seq = _Sequence(synth_root / "TRAIN-A", FrameCache(tmp_path / "c"), 960)
    still = StillImages(StillImagesConfig(path="stills", weight=1.0), root, 960)
    ds = ClipDataset([seq, still], cfg, train=True, length=4, seed=0)
    np.testing.assert_allclose(ds.sequence_probs, [0.75, 0.25])


def test_train_cli_reads_yolo_folders_beside_sequences(synth_root, tmp_path, capsys):
    _yolo_dataset(tmp_path / "data" / "stills", [[(40, 20, 70, 100)], [], [(10, 10, 40, 90)]])
    cfg = dataclasses.replace(small_config(synth_root, tmp_path),
                              train_images=({"path": "stills", "weight": 0.5},))  # fmt: skip
    path = tmp_path / "det.yaml"
    path.write_text(yaml.safe_dump(_plain(dataclasses.asdict(cfg))))
    args = ["train", "detector", "--config", str(path), "--data-root", str(tmp_path / "data")]
    # The sequences are named by absolute paths; the stills under the data root.
    assert main(args) == 0
    assert (tmp_path / "run" / "last.pt").is_file()
    bad = tmp_path / "data" / "stills" / "labels" / "im0.txt"
    bad.write_text("0 0.5 0.5 0.2\n")
    assert main(args) == 2  # a malformed label line: one error naming the file and line
    assert "stills/labels/im0.txt:1: expected" in capsys.readouterr().err


def test_a_levels_model_trains_end_to_end_and_streams(synth_root, tmp_path):
    """YOLOX's head at three strides: the training loop (level targets, losses, validation
    picture, checkpoint) runs, the loss falls, and the checkpoint streams detections."""
    from heatrack.inference import Detector, InferenceConfig
    from heatrack.io.sources import MotSequenceSource
    from heatrack.models.decode import DecodeConfig

    torch.manual_seed(0)
    cfg = dataclasses.replace(
        small_config(synth_root, tmp_path),
        model=HeatmapNetConfig(frames=2, backbone="yolox_nano", head="levels"),
    )
    engine, _ = build(cfg)
    ds = ClipDataset([_Sequence(synth_root / "TRAIN-A", FrameCache(cfg.cache_dir), 960)], cfg,
                     train=False, length=2)  # fmt: skip
    item = ds[0]
    n = 12 * 20 + 6 * 10 + 3 * 5  # 96x160 at strides 8, 16, 32
    assert item["heatmap"].shape == (2, 1, n) and (item["heatmap"] == 1).any()
    batch = {k: torch.stack([ds[0][k], ds[1][k]]) for k in ds[0]}
    opt = torch.optim.AdamW(engine.model.parameters(), lr=2e-3)
    losses = []
    for _ in range(30):
        loss, _ = detector_loss(engine.model, batch, torch.device("cpu"), cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], losses
    engine.fit()
    run = tmp_path / "run"
    assert (run / "val_heatmap.png").is_file()
    config = InferenceConfig(decode=DecodeConfig(score_threshold=0.0))
    detector = Detector.from_checkpoint(run / "last.pt", config)
    out = list(detector.stream(MotSequenceSource(synth_root / "VAL-B"), keep_maps=True))
    assert len(out) == 16 and all(len(d) > 0 for _, d, _ in out)
    assert out[0][2]["heatmap"].ndim == 2


def test_distillation_keeps_a_levels_model_near_its_start(synth_root, tmp_path):
    """The distillation term is zero at the start, grows as the model moves, and training with
    it ends nearer the start's maps than the same steps without it."""
    import copy

    from heatrack.train.detector import map_distillation

    def run(distill_weight):
        torch.manual_seed(0)
        cfg = dataclasses.replace(
            small_config(synth_root, tmp_path),
            model=HeatmapNetConfig(frames=2, backbone="yolox_nano", head="levels"),
            distill_weight=distill_weight,
        )
        engine, _ = build(cfg)
        ds = ClipDataset([_Sequence(synth_root / "TRAIN-A", FrameCache(cfg.cache_dir), 960)],
                         cfg, train=False, length=2)  # fmt: skip
        batch = {k: torch.stack([ds[0][k], ds[1][k]]) for k in ds[0]}
        start = {k: v.detach() for k, v in engine.model(batch["clip"]).items()}
        people = batch["valid"].sum()
        assert float(map_distillation(start, start, people)) == pytest.approx(0.0, abs=1e-5)
        teacher = copy.deepcopy(engine.model).eval()  # as build() keeps it
        opt = torch.optim.AdamW(engine.model.parameters(), lr=2e-3)
        for _ in range(10):
            loss, parts = detector_loss(engine.model, batch, torch.device("cpu"), cfg, teacher)
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert ("distill" in parts) == bool(distill_weight)
        with torch.no_grad():
            return float(map_distillation(engine.model(batch["clip"]), start, people))

    moved_alone, moved_distilled = run(0.0), run(5.0)
    assert moved_alone > 0.1
    assert moved_distilled < 0.5 * moved_alone
    # build() wires its own frozen start into the training loop
    cfg = dataclasses.replace(
        small_config(synth_root, tmp_path / "fit"),
        model=HeatmapNetConfig(frames=2, backbone="yolox_nano", head="levels"),
        distill_weight=5.0,
    )
    engine, _ = build(cfg)
    engine.fit()
    with open(tmp_path / "fit" / "run" / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and float(rows[-1]["distill"]) > 0


@pytest.mark.realdata
def test_the_teachers_people_that_no_label_covers_become_ignore_regions(tmp_path):
    """A still of TUD-Stadtmitte with one person labelled: YOLOX-nano finds the others, they
    become ignore regions (the labelled one stays a positive), and the clip's mask says so."""
    import cv2

    from heatrack.boxes import iou_matrix
    from heatrack.io.mot import read_gt
    from heatrack.train.detector import teacher_ignores

    from .conftest import shared_data, shared_model

    seq = shared_data("MOT15", "train", "TUD-Stadtmitte")
    from heatrack.io.sources import MotSequenceSource

    _, image = next(iter(MotSequenceSource(seq)))
    gt = read_gt(seq / "gt" / "gt.txt")
    people = gt.xyxy[gt.frames == 1]
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "im0.jpg"), image)
    h, w = image.shape[:2]
    x0, y0, x1, y1 = people[0]
    label = f"0 {(x0 + x1) / 2 / w} {(y0 + y1) / 2 / h} {(x1 - x0) / w} {(y1 - y0) / h}\n"
    (tmp_path / "labels" / "im0.txt").write_text(label)
    cfg = DetectorTrainConfig(teacher_ignore=str(shared_model("yolox_nano_coco.onnx")),
                              cache_dir=str(tmp_path / "cache"), input_size=(640, 480))  # fmt: skip
    still = StillImages(StillImagesConfig(path="s"), tmp_path, 960)
    ignored = teacher_ignores(still, cfg, tmp_path / "cache")[1]
    assert len(ignored) >= 3
    assert iou_matrix(ignored, people[:1]).max() < 0.3  # the labelled person is not ignored
    assert (iou_matrix(ignored, people[1:]).max(axis=1) > 0.5).mean() >= 0.8  # the others are
    again = teacher_ignores(still, cfg, tmp_path / "cache")[1]  # from the cache
    np.testing.assert_array_equal(again, ignored)
    still.extra_ignore = {1: ignored}
    cfg = dataclasses.replace(cfg, augment=AugmentConfig(scale_range=(1.0, 1.0), flip=False,
                                                         color=0.0, paste_prob=0.0))  # fmt: skip
    item = ClipDataset([still], cfg, train=False, length=1)[0]
    cx, cy = (ignored[0, :2] + ignored[0, 2:]) / 2
    assert item["mask"][0, int(cy) // 4, int(cx) // 4] == 0
