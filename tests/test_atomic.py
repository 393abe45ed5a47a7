"""Atomic writes: all or nothing, and the permissions of an ordinary new file."""

from __future__ import annotations

import os
import stat

import pytest

from lmrecsim.atomic import atomic_file, atomic_write, signals_deferred, staged_folder


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_get_the_umask_permissions(tmp_path, umask):
    # tempfile.mkstemp makes 0600 files: reports used to be unreadable to other users.
    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "a" / "report.html", "<p>hi</p>")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "a" / "report.html").stat().st_mode)
    assert mode == 0o666 & ~umask
    assert (tmp_path / "a" / "report.html").read_text() == "<p>hi</p>"


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "log.parquet"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_file(path, fsync=True) as fh:
        fh.write(b"half")
        raise RuntimeError("disk full")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.parquet"]


def test_evaluation_outputs_are_readable_by_others(tmp_path):
    from lmrecsim.evaluation.runner import evaluate

    old = os.umask(0o022)
    try:
        res = evaluate(
            "default", ["greedy"], seeds=[1000], episodes=1, progress=False, out=tmp_path
        )
    finally:
        os.umask(old)
    for path in res.files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path.name


def test_a_staged_folder_moves_all_files_or_none(tmp_path):
    (tmp_path / "report.md").write_text("old report")
    (tmp_path / "table.csv").write_text("old table")
    with pytest.raises(KeyboardInterrupt), staged_folder(tmp_path) as staged:
        staged.write("table.csv", "new table")
        raise KeyboardInterrupt  # stopped before the report was written
    assert (tmp_path / "table.csv").read_text() == "old table"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md", "table.csv"]

    old = os.umask(0o022)
    try:
        with staged_folder(tmp_path / "new") as staged:
            staged.write("table.csv", "new table")
            staged.path("log.bin").write_bytes(b"\x00")
            staged.write("report.md", "new report")
    finally:
        os.umask(old)
    assert [p.name for p in staged.files()] == ["table.csv", "log.bin", "report.md"]
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == sorted(
        ["table.csv", "log.bin", "report.md"]
    )
    assert stat.S_IMODE((tmp_path / "new" / "report.md").stat().st_mode) == 0o644


def test_a_folder_in_the_way_of_a_staged_file_moves_nothing(tmp_path):
    (tmp_path / "table.csv").write_text("old table")
    (tmp_path / "report.html").mkdir()
    with pytest.raises(IsADirectoryError) as err, staged_folder(tmp_path) as staged:
        staged.write("table.csv", "new table")
        staged.write("report.html", "<p>")
    assert err.value.filename == str(tmp_path / "report.html")
    assert "a folder is in the way" in str(err.value)
    assert (tmp_path / "table.csv").read_text() == "old table"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "table.csv"]


def test_a_staged_write_error_names_the_final_file(tmp_path, monkeypatch):
    # A full disk says only "No space left on device"; the message must name the file, and the
    # final path, not the hidden staging folder.
    import errno

    import lmrecsim.atomic as atomic

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "atomic_write", full)
    with pytest.raises(OSError) as err, staged_folder(tmp_path) as staged:
        staged.write("report.html", "<p>")
    assert err.value.filename == str(tmp_path / "report.html")
    assert list(tmp_path.iterdir()) == []


def test_signals_deferred_holds_ctrl_c_until_the_block_has_ended(tmp_path, ctrl_c_raises) -> None:
    import signal

    with pytest.raises(KeyboardInterrupt):
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # a second one: handled once, as the first
            atomic_write(tmp_path / "train.json", "stopped\n")
    assert (tmp_path / "train.json").read_text() == "stopped\n"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_folder_where_the_file_goes_is_one_error_naming_the_file(tmp_path):
    # The rename used to fail after the write, naming the hidden temp file.
    (tmp_path / "out.csv").mkdir()
    with pytest.raises(IsADirectoryError) as err:
        atomic_write(tmp_path / "out.csv", "a,b\n")
    assert err.value.filename == str(tmp_path / "out.csv")
    assert err.value.strerror == "a folder is in the way (expected a file or nothing)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_ctrl_c_during_the_renames_waits_until_every_file_is_in_place(
    tmp_path, ctrl_c_raises, monkeypatch
) -> None:
    # A signal between two renames used to leave new tables beside the old report.
    import signal

    import lmrecsim.atomic as atomic

    for name in ("a.csv", "b.csv", "report.md"):
        (tmp_path / name).write_text("old")
    real, moved = os.replace, []

    def replace_then_ctrl_c(src, dst):
        real(src, dst)
        if os.path.dirname(dst) == str(tmp_path):  # a move into place, not a staged write
            moved.append(dst)
            if len(moved) == 1:
                os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(atomic.os, "replace", replace_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt), staged_folder(tmp_path) as staged:
        for name in ("a.csv", "b.csv", "report.md"):
            staged.write(name, "new")
    assert len(moved) == 3
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {
        "a.csv": "new",
        "b.csv": "new",
        "report.md": "new",
    }
