"""Re-identification: crops, sampler, triplet loss, CMC/mAP, embedder and training."""

import numpy as np
import pytest
import torch

from heatrack.data.reid import (
    CropConfig,
    Crops,
    PKSampler,
    collect_crops,
    export_market1501,
    split_identities,
)
from heatrack.data.synthetic import SyntheticConfig, render, write_sequence
from heatrack.eval.reid import ReidEvalConfig, cmc_map, evaluate_embeddings, near_duplicates
from heatrack.io.cache import FrameCache
from heatrack.models.losses import batch_hard_triplet
from heatrack.models.reid import Embedder, EmbedderConfig


@pytest.fixture(scope="module")
def synth_crops(tmp_path_factory):
    root = tmp_path_factory.mktemp("reid")
    folders = []
    for seed, video in [(3, True), (4, False)]:
        seq = render(SyntheticConfig(name=f"S{seed}", length=30, num_people=6, seed=seed))
        folders.append(write_sequence(seq, root / f"S{seed}", video=video))
    cfg = CropConfig(min_height=20, min_visibility=0.6, stored_size=(72, 36))
    return collect_crops(folders, FrameCache(root / "cache"), cfg)


def test_crops_are_pedestrians_with_identities_per_sequence(synth_crops):
    c = synth_crops
    assert len(c) > 100 and c.images.shape[1:] == (72, 36, 3) and c.images.dtype == np.uint8
    assert c.sequence_names == ["S3", "S4"]
    # Identities are (sequence, gt id) pairs: the same gt id in two sequences is two people.
    rows = zip(c.sequences, c.track_ids, c.labels, strict=True)
    pairs = {(int(s), int(t)): int(lab) for s, t, lab in rows}
    assert len(set(pairs.values())) == len(pairs) == c.num_identities
    assert set(np.unique(c.frames)) <= set(range(1, 31))


def test_crop_filters_height_visibility_and_every_k(tmp_path):
    seq = render(SyntheticConfig(name="F", length=12, num_people=5, seed=3))
    folder = write_sequence(seq, tmp_path / "F")
    cache = FrameCache(tmp_path / "cache")
    gt = seq.gt
    kept = (gt.visibility >= 0.6) & (gt.xywh[:, 3] >= 20)
    every1 = collect_crops([folder], cache, CropConfig(min_height=20, stored_size=(32, 16)))
    assert len(every1) == int(kept.sum())  # exactly the gt rows that pass both filters
    taller = collect_crops([folder], cache, CropConfig(min_height=10_000, stored_size=(32, 16)))
    assert len(taller) == 0
    every3 = collect_crops(
        [folder], cache, CropConfig(min_height=20, every=3, stored_size=(32, 16))
    )
    frames = sorted(set(every3.frames.tolist()))
    assert frames == sorted(set(gt.frames[kept].tolist()))[::3]


def test_split_identities_is_disjoint_within_and_across_sequences(synth_crops):
    train, test = split_identities(synth_crops, test_fraction=0.5, seed=1)
    assert len(train) + len(test) == len(synth_crops)

    def key(c):
        return {(int(s), int(t)) for s, t in zip(c.sequences, c.track_ids, strict=True)}

    assert not key(train) & key(test)
    assert set(train.labels.tolist()) == set(range(train.num_identities))  # renumbered
    train, test = split_identities(synth_crops, test_sequences=["S4"])
    assert set(test.sequences.tolist()) == {1} and set(train.sequences.tolist()) == {0}
    with pytest.raises(ValueError, match="not among"):
        split_identities(synth_crops, test_sequences=["nope"])


def test_pk_sampler_gives_p_identities_times_k_crops():
    labels = np.array([0] * 10 + [1] * 2 + [2] * 5 + [3] * 7)
    sampler = PKSampler(labels, p=3, k=4, batches=20, seed=0)
    batches = list(sampler)
    assert len(batches) == 20
    for batch in batches:
        ids = labels[batch]
        assert len(batch) == 12
        uniq, counts = np.unique(ids, return_counts=True)
        assert len(uniq) == 3 and np.all(counts == 4)
    sampler.set_epoch(1)
    assert list(sampler) != batches
    with pytest.raises(ValueError, match="only 4 exist"):
        PKSampler(labels, p=5, k=2, batches=1)


