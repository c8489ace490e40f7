"""inference.access.PathPolicy on a real temp tree (symlinks, `..`, percent-encoding) and check_text."""

from __future__ import annotations

from pathlib import Path

import pytest

from inference.access import Limits, PathNotAllowed, PathPolicy, check_text


def test_paths_resolve_inside_the_roots_only(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "a").mkdir(parents=True)
    outside.mkdir()
    (root / "out").symlink_to(outside, target_is_directory=True)
    (root / "loop").symlink_to(root / "loop")
    policy = PathPolicy.from_config([str(root)], Path)
    assert policy.check(str(root / "a" / "x.mp4"), "video_path") == (root / "a" / "x.mp4").resolve()
    assert policy.check(f"{root}/a/../a/x.mp4", "video_path") == (root / "a" / "x.mp4").resolve()
    for bad in (str(root / "out" / "x"), f"{root}/../outside/x", f"{root}/%2e%2e/outside/x", "x.mp4", "",
                "/etc/passwd", f"{root}/a\x00/x", f"{root}/" + "n" * 256):
        with pytest.raises(PathNotAllowed) as err:
            policy.check(bad, "video_path")
        assert err.value.code == "path_not_allowed", bad
    # a symlink loop inside the root stays inside (reading it later fails: path_unreadable, a 404)
    assert policy.check(str(root / "loop" / "x"), "video_path").is_relative_to(root.resolve())
    with pytest.raises(PathNotAllowed) as err:
        policy.check(5, "artifacts_dir")
    assert err.value.details["errors"][0]["code"] == "invalid_type"


def test_check_text_names_each_long_field() -> None:
    limits = Limits(max_text_chars=10)
    meta = {"title": "x" * 11, "description": "short", "channel": {"name": "y" * 20}, "views_snapshot1": 10 ** 12}
    assert [e["field"] for e in check_text(meta, limits)] == ["metadata.title", "metadata.channel.name"]
