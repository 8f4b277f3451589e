"""list_input_files: every regular file once, by its '/'-separated path relative to the
DICOM dir, sorted; a symlink to a file is followed, a symlinked directory is not entered,
a dangling link and an unreadable directory are skipped; size and mtime are the target's."""
from __future__ import annotations

import os

import pytest

from cmr_ray.data.index import list_input_files


def test_files_links_and_order(tmp_path):
    root = tmp_path / "dicom"
    (root / "b" / "deep").mkdir(parents=True)
    (root / "a").mkdir()
    (root / "b" / "deep" / "2.dcm").write_bytes(b"x" * 7)
    (root / "a" / "1.dcm").write_bytes(b"y" * 3)
    (root / "z.dcm").write_bytes(b"")
    (root / "a.dcm").write_bytes(b"zz")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "far.dcm").write_bytes(b"f" * 11)
    os.symlink(outside / "far.dcm", root / "a" / "link.dcm")   # followed
    os.symlink(outside, root / "linked_dir")                    # not entered
    os.symlink(tmp_path / "gone.dcm", root / "a" / "dangling")  # skipped
    files = list_input_files(root)
    assert [f.path for f in files] == ["a.dcm", "a/1.dcm", "a/link.dcm", "b/deep/2.dcm", "z.dcm"]
    by_path = {f.path: f for f in files}
    assert by_path["a/link.dcm"].size == 11 and by_path["b/deep/2.dcm"].size == 7
    assert by_path["a/1.dcm"].mtime_ns == os.stat(root / "a" / "1.dcm").st_mtime_ns
    assert by_path["a/1.dcm"].stamp == f"a/1.dcm:3:{by_path['a/1.dcm'].mtime_ns}"


def test_an_unreadable_directory_is_skipped(tmp_path, monkeypatch):
    """As os.walk: a directory that cannot be listed (permission) is left out, the rest is listed.
    (Tests run as root here, who can list anything: the refusal is simulated.)"""
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "1.dcm").write_bytes(b"1")
    (tmp_path / "closed").mkdir()
    (tmp_path / "closed" / "2.dcm").write_bytes(b"2")
    real = os.scandir

    def scandir(path):
        if os.path.basename(path) == "closed":
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert [f.path for f in list_input_files(tmp_path)] == ["ok/1.dcm"]


def test_not_a_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        list_input_files(tmp_path / "missing")