def _brute_triplet(f, y, margin):
    losses = []
    for a in range(len(y)):
        pos = [torch.dist(f[a], f[p]) for p in range(len(y)) if p != a and y[p] == y[a]]
        neg = [torch.dist(f[a], f[n]) for n in range(len(y)) if y[n] != y[a]]
        if pos and neg:
            losses.append(torch.relu(max(pos) - min(neg) + margin))
    return torch.stack(losses).mean()


def test_batch_hard_triplet_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(12, 5, generator=g)
    y = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4])  # id 4 has no positive
    for margin in (0.3, 1.0, 5.0):
        assert batch_hard_triplet(f, y, margin).item() == pytest.approx(
            _brute_triplet(f, y, margin).item(), rel=1e-5
        )
    f.requires_grad_(True)
    batch_hard_triplet(f, y, 0.3).backward()
    assert torch.isfinite(f.grad).all()  # distances clamp away from sqrt(0)


def test_cmc_and_map_on_hand_made_distances():
    # Query 0 (id A): gallery by distance is B, A, A -> first hit at rank 2,
    # AP = (1/2 + 2/3) / 2. Query 1 (id B): B first -> rank 1, AP = 1.
    dist = np.array([[0.1, 0.2, 0.3], [0.1, 0.5, 0.6]])
    gallery = np.array(["B", "A", "A"])
    out = cmc_map(dist, np.array(["A", "B"]), gallery, ranks=(1, 2))
    assert out["rank1"] == pytest.approx(0.5) and out["rank2"] == pytest.approx(1.0)
    assert out["mAP"] == pytest.approx(((1 / 2 + 2 / 3) / 2 + 1.0) / 2)
    # Excluding the only true match skips the query, it does not count as a miss.
    allowed = np.array([[True, True, True], [False, True, True]])
    out = cmc_map(dist, np.array(["A", "B"]), gallery, allowed, ranks=(1,))
    assert out["queries"] == 1 and out["skipped_queries"] == 1 and out["rank1"] == 0.0


def _toy_crops(labels, frames, seqs=None, fps=10.0):
    n = len(labels)
    return Crops(
        np.zeros((n, 8, 4, 3), np.uint8),
        np.asarray(labels),
        np.zeros(n, np.int64) if seqs is None else np.asarray(seqs),
        np.asarray(frames),
        np.asarray(labels),
        np.full(n, fps),
        ["S"],
    )


def test_near_duplicates_within_the_window_are_left_out():
    crops = _toy_crops([0, 0, 0, 1], [1, 5, 30, 5])
    near = near_duplicates(crops, window_seconds=1.0)  # 10 frames at 10 fps
    assert near[0].tolist() == [True, True, False, False]
    assert near[3].tolist() == [False, False, False, True]
    # Embeddings: id 0 at frames 1 and 5 identical, frame 30 different; a perfect embedding
    # for the far crop still scores because the near-duplicate is not the answer.
    emb = np.array([[1, 0], [1, 0], [0.8, 0.6], [0, 1]], float)
    res = evaluate_embeddings(emb, crops, ReidEvalConfig(window_seconds=1.0, ranks=(1,)))
    assert res["single"]["queries"] == 3  # id 1 has no match outside its window
    assert res["single"]["rank1"] == pytest.approx(1.0)
    assert res["multi"]["rank1"] == pytest.approx(1.0)


def test_embedder_embeds_boxes_of_a_frame_as_unit_vectors():
    model = Embedder(EmbedderConfig(dim=16), pretrained=False).eval()
    frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    boxes = np.array([[10, 10, 40, 90], [100, -5, 170, 130]], float)  # one leaves the frame
    emb = model.embed(frame, boxes)
    assert emb.shape == (2, 16) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    assert model.embed(frame, np.zeros((0, 4))).shape == (0, 16)


