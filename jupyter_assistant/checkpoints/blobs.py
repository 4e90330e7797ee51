"""File contents kept by their SHA-256: ``<root>/<2 hex>/<62 hex>``, written once, never edited.

Content-addressed, so a file that did not change between turns costs no space, and a checkpoint
of an unchanged folder writes nothing. Each blob is written to a temporary file and renamed into
place: a blob that exists is complete.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import tempfile
from pathlib import Path

CHUNK = 1 << 20


def _leftover(target: Path) -> str:
    return f".{target.name}.assistant-restore-"


def remove_leftovers(target: Path) -> None:
    """What a restore killed midway left beside ``target`` (a partial copy, never renamed)."""
    with contextlib.suppress(OSError):
        for stale in target.parent.glob(glob.escape(_leftover(target)) + "*"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


class BlobStore:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a SHA-256 digest: {digest!r}")
        return self.root / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def put_file(self, source: Path | str) -> str:
        """Keep ``source``'s content (one read: hashed while copied); its digest."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor, temporary = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        try:
            digest = hashlib.sha256()
            with open(source, "rb") as reader, os.fdopen(descriptor, "wb") as writer:
                while chunk := reader.read(CHUNK):
                    digest.update(chunk)
                    writer.write(chunk)
            name = digest.hexdigest()
            final = self.path(name)
            if final.is_file():
                os.unlink(temporary)
            else:
                final.parent.mkdir(exist_ok=True, mode=0o700)
                os.replace(temporary, final)
            return name
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    def put_bytes(self, content: bytes) -> str:
        """Keep ``content``; its digest."""
        name = hashlib.sha256(content).hexdigest()
        final = self.path(name)
        if final.is_file():
            return name
        final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor, temporary = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        try:
            with os.fdopen(descriptor, "wb") as writer:
                writer.write(content)
            os.replace(temporary, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        return name

    def read(self, digest: str, limit: int | None = None) -> bytes:
        with open(self.path(digest), "rb") as file:
            return file.read() if limit is None else file.read(limit)

    def copy_to(self, digest: str, target: Path, mode: int) -> None:
        """Write the blob to ``target`` whole or not at all (a temporary file beside it,
        flushed to disk, then renamed over it): a crash leaves the old file or the new one."""
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(target)
        descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=_leftover(target))
        try:
            with open(self.path(digest), "rb") as reader, os.fdopen(descriptor, "wb") as writer:
                while chunk := reader.read(CHUNK):
                    writer.write(chunk)
                writer.flush()
                os.fsync(writer.fileno())
            os.chmod(temporary, mode & 0o7777)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    def sweep(self, keep: set[str]) -> int:
        """Remove the blobs no checkpoint refers to any more; how many went."""
        removed = 0
        with contextlib.suppress(FileNotFoundError):
            for folder in self.root.iterdir():
                if not folder.is_dir():
                    continue
                for blob in folder.iterdir():
                    if folder.name + blob.name not in keep:
                        with contextlib.suppress(FileNotFoundError):
                            blob.unlink()
                            removed += 1
        return removed
