"""``weakseg label``: bulk labeling through a live server (COCO in and out, resumable, review page)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from bench.common import scraped
from service.api.background import BackgroundServer
from service.client import main as client_main
from service.labeling import inputs, run
from service.labeling.journal import Journal, file_hash
from service.settings import REPO_ROOT
from tests.conftest import serving_process
from training import derive_labels
from training.datasets import DatasetFolder
from training.synthetic import CLASSES, HELD_OUT_SEED, generate
from wsss.v1 import segmentation_pb2 as pb
from wsss.v1 import segmentation_pb2_grpc as pb_grpc


def make_folder(root: Path, count: int, start: int = 0) -> Path:
    """A data-set folder: procedural images with masks; labels.json mixes tags, boxes, clicks, an
    empty entry (image 2, defect-free: known empty) and images with no entry (the classifier decides)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    labels: dict[str, dict[str, object]] = {}
    for i in range(count):
        s = generate(HELD_OUT_SEED, start + i, defect_free_rate=1.0 if i == 2 else 0.1)
        name = f"img_{i:03d}"
        Image.fromarray(s.image).save(root / "images" / f"{name}.png")
        Image.fromarray(s.mask).save(root / "masks" / f"{name}.png")
        kind = i % 5
        if kind == 0 or not s.labels:
            labels[name] = {"image_labels": list(s.labels)}
        elif kind in (1, 2):
            labels[name] = {"boxes": [{"label": b.label, "x0": b.x0, "y0": b.y0, "x1": b.x1, "y1": b.y1}
                                      for b in derive_labels.boxes(s.mask, CLASSES)]}
        elif kind == 3:
            labels[name] = {"points": [{"label": c.label, "x": c.x, "y": c.y} for c in derive_labels.points(s.mask, CLASSES)]}
        # kind 4: no entry
    (root / "labels.json").write_text(json.dumps(labels, indent=1))
    (root / "labels.txt").write_text("\n".join(CLASSES) + "\n")
    return root


def coco_label_maps(path: Path) -> dict[str, np.ndarray]:
    """file stem -> label map painted from a COCO file's annotations."""
    coco = COCO(str(path))
    maps = {}
    for image_id, im in coco.imgs.items():
        lm = np.zeros((im["height"], im["width"]), np.uint8)
        for a in coco.loadAnns(coco.getAnnIds(imgIds=[image_id])):
            lm[coco.annToMask(a).astype(bool)] = a["category_id"]
        maps[Path(im["file_name"]).stem] = lm
    return maps