def test_part_pooling_averages_each_stripe_and_feeds_the_embedding():
    from heatrack.models.reid import pool_parts

    maps = torch.arange(2 * 3 * 5 * 2, dtype=torch.float32).reshape(2, 3, 5, 2)
    pooled = pool_parts(maps, 2)
    assert pooled.shape == (2, 9)
    torch.testing.assert_close(pooled[:, :3], maps.mean(dim=(2, 3)))
    torch.testing.assert_close(pooled[:, 3:6], maps[:, :, :2].mean(dim=(2, 3)))  # rows 0-1
    torch.testing.assert_close(pooled[:, 6:], maps[:, :, 2:].mean(dim=(2, 3)))  # rows 2-4
    assert pool_parts(maps[:, :, :1], 3).shape == (2, 12)  # more stripes than rows: no NaN
    assert torch.isfinite(pool_parts(maps[:, :, :1], 3)).all()

    torch.manual_seed(0)
    model = Embedder(EmbedderConfig(dim=16, parts=2)).eval()  # ImageNet features
    crops = np.zeros((2, 128, 64, 3), np.uint8)
    crops[0, :64, :, 2] = crops[1, 64:, :, 2] = 255  # red shirt, dark trousers ...
    crops[0, 64:, :, 0] = crops[1, :64, :, 0] = 120  # ... and the same colours swapped
    emb = model.embed_crops(crops)
    assert emb.shape == (2, 16)
    assert float(emb[0] @ emb[1]) < 0.999


def test_a_few_training_steps_lower_the_loss(synth_crops, tmp_path):
    from heatrack.train.reid import CropDataset, ReidTrainConfig, reid_loss

    torch.manual_seed(0)
    cfg = ReidTrainConfig(model=EmbedderConfig(dim=32, input_size=(64, 32)), p=4, k=4)
    train = synth_crops
    model = Embedder(EmbedderConfig(dim=32, input_size=(64, 32), num_classes=train.num_identities))
    ds = CropDataset(train, cfg, seed=0)
    batch_idx = next(iter(PKSampler(train.labels, 4, 4, 1, seed=0)))
    items = [ds[i] for i in batch_idx]
    batch = (torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items]))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        loss, _ = reid_loss(model, batch, torch.device("cpu"), cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.6 * losses[0], losses


def test_a_teacher_with_a_larger_input_sees_the_crop_at_its_size_and_the_model_at_its_own(
    synth_crops,
):
    """Distilling from a start at its own, larger input: the batch is cut at the teacher's
    size; the model is fed the same crops resized down to the model's input."""
    import copy

    from heatrack.train.reid import CropDataset, ReidTrainConfig, reid_loss

    torch.manual_seed(0)
    model_cfg = EmbedderConfig(dim=32, input_size=(64, 32), num_classes=synth_crops.num_identities)
    cfg = ReidTrainConfig(model=model_cfg, p=4, k=4, distill_weight=1.0,
                          distill_input_size=(96, 48))  # fmt: skip
    model = Embedder(model_cfg)
    teacher = copy.deepcopy(model).eval().requires_grad_(False)
    ds = CropDataset(synth_crops, cfg, seed=0)
    items = [ds[i] for i in next(iter(PKSampler(synth_crops.labels, 4, 4, 1, seed=0)))]
    assert items[0][0].shape == (3, 96, 48)
    batch = (torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items]))
    seen = {}

    def record(name):
        def hook(module, args):
            seen[name] = tuple(args[0].shape)

        return hook

    model.register_forward_pre_hook(record("model"))
    teacher.register_forward_pre_hook(record("teacher"))
    _, parts = reid_loss(model, batch, torch.device("cpu"), cfg, teacher)
    assert seen["model"][-2:] == (64, 32) and seen["teacher"][-2:] == (96, 48)
    assert float(parts["distill"]) > 0  # one network at two sizes: the similarities differ
    with pytest.raises(ValueError, match="height, width"):
        CropDataset(synth_crops, ReidTrainConfig(model=model_cfg, distill_weight=1.0,
                                                 distill_input_size=(96,)))[0]  # fmt: skip


