"""The supervisor's record format and files (pure pieces)."""

from __future__ import annotations

from pathlib import Path

from provisioning.execution.supervisor import frames


def test_frames_split_whole_ones_and_keep_a_partial_one() -> None:
    data = frames.frame(frames.STDOUT, b"hello\n") + frames.json_frame(frames.EXITED, {"a": 1})
    buffer = bytearray(data[:-3])
    assert frames.split_frames(buffer) == [(frames.STDOUT, b"hello\n")]
    buffer += data[-3:]
    assert frames.split_frames(buffer) == [(frames.EXITED, b'{"a":1}')]
    assert buffer == bytearray()


def test_an_empty_payload_and_a_header_alone() -> None:
    buffer = bytearray(frames.frame(frames.STDERR, b""))
    assert frames.split_frames(buffer) == [(frames.STDERR, b"")]
    buffer = bytearray(frames.frame(frames.STDERR, b"xy")[:4])
    assert frames.split_frames(buffer) == []
    assert len(buffer) == 4


def test_status_files_are_whole_and_private(tmp_path: Path) -> None:
    path = tmp_path / frames.STATUS
    frames.write_json(path, {"reason": "exited", "exit_code": 0})
    assert frames.read_json(path) == {"reason": "exited", "exit_code": 0}
    assert path.stat().st_mode & 0o777 == 0o600
    assert not path.with_name(path.name + ".tmp").exists()
    path.write_text("[1, 2]")
    assert frames.read_json(path) is None  # not an object
    assert frames.read_json(tmp_path / "missing") is None


def test_the_lease_file_holds_the_last_renewal(tmp_path: Path) -> None:
    lease = frames.lease_file(tmp_path, "node-1")
    assert frames.read_lease(lease) is None
    frames.write_lease(lease, 123.5)
    assert frames.read_lease(lease) == 123.5
    assert lease.parent.stat().st_mode & 0o777 == 0o700


def test_forgetting_an_attempt_removes_its_folder(tmp_path: Path) -> None:
    folder = frames.attempt_dir(tmp_path, "task.1")
    folder.mkdir(parents=True)
    (folder / frames.OUTPUT).write_bytes(b"x")
    frames.remove_attempt(folder)
    assert not folder.exists()
    frames.remove_attempt(folder)  # twice is fine