def test_label_dataset_folder(server: BackgroundServer, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "data", 12)
    out = tmp_path / "out"
    argv = ["--address", server.address, "label", str(folder), "--out", str(out)]
    assert client_main(argv) == 0
    entries = Journal(out).entries
    assert len(entries) == 12 and all(e["status"] == "ok" for e in entries.values())
    labels = json.loads((folder / "labels.json").read_text())
    sources = {name: e["labels_source"] for name, e in entries.items()}
    for name, src in sources.items():
        entry = labels.get(name)
        expected = "LABELS_SOURCE_CLASSIFIER" if entry is None else "KNOWN_EMPTY" if entry == {"image_labels": []} else "LABELS_SOURCE_REQUEST"
        assert src == expected, (name, entry, src)
    assert "KNOWN_EMPTY" in sources.values() and "LABELS_SOURCE_CLASSIFIER" in sources.values()

    # annotations.json: pycocotools loads it, as ground truth and as results; one annotation per box
    coco = COCO(str(out / "annotations.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CLASSES)
    results = json.loads((out / "annotations.json").read_text())["annotations"]  # each has a score: a COCO results list too
    assert coco.loadRes(results).getAnnIds()
    by_file = {Path(im["file_name"]).stem: i for i, im in coco.imgs.items()}
    for name, entry in labels.items():
        if "boxes" in entry:
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[by_file[name]]))
            assert all(a["weak_label"]["kind"] == "box" for a in anns)
            assert len(anns) <= len(entry["boxes"]) and len(anns) >= 1
            for a in anns:
                assert a["bbox"] == [float(v) for v in mask_utils.toBbox(a["segmentation"])]
                assert a["area"] == int(mask_utils.area(a["segmentation"])) and 0.0 <= a["score"] <= 1.0
    # the COCO masks are the label maps in masks/ (which the data-set reader takes as masks) but for 255
    data_out = DatasetFolder(folder)
    for name, lm in coco_label_maps(out / "annotations.json").items():
        written = data_out.mask(name, out / "masks")
        assert Image.open(out / "masks" / f"{name}.png").mode == "P"
        assert np.array_equal(np.where(written == 255, 0, written), lm), name
        conf = np.asarray(Image.open(out / "confidence" / f"{name}.png"))
        assert conf.shape == lm.shape and (conf[written == 255] == 0).all()
        assert (out / "overlays" / f"{name}.jpg").is_file()
    assert (out / "review.html").is_file()
    # score-coco scores the file as evaluate scores a method: here, against the label maps written
    from training.evaluate import MethodScore
    from training.score_coco import score

    ids = data_out.ids
    expected = MethodScore(len(CLASSES))
    for i in ids:
        written = data_out.mask(i, out / "masks")
        expected.add(np.where(written == 255, 0, written), data_out.mask(i), 0.0)
    assert score(data_out, ids, out / "annotations.json")["miou"] == expected.report(CLASSES)["miou"] > 0.3

    # a re-run sends nothing; a changed weak label is sent again, and only it
    stub_report = _label(server, folder, out)
    assert (stub_report.sent, stub_report.skipped) == (0, 12)
    changed = next(n for n, e in labels.items() if e.get("image_labels"))
    labels[changed] = {"image_labels": labels[changed]["image_labels"][:1], "points": []}
    labels[changed]["image_labels"] = list(CLASSES[:1])
    (folder / "labels.json").write_text(json.dumps(labels))
    again = _label(server, folder, out)
    assert (again.sent, again.skipped, again.ok) == (1, 11, 1)
    # a mask file changed on disk is not trusted: that image is done again
    victim = next(n for n, e in Journal(out).entries.items() if e["labels_source"] == "LABELS_SOURCE_REQUEST" and n != changed)
    (out / "masks" / f"{victim}.png").write_bytes(b"not a png")
    third = _label(server, folder, out)
    assert (third.sent, third.ok) == (1, 1)
    assert file_hash(out / "masks" / f"{victim}.png") == Journal(out).entries[victim]["mask_sha256"]


def _label(server: BackgroundServer, folder: Path, out: Path, **kw: object) -> run.Report:
    with server.channel() as channel:
        return run.label(pb_grpc.SegmentationServiceStub(channel), inputs.from_dataset(folder), out, CLASSES, progress=False, **kw)  # type: ignore[arg-type]


def test_label_coco_detection_input(server: BackgroundServer, tmp_path: Path) -> None:
    """Images + a COCO detection file: boxes become BoxLabels, category names map to the served
    classes (case-insensitive, or --map), an unmapped name is an error that lists it; an image
    without boxes is known empty; masks score as the same boxes sent one by one."""
    folder = make_folder(tmp_path / "data", 6)
    images, anns = [], []
    for i, path in enumerate(sorted((folder / "images").iterdir()), start=1):
        images.append({"id": i, "file_name": path.name, "width": 256, "height": 256})
        mask = np.asarray(Image.open(folder / "masks" / path.name))
        for b in derive_labels.boxes(mask, CLASSES):
            name = "SCRATCH" if b.label == "scratch" else "Fleck" if b.label == "spot" else b.label
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": CLASSES.index(b.label) + 1, "bbox": [b.x0, b.y0, b.x1 - b.x0, b.y1 - b.y0],
                         "_name": name})
    names = {a["category_id"]: a.pop("_name") for a in anns}
    cats = [{"id": k, "name": names.get(k, CLASSES[k - 1])} for k in range(1, len(CLASSES) + 1)]
    det = tmp_path / "detections.json"
    det.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    out = tmp_path / "out"
    base = ["--address", server.address, "label", str(folder / "images"), "--coco", str(det), "--out", str(out)]
    if "Fleck" in names.values():
        assert client_main(base) == 2  # Fleck maps to no class
        assert not (out / "journal.jsonl").exists()
    assert client_main([*base, "--map", "Fleck=spot"]) == 0
    coco = COCO(str(out / "annotations.json"))
    assert len(coco.imgs) == 6
    assert all(a["weak_label"]["kind"] == "box" for a in coco.anns.values())
    assert sum(1 for a in anns) >= len(coco.anns) > 0
    with server.channel() as channel:
        stub = pb_grpc.SegmentationServiceStub(channel)
        for i, im in coco.imgs.items():
            boxes = [pb.BoxLabel(label=CLASSES[a["category_id"] - 1], x0=a["bbox"][0], y0=a["bbox"][1],
                                 x1=a["bbox"][0] + a["bbox"][2], y1=a["bbox"][1] + a["bbox"][3]) for a in anns if a["image_id"] == i]
            lm = coco_label_maps(out / "annotations.json")[Path(im["file_name"]).stem]
            if not boxes:
                assert not lm.any()
                continue
            resp = stub.Segment(pb.SegmentRequest(image=pb.Image(encoded=(folder / "images" / im["file_name"]).read_bytes()),
                                                  labels=pb.WeakLabels(boxes=boxes)), timeout=60)
            single = np.asarray(Image.open(io.BytesIO(resp.mask.png)))
            assert np.array_equal(np.where(single == 255, 0, single), lm)


