"""Output files follow the umask (not mkstemp's 0600) and are written whole or not at all."""

import os
import stat
import sys

import pytest

from cryoplan.cli.app import main
from cryoplan.cli.assess import bundled_example_cases
from cryoplan.output import atomic_directory, atomic_path, current_umask, write_json, write_text


@pytest.fixture
def umask():
    saved = os.umask(0o022)
    os.umask(saved)

    def set_mask(mask):
        os.umask(mask)

    yield set_mask
    os.umask(saved)


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600), (0o027, 0o640)])
def test_written_files_follow_the_umask(mask, expected, umask, tmp_path):
    umask(mask)
    assert current_umask() == mask
    write_text(tmp_path / "a.txt", "x")
    write_json(tmp_path / "sub" / "b.json", {"schema_version": 1})
    assert mode(tmp_path / "a.txt") == expected and mode(tmp_path / "sub" / "b.json") == expected


def test_atomic_directory_outputs_follow_the_umask(umask, tmp_path):
    umask(0o022)
    with atomic_directory(tmp_path / "out") as folder:
        write_text(folder / "plan.json", "{}")
        (folder / "figures").mkdir()
    assert mode(tmp_path / "out" / "plan.json") == 0o644 and mode(tmp_path / "out" / "figures") == 0o755


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "c.json") as partial:
        partial.write_text("half a docu")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_assess_output_is_readable_by_the_group(umask, tmp_path, monkeypatch, capsys):
    umask(0o022)
    target = tmp_path / "assessment.json"
    monkeypatch.setattr(
        sys, "argv", ["cryoplan", "assess", str(bundled_example_cases()[0]), "-f", "json", "-o", str(target)]
    )
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 0 and mode(target) == 0o644
