"""Atomic writes leave the old file or the new one, never a mix; output paths are checked up front."""

import os

import pytest

from minivgg.errors import UserError
from minivgg.run import fsutil
from minivgg.run.fsutil import atomic_save_bytes, atomic_write, check_output_path


def _leftovers(directory, keep):
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


def test_atomic_write_replaces_file_and_leaves_no_temp(tmp_path):
    out = tmp_path / "out.bin"
    out.write_bytes(b"old")
    with atomic_write(out) as f:
        f.write(b"new content")
        assert out.read_bytes() == b"old"  # nothing visible until the block succeeds
    assert out.read_bytes() == b"new content"
    assert _leftovers(tmp_path, {"out.bin"}) == []


@pytest.mark.parametrize("exc_type", [RuntimeError, KeyboardInterrupt])
def test_failure_mid_write_keeps_old_file_byte_identical(tmp_path, exc_type):
    out = tmp_path / "out.png"
    old = bytes(range(256)) * 4
    out.write_bytes(old)
    with pytest.raises(exc_type):
        with atomic_write(out) as f:
            f.write(b"half of the new file")
            raise exc_type("disk on fire")
    assert out.read_bytes() == old
    assert _leftovers(tmp_path, {"out.png"}) == []


def test_failure_in_replace_removes_temp_and_keeps_old(tmp_path, monkeypatch):
    out = tmp_path / "out.txt"
    out.write_bytes(b"old")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fsutil.os, "replace", broken_replace)
    with pytest.raises(OSError):
        atomic_save_bytes(out, b"new")
    assert out.read_bytes() == b"old"
    assert _leftovers(tmp_path, {"out.txt"}) == []


def test_failure_with_no_old_file_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        with atomic_write(tmp_path / "new.bin") as f:
            f.write(b"x")
            raise ValueError
    assert list(tmp_path.iterdir()) == []


def test_text_mode_and_new_file_permissions(tmp_path):
    out = tmp_path / "log.txt"
    with atomic_write(out, "w") as f:
        f.write("résumé\n")
    assert out.read_text(encoding="utf-8") == "résumé\n"
    # Not the 0600 of a temporary file: what open() would have given.
    assert out.stat().st_mode & 0o777 == 0o666 & ~fsutil._umask()


def test_existing_permissions_are_kept(tmp_path):
    out = tmp_path / "secret.bin"
    out.write_bytes(b"old")
    out.chmod(0o640)
    atomic_save_bytes(out, b"new")
    assert out.read_bytes() == b"new"
    assert out.stat().st_mode & 0o777 == 0o640


def test_write_through_symlink_updates_target(tmp_path):
    target = tmp_path / "real.bin"
    target.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    atomic_save_bytes(link, b"new")
    assert link.is_symlink()
    assert target.read_bytes() == b"new"


def test_bad_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "x", "ab"):
            pass


# check_output_path ---------------------------------------------------------------------------------


def _one_sentence(exc_info):
    msg = str(exc_info.value)
    assert msg and "\n" not in msg
    return msg


def test_output_path_fine(tmp_path):
    check_output_path(tmp_path / "out.png", inputs=[tmp_path / "content.jpg", None])
    (tmp_path / "out.png").write_bytes(b"old output")  # overwriting an earlier result is fine
    check_output_path(tmp_path / "out.png")


def test_output_path_is_directory(tmp_path):
    with pytest.raises(UserError) as e:
        check_output_path(tmp_path)
    assert "is a directory" in _one_sentence(e)


def test_output_parent_missing(tmp_path):
    with pytest.raises(UserError) as e:
        check_output_path(tmp_path / "no" / "such" / "out.png")
    assert "does not exist" in _one_sentence(e)


def test_output_parent_is_a_file(tmp_path):
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(UserError) as e:
        check_output_path(tmp_path / "file" / "out.png")
    assert "is not a folder" in _one_sentence(e)


def test_output_parent_not_writable(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.geteuid() == 0:  # root may write anywhere: make access() answer as for a normal user
            real_access = os.access
            monkeypatch.setattr(
                fsutil.os,
                "access",
                lambda p, m: False if os.fspath(p) == os.fspath(folder) else real_access(p, m),
            )
        with pytest.raises(UserError) as e:
            check_output_path(folder / "out.png")
        assert "is not writable" in _one_sentence(e)
    finally:
        folder.chmod(0o755)


def test_output_same_as_input(tmp_path):
    content = tmp_path / "content.png"
    content.write_bytes(b"pixels")
    for same in (content, tmp_path / "." / "content.png", str(content)):
        with pytest.raises(UserError) as e:
            check_output_path(same, inputs=[tmp_path / "style.png", content])
        assert "same file as the input" in _one_sentence(e)


def test_output_same_as_input_through_links(tmp_path):
    content = tmp_path / "content.png"
    content.write_bytes(b"pixels")
    (tmp_path / "sym.png").symlink_to(content)
    os.link(content, tmp_path / "hard.png")
    for alias in ("sym.png", "hard.png"):
        with pytest.raises(UserError, match="same file"):
            check_output_path(tmp_path / alias, inputs=[content])


def test_output_same_as_missing_input_path(tmp_path):
    # Neither exists yet (the loader reports the missing input); the paths still coincide.
    with pytest.raises(UserError, match="same file"):
        check_output_path(tmp_path / "a.png", inputs=[str(tmp_path / "a.png")])


def test_output_folder_creates_parents_and_removes_them_again_when_the_body_fails(tmp_path):
    from minivgg.run.fsutil import output_folder

    with output_folder(tmp_path / "a" / "b") as folder:
        assert folder.is_dir()
    with pytest.raises(RuntimeError):
        with output_folder(tmp_path / "x" / "y"):
            raise RuntimeError("refused")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # x/y made and removed again
    with pytest.raises(RuntimeError):
        with output_folder(tmp_path / "a" / "b") as folder:
            (folder / "kept.png").write_bytes(b"x")
            raise RuntimeError("after writing")
    assert (tmp_path / "a" / "b" / "kept.png").exists()  # a folder that holds files stays
    (tmp_path / "f").write_text("a file")
    with pytest.raises(UserError, match="output folder .* is a file"):
        with output_folder(tmp_path / "f"):
            pass
    with pytest.raises(UserError, match="cannot use .* as the output folder"):
        with output_folder(tmp_path / "f" / "sub"):
            pass