def test_input_errors(tmp_path: Path) -> None:
    with pytest.raises(inputs.LabelingError, match="no images/ folder"):
        inputs.from_dataset(tmp_path)
    folder = make_folder(tmp_path / "d", 2)
    (folder / "labels.json").write_text(json.dumps({"img_000": {"boxes": [{"label": "spot", "x0": "left"}]}}))
    with pytest.raises(inputs.LabelingError, match=r"labels.json\[img_000\]"):
        inputs.from_dataset(folder)
    Image.new("RGB", (8, 8)).save(folder / "images" / "img_001.jpg")
    (folder / "labels.json").write_text("{}")
    with pytest.raises(inputs.LabelingError, match="share the output name"):
        inputs.from_dataset(folder)
    det = tmp_path / "det.json"
    det.write_text(json.dumps({"images": [{"id": 1, "file_name": "missing.png"}], "annotations": [], "categories": []}))
    with pytest.raises(inputs.LabelingError, match="not in"):
        inputs.from_coco(folder / "images", det, CLASSES, {})
    det.write_text(json.dumps({"images": [], "annotations": [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}],
                               "categories": [{"id": 1, "name": "dent"}]}))
    with pytest.raises(inputs.LabelingError, match=r"\['dent'\] match no served class"):
        inputs.from_coco(folder / "images", det, CLASSES, {})
    det.write_text("{not json")
    with pytest.raises(inputs.LabelingError, match="not a COCO detection file"):
        inputs.from_coco(folder / "images", det, CLASSES, {})


def test_server_killed_mid_run_then_rerun_loses_nothing_and_sends_nothing_twice(tmp_path: Path) -> None:
    """A server killed (SIGKILL) mid-run: the run stops after its retries, keeping what is done;
    the same command against the restarted server sends exactly the images not done, once."""
    folder = make_folder(tmp_path / "data", 24)
    n_sent = sum(1 for e in json.loads((folder / "labels.json").read_text()).values() if e != {"image_labels": []}) + \
        sum(1 for p in (folder / "images").iterdir() if p.stem not in json.loads((folder / "labels.json").read_text()))
    out = tmp_path / "out"
    items = inputs.from_dataset(folder)
    with open(tmp_path / "server1.log", "w") as log1:
        proc, port, _ = serving_process(log1, WSSS_METRICS_HOST="127.0.0.1")
        result: dict[str, run.Report] = {}
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.SegmentationServiceStub(channel)
            worker = threading.Thread(target=lambda: result.setdefault("r", run.label(stub, items, out, CLASSES, retries=2, backoff=0.1, progress=False)))
            worker.start()
            deadline = time.monotonic() + 60
            while sum(1 for e in Journal(out).entries.values() if e["labels_source"] != "KNOWN_EMPTY") < 4:
                assert time.monotonic() < deadline and worker.is_alive(), "the run did not get going"
                time.sleep(0.05)
            proc.kill()
            proc.wait()
            worker.join(timeout=60)
        first = result["r"]
        assert first.stopped and "did not answer" in first.stopped
        done_first = first.ok
        assert 4 <= done_first < n_sent, (done_first, n_sent)
        # the outputs agree with the journal: every image it lists has its mask
        coco = json.loads((out / "annotations.json").read_text())
        assert len(coco["images"]) == first.ok + first.known_empty
        assert all((out / "masks" / f"{Path(im['file_name']).stem}.png").is_file() for im in coco["images"])
    with open(tmp_path / "server2.log", "w") as log2:
        proc2, port2, metrics2 = serving_process(log2, port=port, WSSS_METRICS_HOST="127.0.0.1")
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port2}") as channel:
                second = run.label(pb_grpc.SegmentationServiceStub(channel), items, out, CLASSES, progress=False)
            assert not second.stopped and second.failed == 0
            assert second.sent == second.ok == n_sent - done_first
            assert scraped(metrics2, "wsss_requests_total{", 'rpc="SegmentStream"') == n_sent - done_first  # the server's own count: nothing twice
        finally:
            proc2.send_signal(signal.SIGTERM)
            proc2.wait(timeout=30)
    coco = COCO(str(out / "annotations.json"))
    assert sorted(Path(im["file_name"]).stem for im in coco.imgs.values()) == sorted(i.name for i in items)


