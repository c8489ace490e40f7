"""The artifact backend's guarantees (extraction.backend), for every backend, and that the artifact functions routed
through it still write the same files, bytes and permissions.

A second backend (an object store) is one more entry in ``BACKENDS``; the tests below the local-only marker are
about filesystem specifics (inodes, temp files, renames).
"""

from __future__ import annotations

import errno
import io
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from common.fsio import TMP_SUFFIX, atomic_write_bytes
from extraction.artifacts import (
    cache_index_path,
    lookup_cache,
    read_artifact,
    read_manifest,
    record_cache,
    write_artifact,
    write_manifest,
)
from extraction.backend import (
    ArtifactNotFound,
    BadArtifactKey,
    LocalFilesystemBackend,
    check_key,
    content_etag,
)
from extraction.components.base import empty_like_schema
from extraction.schemas import SCHEMAS
from extraction.store import SharedFilesystemStore

BACKENDS = {"local": lambda tmp_path: LocalFilesystemBackend(tmp_path / "store")}
BAD_KEYS = ["/etc/passwd", "../outside", "a/../../outside", "a//b", "", "./a", "a/./b", "a\\b", "a/"]


@pytest.fixture(params=sorted(BACKENDS))
def backend(request, tmp_path):
    return BACKENDS[request.param](tmp_path)


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".") and p.name.endswith(TMP_SUFFIX)]


# ---- every backend ------------------------------------------------------------------------------------------


def test_publish_read_round_trip_and_overwrite(backend):
    backend.publish("yt/v/r1/a.npz", b"first")
    assert backend.exists("yt/v/r1/a.npz")
    assert backend.read("yt/v/r1/a.npz") == b"first"
    backend.publish("yt/v/r1/a.npz", b"second, longer")
    with backend.open("yt/v/r1/a.npz") as fh:
        assert fh.read() == b"second, longer"
    assert backend.etag("yt/v/r1/a.npz") == content_etag(b"second, longer")


def test_missing_keys_say_artifact_not_found(backend):
    for op in (backend.read, backend.open, backend.etag):
        with pytest.raises(ArtifactNotFound) as err:
            op("yt/v/none.npz")
        assert err.value.code == "artifact_not_found"
        assert isinstance(err.value, FileNotFoundError), "callers treating a vanished file as absent keep working"
    assert not backend.exists("yt/v/none.npz")
    assert backend.delete_if_unchanged("yt/v/none.npz", content_etag(b"")) is False
    with pytest.raises(ArtifactNotFound):
        backend.link_or_copy("yt/v/none.npz", "yt/v/dst.npz")
    assert not backend.exists("yt/v/dst.npz")


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_rejected_before_any_io(backend, tmp_path, key):
    ops = [lambda: backend.publish(key, b"x"), lambda: backend.read(key), lambda: backend.exists(key),
           lambda: backend.put_if_absent(key, b"x"), lambda: backend.delete_if_unchanged(key, "t"),
           lambda: backend.link_or_copy(key, "ok"), lambda: backend.link_or_copy("ok", key)]
    backend.publish("ok", b"x")
    for op in ops:
        with pytest.raises(BadArtifactKey) as err:
            op()
        assert err.value.code == "bad_artifact_key"
    assert not (tmp_path / "outside").exists() and sorted(backend.list()) == ["ok"]


def test_a_reader_never_sees_a_partial_publish(backend):
    old, new = b"o" * (4 << 20), b"n" * (6 << 20)
    backend.publish("big", old)
    seen: set[bytes] = set()
    bad: list[int] = []
    done = threading.Event()

    def read_loop() -> None:
        while not done.is_set():
            data = backend.read("big")
            if data not in (old, new):
                bad.append(len(data))
            seen.add(data[:1])

    reader = threading.Thread(target=read_loop)
    reader.start()
    try:
        for i in range(30):
            backend.publish("big", new if i % 2 == 0 else old)
    finally:
        done.set()
        reader.join()
    assert bad == [], f"partial reads of sizes {bad[:5]}"
    assert seen, "the reader read at least once"
    assert backend.list() == ["big"], "no temp object is left behind or listed"