def test_low_resolution_augmentation_removes_detail_a_far_person_has_not():
    """Crops shrunk to a far person's height and enlarged again lose fine stripes; without
    the augmentation (or with a height above the crop's) the stripes survive."""
    from heatrack.train.reid import CropDataset, ReidAugmentConfig, ReidTrainConfig

    stripes = np.zeros((1, 192, 96, 3), np.uint8)
    stripes[0, ::2] = 255  # one-pixel horizontal stripes
    one = np.zeros(1, np.int64)
    crops = Crops(stripes, one, one, one + 1, one, one + 25.0, ["S"])

    def row_contrast(augment):
        cfg = ReidTrainConfig(model=EmbedderConfig(dim=8, input_size=(192, 96)), augment=augment)
        x = CropDataset(crops, cfg, seed=0)[0][0].numpy()
        return float(np.abs(np.diff(x[0, 20:170, 48])).mean())

    plain = dict(flip=False, crop_scale=(1.0, 1.0), color=0.0, erase_prob=0.0)
    sharp = row_contrast(ReidAugmentConfig(**plain))
    blurred = row_contrast(ReidAugmentConfig(**plain, low_res_prob=1.0, low_res_height=(60, 60)))
    too_tall = ReidAugmentConfig(**plain, low_res_prob=1.0, low_res_height=(400, 400))
    assert blurred < 0.1 * sharp
    assert row_contrast(too_tall) == pytest.approx(sharp)


def test_market1501_export(synth_crops, tmp_path):
    train, test = split_identities(synth_crops, test_sequences=["S4"])
    out = export_market1501(train, test, tmp_path / "market", query_per_id=2)
    names = {d: sorted(p.name for p in (out / d).glob("*.jpg")) for d in
             ("bounding_box_train", "query", "bounding_box_test")}  # fmt: skip
    assert len(names["bounding_box_train"]) == len(train)
    assert len(names["query"]) + len(names["bounding_box_test"]) == len(test)
    assert len(names["query"]) == 2 * test.num_identities
    pid, cam = names["query"][0].split("_")[:2]
    assert pid.isdigit() and cam == "c2s1"


def test_train_reid_eval_reid_and_reid_data_cli(tmp_path, capsys):
    import dataclasses
    import json

    import yaml

    from heatrack.cli import main
    from heatrack.train.engine import EngineConfig
    from heatrack.train.reid import ReidTrainConfig

    folders = []
    for seed in (5, 6):
        seq = render(SyntheticConfig(name=f"R{seed}", length=20, num_people=6, seed=seed))
        folders.append(str(write_sequence(seq, tmp_path / f"R{seed}")))
    cfg = ReidTrainConfig(
        train_sequences=(folders[0],),
        test_sequences=(folders[1],),
        cache_dir=str(tmp_path / "cache"),
        crops=CropConfig(min_height=20, stored_size=(72, 36)),
        model=EmbedderConfig(dim=16, input_size=(64, 32)),
        p=3,
        k=2,
        batches_per_epoch=2,
        engine=EngineConfig(out_dir=str(tmp_path / "run"), epochs=1, warmup_steps=1),
    )
    plain = json.loads(json.dumps(dataclasses.asdict(cfg)))
    (tmp_path / "reid.yaml").write_text(yaml.safe_dump(plain))
    assert main(["train", "reid", "--config", str(tmp_path / "reid.yaml")]) == 0
    epochs = (tmp_path / "run" / "epochs.csv").read_text().splitlines()
    assert "rank1" in epochs[0] and "mAP" in epochs[0] and len(epochs) == 2
    assert main(["train", "reid", "--config", str(tmp_path / "reid.yaml"), "--epochs", "2",
                 "--resume"]) == 0  # fmt: skip
    assert len((tmp_path / "run" / "epochs.csv").read_text().splitlines()) == 3

    capsys.readouterr()
    common = ["--min-height", "20", "--cache-dir", str(tmp_path / "cache")]
    out_json = tmp_path / "reid.json"
    ckpt = str(tmp_path / "run" / "last.pt")
    assert (
        main(["eval-reid", folders[1], "--checkpoint", ckpt, "--json", str(out_json), *common]) == 0
    )
    text = capsys.readouterr().out
    assert "single-query" in text and "multi-query" in text
    res = json.loads(out_json.read_text())
    assert 0.0 <= res["single"]["mAP"] <= 1.0 and res["single"]["queries"] > 0
    assert main(["reid-data", *folders, "--test-sequences", "R6", "--output",
                 str(tmp_path / "market"), *common]) == 0  # fmt: skip
    assert list((tmp_path / "market" / "query").glob("*.jpg"))