def test_ctrl_c_leaves_consistent_outputs(server: BackgroundServer, tmp_path: Path) -> None:
    """SIGINT to the client mid-run: exit 130, the journal's images all have their files, and the
    same command finishes the rest. 48 images, so that a loaded machine cannot finish them all
    between the third journal entry and the signal."""
    count = 48
    folder = make_folder(tmp_path / "data", count)
    out = tmp_path / "out"
    args = ["--address", server.address, "label", str(folder), "--out", str(out), "--window", "2"]
    # Ctrl-C as a terminal gives it, whatever this test runs under: a shell starts a background job
    # (`make test &`) with SIGINT ignored, the child inherits that and Python then leaves it ignored
    with_ctrl_c = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                   "sys.argv = ['service.client', *sys.argv[1:]]; runpy.run_module('service.client', run_name='__main__')")
    cmd = [sys.executable, "-c", with_ctrl_c, *args]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    deadline = time.monotonic() + 60
    while len(Journal(out).entries) < 3:
        assert time.monotonic() < deadline and proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=60)[0]
    journal = Journal(out)
    why = f"exit {proc.returncode}, {len(journal.entries)} journaled; client output:\n{output[-3000:]}"
    assert proc.returncode == 130 and "interrupted" in output, why
    assert 3 <= len(journal.entries) < count, why
    for name, e in journal.entries.items():
        assert e["status"] == "ok" and file_hash(out / e["mask"]) == e["mask_sha256"], (name, why)
    assert len(COCO(str(out / "annotations.json")).imgs) == len(journal.entries), why
    rest = _label(server, folder, out)
    assert rest.skipped == len(journal.entries) and rest.skipped + rest.ok + rest.known_empty == count, (rest, why)


def test_outputs_follow_the_journal_on_disk_not_the_one_in_memory(server: BackgroundServer, tmp_path: Path) -> None:
    """A Ctrl-C can land after an entry's line reached the journal file but before the run recorded
    it in memory: annotations.json must still list every image the file has (a re-run skips them)."""
    folder = make_folder(tmp_path / "data", 4)
    out = tmp_path / "out"
    _label(server, folder, out)
    items = inputs.from_dataset(folder)
    stale = Journal(out)
    del stale.entries[items[-1].name]  # on disk, not in memory
    hashes = {i.name: i.input_hash(run.OPTIONS, "") for i in items}
    run._finish(out, stale, items, hashes, CLASSES, "t")
    assert len(COCO(str(out / "annotations.json")).imgs) == len(Journal(out).entries) == 4


