"""Result records and sinks: the JSON-ready record and its wire size, the null sink, the file
sink's layout, and its failures (disk full, a file where a folder should be, permission denied,
a link out of its folder) as SinkError naming the path and errno."""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from core import jpeg
from core.config import from_mapping
from core.detections import Detections
from core.errors import ConfigError, SinkError
from core.sample_media import scene_image
from core.sinks import (
    EncodedImage,
    FileSink,
    NullSink,
    ResultRecord,
    SinkConfig,
    TeeSink,
    open_sink,
)

NAMES = ("person", "car")


def _record(seq: int = 0, images: int = 2, stream_id: int = 1) -> ResultRecord:
    frame = scene_image(120, 160, seed=seq)
    boxes = np.array([[10, 20, 50, 80], [60, 10, 150, 70]], np.float32)[:images]
    detections = Detections(boxes, np.array([0.91, 0.62])[:images], np.arange(images), NAMES)
    crops = tuple(
        EncodedImage("crop", tuple(box), jpeg.encode_crop(frame, box))  # type: ignore[arg-type]
        for box in boxes.tolist()
    )
    return ResultRecord(stream_id, seq, 100 + seq, 5_000, 9_000, "crops", detections, crops)


def test_a_record_is_json_ready_and_counts_its_wire_bytes() -> None:
    record = _record()
    data = record.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["schema"] == "edgeloop.result/1" and data["level"] == "crops"
    assert [d["label"] for d in data["detections"]] == ["person", "car"]
    assert data["images"] == [
        {"kind": "crop", "box": [10.0, 20.0, 50.0, 80.0], "bytes": len(record.images[0].jpeg)},
        {"kind": "crop", "box": [60.0, 10.0, 150.0, 70.0], "bytes": len(record.images[1].jpeg)},
    ]
    assert json.loads(record.to_json()) == data and b" " not in record.to_json()
    assert record.payload_bytes == len(record.to_json()) + sum(len(i.jpeg) for i in record.images)


def test_a_metadata_record_weighs_only_its_json() -> None:
    record = _record(images=0)
    assert record.payload_bytes == len(record.to_json()) < 400


def test_the_null_sink_counts_and_keeps_nothing() -> None:
    sink = open_sink(SinkConfig())
    assert isinstance(sink, NullSink)
    with sink:
        for seq in range(3):
            sink.emit(_record(seq))
    assert sink.records == 3 and sink.payload_bytes == sum(
        _record(s).payload_bytes for s in range(3)
    )


def test_the_file_sink_writes_json_lines_and_jpegs(tmp_path: Path) -> None:
    sink = open_sink(SinkConfig(kind="file", path=tmp_path / "out"))
    assert isinstance(sink, FileSink)
    records = [_record(0), _record(1, images=0), _record(2, stream_id=3)]
    with sink:
        for record in records:
            sink.emit(record)
        sink.flush()  # lines are visible after a flush, before the close
        lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
        assert len(lines) == 3
    written = [json.loads(line) for line in lines]
    assert written[0]["files"] == ["images/1/0-0.jpg", "images/1/0-1.jpg"]
    assert written[1]["files"] == [] and written[2]["files"][0] == "images/3/2-0.jpg"
    for record, line in zip(records, written, strict=True):
        assert {k: v for k, v in line.items() if k != "files"} == record.to_dict()
        for name, image in zip(line["files"], record.images, strict=True):
            assert (tmp_path / "out" / name).read_bytes() == image.jpeg
    sink.close()  # idempotent
    with pytest.raises(SinkError, match="emit before open"):
        sink.emit(records[0])


def test_reopening_starts_the_results_afresh(tmp_path: Path) -> None:
    for _ in range(2):
        with FileSink(tmp_path) as sink:
            sink.emit(_record(images=0))
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 1


def test_disk_full_is_a_sink_error_naming_path_and_errno(tmp_path: Path) -> None:
    (tmp_path / "results.jsonl").symlink_to("/dev/full")  # every write: ENOSPC
    sink = FileSink(tmp_path)
    sink.open()
    sink.emit(_record(images=0))  # buffered
    with pytest.raises(SinkError, match=r"ENOSPC: No space left on device") as caught:
        sink.flush()
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.filename == str(tmp_path / "results.jsonl")
    with pytest.raises(SinkError, match="ENOSPC"):
        sink.close()  # what is still buffered cannot be written either: said, and closed
    sink.close()


def test_a_file_where_a_folder_should_be(tmp_path: Path) -> None:
    (tmp_path / "images").write_text("in the way")
    with FileSink(tmp_path) as sink, pytest.raises(SinkError) as caught:
        sink.emit(_record())
    assert caught.value.errno in (errno.EEXIST, errno.ENOTDIR)
    assert str(tmp_path / "images") in str(caught.value)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, not a folder")
    with pytest.raises(SinkError, match=r"cannot open its folder \((EEXIST|ENOTDIR)"):
        FileSink(blocked / "sub").open()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders anyway")
def test_permission_denied(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(SinkError, match=r"EACCES") as caught:
            FileSink(tmp_path).open()
        assert caught.value.errno == errno.EACCES
    finally:
        tmp_path.chmod(0o700)


def test_a_link_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "images").symlink_to(outside)
    with FileSink(tmp_path / "out") as sink, pytest.raises(SinkError, match="refuses to write"):
        sink.emit(_record())
    assert not any(outside.rglob("*.jpg"))


@dataclass(frozen=True)
class _Pipeline:
    sink: SinkConfig = field(default_factory=SinkConfig)


def test_config() -> None:
    config = from_mapping(_Pipeline, {"sink": {"kind": "file", "path": "results"}})
    assert config.sink == SinkConfig("file", Path("results"))
    with pytest.raises(ConfigError, match=r"^sink\.kind: must be one of 'null', 'file'"):
        from_mapping(_Pipeline, {"sink": {"kind": "mqtt"}})


def test_a_tee_feeds_every_sink_and_raises_the_first_failure_after_all() -> None:
    class Failing(NullSink):
        name = "failing"

        def emit(self, record: ResultRecord) -> None:
            raise SinkError("failing: disk full")

    first, second = NullSink(), NullSink()
    tee = TeeSink([first, Failing(), second])
    assert tee.name == "null+failing+null"
    with tee, pytest.raises(SinkError, match="disk full"):
        tee.emit(_record())
    assert first.records == second.records == 1  # the failure kept the record from neither
