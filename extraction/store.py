"""The artifact store several machines share: where artifacts live, and who may compute a video's keys now.

:class:`ArtifactStore` is what an executor that spreads videos over machines needs from the store beyond
``extraction.artifacts`` (which reads and writes NPZs, manifests and the cache index under a root, atomically):
a root every node sees, a *lease* per video so that two nodes never compute the same cache keys at once, and
annotating a manifest after the runner wrote it. :class:`SharedFilesystemStore` implements it on a filesystem all
nodes mount (NFS, a shared volume, or one machine's disk for nodes on one machine).

The bytes themselves -- NPZs, manifests, the cache index, and the manifest annotation here -- are written and
read through the store's ``backend``, an :class:`extraction.backend.ArtifactBackend` (atomic publish, conditional
create, conditional delete, link-or-copy, list), today :class:`~extraction.backend.LocalFilesystemBackend` on
``root``. An object store (``s3://...``) is a second backend behind the same protocol; the runner still names
artifacts by their paths under ``root`` (the local backend maps them to keys), which is what such a step changes.

A lease is a file ``<root>/<platform_id>/<video_id>/.lease`` created with ``O_CREAT | O_EXCL`` (atomic on POSIX
filesystems, also on NFSv3+), holding who holds it. Every key of a video's components includes the video id, so
one lease per video covers all of them. A lease left by a holder that is known to be gone (its node died: the
executor says so with ``steal_from``) or older than ``ttl_s`` is broken by renaming it aside -- a rename that only
one contender can win -- and taken again with ``O_EXCL``.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from common.clock import now_iso
from common.errors import TrendflowError
from common.fsio import json_bytes
from extraction.backend import ArtifactBackend, LocalFilesystemBackend

LEASE_NAME = ".lease"
DEFAULT_LEASE_TTL_S = 6 * 3600.0  # a video that takes longer than this is not a video this extractor handles


class LeaseHeld(TrendflowError):
    code = "lease_held"


@dataclass(frozen=True)
class Lease:
    """Who computes a video's artifacts now."""

    holder: str  # the node (Ray node id) holding it
    token: str  # this acquisition (a node may hold leases of several videos)
    run_id: str
    pid: int
    acquired_at: str
    acquired_unix: float


class ArtifactStore(Protocol):
    """What an executor on several machines needs from the artifact store (see the module docstring)."""

    root: Path
    backend: ArtifactBackend

    def lease(self, platform_id: str, video_id: str, holder: str, run_id: str, *,
              steal_from: Iterable[str] = ()) -> contextlib.AbstractContextManager[Lease]: ...

    def annotate_manifest(self, manifest_path: Path, update: Mapping[str, Any]) -> dict[str, Any]: ...


class SharedFilesystemStore:
    """:class:`ArtifactStore` on a filesystem every node mounts at the same path."""

    def __init__(self, root: Path, *, ttl_s: float = DEFAULT_LEASE_TTL_S, wait_s: float = 600.0,
                 poll_s: float = 0.2) -> None:
        self.root = Path(root)
        self.backend = LocalFilesystemBackend(self.root)
        self.ttl_s = ttl_s
        self.wait_s = wait_s
        self.poll_s = poll_s

    def lease_path(self, platform_id: str, video_id: str) -> Path:
        return self.root / platform_id / video_id / LEASE_NAME

    def current(self, platform_id: str, video_id: str) -> Lease | None:
        """The lease on a video now (None when free or unreadable mid-write)."""
        try:
            return Lease(**json.loads(self.lease_path(platform_id, video_id).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def _try_take(self, path: Path, lease: Lease) -> bool:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(lease), fh)
            fh.flush()
            os.fsync(fh.fileno())
        return True

    def _break(self, path: Path, seen: Lease | None) -> None:
        aside = path.with_name(f"{LEASE_NAME}.broken-{uuid.uuid4().hex[:8]}")
        with contextlib.suppress(FileNotFoundError):
            os.rename(path, aside)  # only one contender's rename finds the file
            moved = json.loads(aside.read_text()) if aside.exists() else {}
            if seen is not None and moved.get("token") != seen.token:  # a newer lease: put it back
                os.rename(aside, path)
                return
        aside.unlink(missing_ok=True)

    @contextlib.contextmanager
    def lease(self, platform_id: str, video_id: str, holder: str, run_id: str, *,
              steal_from: Iterable[str] = ()) -> Iterator[Lease]:
        """Hold the video's lease while the block runs; wait (up to ``wait_s``) while a live holder has it.

        Args:
            holder: this node's id.
            run_id: recorded in the lease, for people reading it.
            steal_from: holders known to be gone (a dead node): their lease is broken at once.

        Raises:
            LeaseHeld: another holder kept the lease for longer than ``wait_s``.
        """
        path = self.lease_path(platform_id, video_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        gone = set(steal_from)
        mine = Lease(holder=holder, token=uuid.uuid4().hex, run_id=run_id, pid=os.getpid(), acquired_at=now_iso(),
                     acquired_unix=time.time())
        deadline = time.monotonic() + self.wait_s
        while not self._try_take(path, mine):
            seen = self.current(platform_id, video_id)
            if seen is not None and (seen.holder in gone or time.time() - seen.acquired_unix > self.ttl_s):
                self._break(path, seen)
                continue
            if time.monotonic() > deadline:
                raise LeaseHeld(f"{platform_id}/{video_id} is being extracted by {seen.holder if seen else '?'} "
                                f"(run {seen.run_id if seen else '?'}) for more than {self.wait_s:.0f}s",
                                holder=seen.holder if seen else None)
            time.sleep(self.poll_s)
        try:
            yield mine
        finally:
            if (now := self.current(platform_id, video_id)) is not None and now.token == mine.token:
                path.unlink(missing_ok=True)

    def annotate_manifest(self, manifest_path: Path, update: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``update`` into a manifest (``components`` merged per component) and publish it again (readers
        see the runner's manifest or the annotated one). ``manifest_path`` is a path under ``root``."""
        manifest_key = self.backend.key_of(manifest_path)
        manifest = json.loads(self.backend.read(manifest_key))
        for key, value in update.items():
            if key == "components":
                for comp, extra in value.items():
                    manifest["components"].setdefault(comp, {}).update(extra)
            else:
                manifest[key] = value
        self.backend.publish(manifest_key, json_bytes(manifest))
        return manifest