def label_with_a_bad_item(server: BackgroundServer, tmp_path: Path, count: int, bad: str) -> Path:
    """``weakseg label`` on ``count`` images, image ``bad`` tagged with a class the server does not
    know (exit code 1); returns the output folder."""
    folder = make_folder(tmp_path / "data", count)
    labels = json.loads((folder / "labels.json").read_text())
    labels[bad] = {"image_labels": ["no_such_class"]}
    (folder / "labels.json").write_text(json.dumps(labels))
    out = tmp_path / "out"
    assert client_main(["--address", server.address, "label", str(folder), "--out", str(out)]) == 1
    return out


def test_label_reports_a_failed_item_and_goes_on(server: BackgroundServer, tmp_path: Path) -> None:
    """An image the server refuses (a class it does not know) is recorded with its error, listed on
    the review page, and the others are labelled; the exit code says something failed."""
    out = label_with_a_bad_item(server, tmp_path, 3, "img_001")
    entry = Journal(out).entries["img_001"]
    assert entry["status"] == "error" and entry["code"] == "INVALID_ARGUMENT" and "no_such_class" in entry["message"]
    assert len(COCO(str(out / "annotations.json")).imgs) == 2
    assert "no_such_class" in (out / "review.html").read_text()


def _chromium() -> str:
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("WSSS_REQUIRE_CHROMIUM"):
        raise AssertionError("WSSS_REQUIRE_CHROMIUM is set but no chromium is installed (.ci/run installs Debian's chromium)")
    pytest.skip("no headless Chromium here (apt-get install chromium; .ci/run installs it)")


def _render(browser: str, url: str, tmp_path: Path, screenshot: Path | None = None) -> str:
    """The page's DOM after its scripts ran (and a screenshot), from a real headless Chromium."""
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    args += ["--dump-dom"] if screenshot is None else [f"--screenshot={screenshot}", "--window-size=1280,1600"]
    done = subprocess.run([*args, url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_review_page_renders_in_chromium(server: BackgroundServer, tmp_path: Path) -> None:
    """review.html in headless Chromium: one card per image, worst review score first, every
    overlay image loaded, the class filter shows exactly the images holding that class, failed
    images listed, and a screenshot that is not blank."""
    import re

    browser = _chromium()
    out = label_with_a_bad_item(server, tmp_path, 10, "img_004")
    entries = [e for e in Journal(out).entries.values() if e["status"] == "ok"]
    page = (out / "review.html").resolve().as_uri()

    dom = _render(browser, page, tmp_path)
    cards = re.findall(r'<div class="card" data-image="([^"]+)" data-review-score="([^"]+)"', dom)
    assert len(cards) == len(entries) == 9
    scores = [float(s) for _, s in cards]
    assert scores == sorted(scores, reverse=True)
    assert dom.count('data-loaded="1"') == len(entries) and 'data-loaded="0"' not in dom
    assert dom.count('class="class-row"') == sum(len(e["classes"]) for e in entries)
    assert re.search(r'<li class="error">img_004: INVALID_ARGUMENT: [^<]*no_such_class', dom)

    for name in {k["name"] for e in entries for k in e["classes"]}:
        filtered = _render(browser, f"{page}#class={name}", tmp_path)
        shown = set(re.findall(r'<div class="card" data-image="([^"]+)"', filtered))
        assert shown == {e["image"] for e in entries if any(k["name"] == name for k in e["classes"])}, name
        assert f"{len(shown)} shown (class {name})" in filtered

    shot = tmp_path / "review.png"
    _render(browser, page, tmp_path, screenshot=shot)
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (1600, 1280) and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # text and images, not a blank page


def test_label_streams_rotate_and_lose_nothing(server: BackgroundServer, tmp_path: Path) -> None:
    """With a short ``stream_seconds`` the run is spread over several streams (each ends once its
    answers are in), and every image is labelled once."""
    folder = make_folder(tmp_path / "data", 10)
    calls = []
    with server.channel() as channel:
        stub = pb_grpc.SegmentationServiceStub(channel)
        original = stub.SegmentStream

        def counting(requests: object) -> object:
            calls.append(1)
            return original(requests)

        stub.SegmentStream = counting  # type: ignore[method-assign]
        report = run.label(stub, inputs.from_dataset(folder), tmp_path / "out", CLASSES, progress=False, stream_seconds=0.05, window=1)
    assert report.ok + report.known_empty == 10 and report.sent == report.ok and not report.stopped
    assert len(calls) >= 3