def test_only_detections_the_tracker_asks_for_are_embedded():
    from heatrack.tracking.tracker import Tracker, TrackerConfig
    from heatrack.types import Detections

    asked = []

    def embed(rows):
        asked.append(sorted(int(r) for r in rows))
        vectors = np.zeros((len(rows), 4))
        vectors[:, 0] = 1.0
        return vectors

    tracker = Tracker(TrackerConfig(appearance_refresh_frames=5))

    def frame(index, boxes, scores):
        dets = Detections(np.array(boxes, float), np.array(scores, float))
        asked.append(index)
        tracker.update(dets, frame_index=index, embed=embed)

    far = lambda dx: [[10 + dx, 10, 30 + dx, 60], [200 + dx, 10, 220 + dx, 60]]  # noqa: E731
    frame(1, far(0), [0.9, 0.9])  # births: both embedded
    for f in range(2, 6):
        frame(f, far(f), [0.9, 0.9])  # clear matches, fresh templates: nothing embedded
    frame(6, far(6), [0.9, 0.9])  # refresh due (6 - 1 >= 5): both
    frame(7, far(7) + [[300, 10, 320, 60]], [0.9, 0.9, 0.3])  # low score: never
    frame(8, [[100, 10, 120, 60], [104, 10, 124, 60]], [0.9, 0.9])  # far from both: lonely
    crossing = [[150, 10, 170, 60], [155, 10, 175, 60]]
    frame(9, crossing, [0.9, 0.9])  # two tracks near two detections: ambiguous, both
    calls = {}
    for item in asked:
        if isinstance(item, int):
            current = item
        else:
            calls[current] = item
    assert calls == {1: [0, 1], 6: [0, 1], 8: [0, 1], 9: [0, 1]}


def test_track_cli_with_appearance(tmp_path, monkeypatch):
    from heatrack.cli import main
    from heatrack.io.mot import read_results

    seq = render(SyntheticConfig(name="T1", length=12, num_people=3, seed=2))
    folder = write_sequence(seq, tmp_path / "T1")
    rows = seq.gt
    det = tmp_path / "det.txt"
    det.write_text(
        "".join(
            f"{f},-1,{x:.1f},{y:.1f},{w:.1f},{h:.1f},0.9,-1,-1,-1\n"
            for f, (x, y, w, h) in zip(rows.frames, rows.xywh, strict=True)
        )
    )
    ckpt = tmp_path / "emb.pt"
    model = Embedder(EmbedderConfig(dim=8), pretrained=False)
    torch.save({"model": model.state_dict(), "model_config": {"dim": 8}}, ckpt)
    out = tmp_path / "out"
    args = ["track", str(folder), "--detections", str(det), "--output", str(out)]
    args += ["--backend", "torch"]  # the counting spy wraps the torch embedder
    crops = []
    real_embed = Embedder.embed

    def counting(self, frame, boxes):
        crops.append(len(boxes))
        return real_embed(self, frame, boxes)

    monkeypatch.setattr(Embedder, "embed", counting)
    assert main([*args, "--reid", str(ckpt)]) == 0
    with_app = read_results(out / "T1.txt")
    assert sum(crops) > 0  # the tracker asked for appearance
    crops.clear()
    assert main(args) == 0
    without = read_results(out / "T1.txt")
    assert crops == []  # without --reid no frame is read for appearance
    assert len(with_app) > 0 and len(np.unique(with_app.ids)) == len(np.unique(without.ids))