def test_put_if_absent_has_exactly_one_winner(backend):
    n = 12
    for round_ in range(5):
        key = f"yt/v/.lease-{round_}"
        barrier = threading.Barrier(n)
        wins: list[int] = []

        def contend(i: int, key=key, barrier=barrier, wins=wins) -> None:
            barrier.wait()
            if backend.put_if_absent(key, str(i).encode() * 1000):
                wins.append(i)

        threads = [threading.Thread(target=contend, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1, f"round {round_}: winners {wins}"
        assert backend.read(key) == str(wins[0]).encode() * 1000, "the winner's content, whole"
    assert backend.put_if_absent("yt/v/.lease-0", b"late") is False


def test_delete_if_unchanged_keeps_changed_content(backend):
    backend.publish("k", b"v1")
    token = content_etag(backend.read("k"))
    backend.publish("k", b"v2")  # someone else changed it after we read
    assert backend.delete_if_unchanged("k", token) is False
    assert backend.read("k") == b"v2"
    assert backend.delete_if_unchanged("k", backend.etag("k")) is True
    assert not backend.exists("k")
    assert backend.delete_if_unchanged("k", token) is False, "gone: False, not an exception"


def test_link_or_copy_gives_the_same_bytes_and_list_is_by_folder(backend):
    backend.publish("yt/v/r1/a.npz", b"artifact")
    backend.link_or_copy("yt/v/r1/a.npz", "yt/v/r2/a.npz")
    assert backend.read("yt/v/r2/a.npz") == b"artifact"
    backend.publish("yt/w/r1/a.npz", b"other")
    assert backend.list("yt/v") == ["yt/v/r1/a.npz", "yt/v/r2/a.npz"]
    assert backend.list("yt/v/") == backend.list("yt/v")
    assert backend.list() == ["yt/v/r1/a.npz", "yt/v/r2/a.npz", "yt/w/r1/a.npz"]
    assert backend.list("yt/none") == []


# ---- the local filesystem backend -------------------------------------------------------------------------------


def test_check_key_accepts_relative_posix_paths():
    assert check_key("yt/v/cache/k.json") == "yt/v/cache/k.json"
    assert check_key(".lease") == ".lease"
    with pytest.raises(BadArtifactKey):
        check_key(None)  # type: ignore[arg-type]


def test_local_link_shares_the_inode(tmp_path):
    b = LocalFilesystemBackend(tmp_path)
    b.publish("r1/a.npz", b"abc")
    b.link_or_copy("r1/a.npz", "r2/a.npz")
    src, dst = (tmp_path / "r1/a.npz").stat(), (tmp_path / "r2/a.npz").stat()
    assert src.st_ino == dst.st_ino and dst.st_nlink == 2
    assert _temp_files(tmp_path) == []


def test_local_copy_fallback_when_links_fail(tmp_path, monkeypatch):
    b = LocalFilesystemBackend(tmp_path)
    b.publish("r1/a.npz", b"abc" * 1000)

    def no_link(*_a, **_k):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    b.link_or_copy("r1/a.npz", "r2/a.npz")
    assert (tmp_path / "r2/a.npz").read_bytes() == b"abc" * 1000
    assert (tmp_path / "r1/a.npz").stat().st_ino != (tmp_path / "r2/a.npz").stat().st_ino
    assert _temp_files(tmp_path) == []


def test_local_publish_is_a_rename_of_a_complete_temp_file(tmp_path, monkeypatch):
    b = LocalFilesystemBackend(tmp_path)
    renames: list[tuple[Path, bytes, Path]] = []
    real_replace = os.replace

    def spy(src, dst):
        renames.append((Path(src), Path(src).read_bytes(), Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    b.publish("yt/v/m.json", b"{}" * 100)
    ((src, content, dst),) = renames
    assert dst == tmp_path / "yt/v/m.json" and src.parent == dst.parent, "same folder: an atomic rename"
    assert src.name.startswith(".m.json.") and src.name.endswith(TMP_SUFFIX)
    assert content == b"{}" * 100, "the temp file was complete before it was renamed"
    assert _temp_files(tmp_path) == []


def test_local_key_of_maps_paths_under_root_only(tmp_path):
    b = LocalFilesystemBackend(tmp_path / "store")
    assert b.key_of(tmp_path / "store/yt/v/r1/a.npz") == "yt/v/r1/a.npz"
    assert b.key_of(tmp_path / "store/yt/x/../v/a.npz") == "yt/v/a.npz"
    with pytest.raises(BadArtifactKey):
        b.key_of(tmp_path / "elsewhere/a.npz")


def test_local_delete_if_unchanged_race_has_one_winner(tmp_path):
    b = LocalFilesystemBackend(tmp_path)
    b.publish("k", b"v")
    token, barrier, results = b.etag("k"), threading.Barrier(8), []

    def delete() -> None:
        barrier.wait()
        results.append(b.delete_if_unchanged("k", token))

    threads = [threading.Thread(target=delete) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    assert list(tmp_path.iterdir()) == [], "nothing left aside"


# ---- extraction.artifacts through the backend: same files, same bytes, same permissions -------------------------


def _meta(component: str) -> dict:
    return dict(platform_id="yt", video_id="v", run_id="r1", component=component, producer_version="1.0.0",
                schema_version=SCHEMAS[component].version, status="ok", model_signature="none", coverage=1.0,
                config_hash="c", sampling_policy_version="n/a", seed=0, runtime_env_hash="e", cache_key="k1",
                created_at="2026-01-01T00:00:00Z")


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_artifact_files_are_byte_identical_to_the_direct_writes(tmp_path):
    root = tmp_path / "store"
    arrays = empty_like_schema("visual")
    dst = write_artifact(root / "yt/v/r1/visual.npz", arrays, _meta("visual"), root=root)
    reference = io.BytesIO()
    from extraction.schemas import ArtifactMeta

    np.savez(reference, meta=np.array(ArtifactMeta.model_validate(_meta("visual")).model_dump_json()),
             **{k: np.asarray(v) for k, v in arrays.items()})
    assert dst.read_bytes() == reference.getvalue()
    atomic_write_bytes(tmp_path / "ref", b"x")
    assert _mode(dst) == _mode(tmp_path / "ref"), "the permissions common.fsio gives every file"
    assert read_artifact(dst)[1].cache_key == "k1"

    record_cache(root, "yt", "v", "k1", dst)
    idx = cache_index_path(root, "yt", "v", "k1")
    assert idx.read_bytes() == json.dumps({"artifact": "yt/v/r1/visual.npz"}, indent=2, sort_keys=True).encode()
    assert _mode(idx) == _mode(tmp_path / "ref")
    assert lookup_cache(root, "yt", "v", "k1") == dst
    assert lookup_cache(root, "yt", "v", "k2") is None


def test_cache_index_outside_the_store_is_no_hit(tmp_path):
    root = tmp_path / "store"
    (tmp_path / "secret.npz").write_bytes(b"x")
    atomic_write_bytes(cache_index_path(root, "yt", "v", "k"), json.dumps({"artifact": "../secret.npz"}).encode())
    assert lookup_cache(root, "yt", "v", "k", verify=False) is None
    with pytest.raises(ValueError):
        record_cache(root, "yt", "v", "k", tmp_path / "secret.npz")


def test_manifest_write_and_annotation_go_through_the_backend(tmp_path):
    root = tmp_path / "store"
    man = {"platform_id": "yt", "video_id": "v", "components": {"visual": {"status": "ok"}}, "run_id": "r1"}
    path = write_manifest(root / "yt/v/r1", man)
    assert path.read_bytes() == json.dumps(man, indent=2, sort_keys=True, default=str).encode()
    assert read_manifest(root / "yt/v/r1") == man
    out = SharedFilesystemStore(root).annotate_manifest(path, {"node": {"node_id": "n1"},
                                                               "components": {"visual": {"node_id": "n1"}}})
    assert out["components"]["visual"] == {"status": "ok", "node_id": "n1"} and out["node"] == {"node_id": "n1"}
    assert json.loads(path.read_bytes()) == out
    assert _temp_files(root) == []
    assert LocalFilesystemBackend(root).list() == ["yt/v/r1/manifest.json"], "no stray file beside it"
    with pytest.raises(BadArtifactKey):
        SharedFilesystemStore(root).annotate_manifest(tmp_path / "elsewhere.json", {})


def test_runner_cache_hit_links_through_the_backend_and_a_vanished_hit_is_recomputed(tmp_path):
    from types import SimpleNamespace

    from extraction.runner import _reuse, _VideoState

    root = tmp_path / "store"
    hit = write_artifact(root / "yt/v/r1/visual.npz", empty_like_schema("visual"), _meta("visual"), root=root)
    run, comp = SimpleNamespace(out_root=root), SimpleNamespace(name="visual")
    (root / "yt/v/r2").mkdir(parents=True)
    entry = {"cache_key": "k1"}
    produced = _reuse(run, comp, _VideoState(), hit, root / "yt/v/r2/visual.npz", entry)
    assert produced is not None and produced.path == root / "yt/v/r2/visual.npz"
    assert produced.path.stat().st_ino == hit.stat().st_ino, "a hard link, not a second copy"
    assert entry["cache_hit"] is True and entry["source_artifact"] == "yt/v/r1/visual.npz"
    hit.unlink()  # a GC removed it between the lookup and the link
    assert _reuse(run, comp, _VideoState(), hit, root / "yt/v/r3/visual.npz", {"cache_key": "k1"}) is None
