"""The HTML report: identity events, page content, and the page in a real headless browser."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from heatrack.cli import main
from heatrack.data.synthetic import SyntheticConfig, render, write_sequence
from heatrack.eval.events import identity_events
from heatrack.io.mot import MotRows, write_results


def _rows(frames, ids, boxes):
    n = len(frames)
    return MotRows(
        np.asarray(frames), np.asarray(ids), np.asarray(boxes, float), np.ones(n),
        np.ones(n, np.int64), np.ones(n),
    )  # fmt: skip


def test_identity_events_find_the_switch_and_the_fragmentation():
    box_a, box_b = [0, 0, 10, 20], [50, 0, 60, 20]
    frames = list(range(1, 9))
    gt = _rows(frames + frames, [1] * 8 + [2] * 8, [box_a] * 8 + [box_b] * 8)
    # Person 1: track 7 for frames 1-3, track 9 from frame 4 (a switch at frame 4).
    # Person 2: track 5, missed at frames 5-6, found again by track 5 (a fragmentation at 7).
    res_f = frames + [1, 2, 3, 4, 7, 8]
    res_i = [7, 7, 7, 9, 9, 9, 9, 9] + [5] * 6
    res_b = [box_a] * 8 + [box_b] * 6
    events = identity_events(gt, _rows(res_f, res_i, res_b))
    got = [(e.frame, e.kind, e.gt_id, e.previous_track_id, e.track_id) for e in events]
    assert got == [(4, "switch", 1, 7, 9), (7, "fragmentation", 2, 5, 5)]


@pytest.fixture(scope="module")
def report_case(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    seq = render(SyntheticConfig(name="SCENE", length=30, num_people=4, seed=3))
    folder = write_sequence(seq, root / "gt" / "SCENE")
    gt = seq.gt
    ids = gt.ids.copy()
    ids[(gt.ids == gt.ids[0]) & (gt.frames > 15)] = 99  # one identity switch
    results = root / "results"
    write_results(results / "SCENE.txt", gt.frames, ids, gt.xywh, np.ones(len(gt)))
    out = root / "report.html"
    assert main(["report", "--gt", str(root / "gt"), "--results", str(results), "--output",
                 str(out), "--title", "Synthetic check"]) == 0  # fmt: skip
    return out, folder


def test_report_is_one_self_contained_page(report_case):
    out, _ = report_case
    text = out.read_text()
    assert text.startswith("<!doctype html>") and "Synthetic check" in text
    assert "<table>" in text and "COMBINED" in text and "HOTA" in text
    assert text.count("<svg") >= 3  # bars, timeline, histogram
    assert "1 switches" in text
    assert text.count("data:image/jpeg;base64,") >= 4  # thumbnails, inline
    assert "http://" not in text and "https://" not in text  # nothing fetched


def _browser_or_skip():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium "
                    "chromium-driver); .ci/run installs them")  # fmt: skip
    selenium = pytest.importorskip("selenium", reason="needs selenium (pip install -e .[dev])")
    return chromium, driver, selenium


@pytest.mark.browser
def test_report_in_headless_chromium(report_case, tmp_path):
    chromium, driver_path, _ = _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    out, _ = report_case
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,2000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        browser.get(Path(out).resolve().as_uri())
        assert browser.title == "Synthetic check"
        assert len(browser.find_elements("css selector", "svg")) >= 3
        images = browser.find_elements("css selector", "img")
        assert images and all(
            browser.execute_script("return arguments[0].naturalWidth", im) > 0 for im in images
        )
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
        shot = tmp_path / "report.png"
        assert browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
    finally:
        browser.quit()