def test_appearance_thresholds_follow_the_embedders_own_scale():
    from heatrack.models.reid import appearance_thresholds

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(40), 5)
    seqs = (labels >= 20).astype(int)
    centres = rng.normal(size=(40, 16))
    for spread in (0.3, 1.5):  # a sharp and a blurry embedder
        emb = centres[labels] + spread * rng.normal(size=(200, 16))
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        t = appearance_thresholds(emb, labels, seqs)
        cost = (1 - emb @ emb.T) / 2
        diff = (labels[:, None] != labels[None, :]) & (seqs[:, None] == seqs[None, :])
        passed = (cost[np.triu(diff, 1)] < t["appearance_gate"]).mean()
        assert passed == pytest.approx(0.01, abs=0.002)
        assert t["reid_cost"] < t["appearance_gate"] < t["appearance_veto"]
        vetoed = (cost[np.triu(diff, 1)] >= t["appearance_veto"]).mean()
        assert vetoed == pytest.approx(0.925, abs=0.002)


def test_colour_mix_weights_network_and_clothing_colour_similarities():
    import dataclasses

    from heatrack.models.reid import Embedder, EmbedderConfig, colour_histograms

    torch.manual_seed(0)
    model = Embedder(EmbedderConfig(dim=16), pretrained=False).eval()
    rng = np.random.default_rng(0)
    red, blue = np.zeros((128, 64, 3), np.uint8), np.zeros((128, 64, 3), np.uint8)
    red[..., 2], blue[..., 0] = 200, 200
    crops = np.stack([red, red + rng.integers(0, 20, red.shape, dtype=np.uint8), blue])
    plain = model.embed_crops(crops).astype(np.float64)
    colour = colour_histograms(crops)
    assert colour[0] @ colour[1] > 0.5 and abs(colour[0] @ colour[2]) < 1e-9
    model.config = dataclasses.replace(model.config, colour_weight=0.7)
    mixed = model.embed_crops(crops).astype(np.float64)
    assert mixed.shape == (3, model.config.output_dim) == (3, 16 + 2 * 16 * 4 * 4)
    np.testing.assert_allclose(np.linalg.norm(mixed, axis=1), 1.0, atol=1e-5)
    expected = 0.3 * plain @ plain.T + 0.7 * colour @ colour.T
    np.testing.assert_allclose(mixed @ mixed.T, expected, atol=1e-5)
    frame = np.zeros((240, 320, 3), np.uint8)
    assert model.embed(frame, np.zeros((0, 4))).shape == (0, model.config.output_dim)


def test_calibration_crops_come_evenly_from_sequences_and_folders(synth_dir, tmp_path):
    import cv2

    from heatrack.data.reid import sample_crops

    folder = tmp_path / "people"
    folder.mkdir()
    for person in range(1, 4):
        crop = np.full((40, 20, 3), 60 * person, np.uint8)
        cv2.imwrite(str(folder / f"{person:04d}_c1s1_000001_00.png"), crop)
    cache = FrameCache(tmp_path / "cache")
    crops = sample_crops([synth_dir, folder], (32, 16), 1000, cache)
    assert crops.shape[1:] == (32, 16, 3) and crops.dtype == np.uint8
    # every 5th frame's people of the sequence, then the folder's three: all of them, in order
    np.testing.assert_array_equal(crops[-3:, 16, 8, 0], [60, 120, 180])
    assert len(sample_crops([synth_dir, folder], (32, 16), 7, cache)) == 7
    with pytest.raises(FileNotFoundError, match="nowhere"):
        sample_crops([tmp_path / "nowhere"], (32, 16), 10, cache)


def test_crops_become_imagenet_normalised_rgb_at_the_input_size():
    from heatrack.models.backbone import IMAGENET_MEAN, IMAGENET_STD
    from heatrack.models.reid import crops_to_tensor

    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, (3, 40, 20, 3), dtype=np.uint8)
    x = crops_to_tensor(crops, (40, 20)).numpy()
    rgb = crops[..., ::-1].transpose(0, 3, 1, 2).astype(np.float64) / 255
    expected = (rgb - np.reshape(IMAGENET_MEAN, (1, 3, 1, 1))) / np.reshape(
        IMAGENET_STD, (1, 3, 1, 1)
    )
    np.testing.assert_allclose(x, expected, atol=1e-5)
    assert crops_to_tensor(crops, (64, 32)).shape == (3, 3, 64, 32)
    assert crops_to_tensor(crops[:0], (64, 32)).shape == (0, 3, 64, 32)
