"""Files under data_dir: corpora written atomically, checkpoint directories resolved safely and
streamed as .tar.gz. Paths stored in rows are relative to data_dir; names never come from users."""
from __future__ import annotations

import logging
import os
import tarfile
import uuid
import zlib
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

CORPORA_DIR = "corpora"
# What a checkpoint needs to load alone; train_state.pt (a pickle) never leaves the server.
CHECKPOINT_FILES = ("model.safetensors", "model.json")


def resolve(data_dir: Path, relative: str) -> Path:
    """data_dir / relative, refusing anything that escapes data_dir (absolute paths, .., links)."""
    root = Path(data_dir).resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"path {relative!r} leaves the data directory")
    return path


def write_corpus(data_dir: Path, data: bytes) -> str:
    """Write data to corpora/<uuid>.txt via a temp name + rename; return the relative path."""
    folder = Path(data_dir) / CORPORA_DIR
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{uuid.uuid4().hex}.txt"
    tmp = folder / f".{name}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return f"{CORPORA_DIR}/{name}"


def remove(data_dir: Path, relative: str) -> None:
    try:
        resolve(data_dir, relative).unlink(missing_ok=True)
    except (OSError, ValueError):
        # The row is gone; an orphaned file wastes space but misleads nobody.
        log.warning("could not remove %s", relative, exc_info=True)


def checkpoint_files(data_dir: Path, relative_dir: str) -> list[Path] | None:
    """The files of a checkpoint directory to ship, or None if any is missing."""
    try:
        folder = resolve(data_dir, relative_dir)
    except ValueError:
        log.error("checkpoint path %r leaves the data directory", relative_dir)
        return None
    files = [folder / name for name in CHECKPOINT_FILES]
    return files if all(f.is_file() for f in files) else None


def stream_tar_gz(files: list[Path], folder_name: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    # An empty chunk would end a chunked HTTP response early; zlib often returns one.
    return (chunk for chunk in _tar_gz(files, folder_name, chunk_size) if chunk)


def _tar_gz(files: list[Path], folder_name: str, chunk_size: int) -> Iterator[bytes]:
    """Yield a .tar.gz of files (under folder_name/) chunk by chunk: nothing whole in memory or on disk.

    The tar format is simple enough to write by hand (header, data, zero padding to 512 bytes,
    two zero blocks at the end), which tarfile's writer, wanting a file object, cannot stream.
    """
    gzip = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: gzip header and trailer
    for path in files:
        info = tarfile.TarInfo(f"{folder_name}/{path.name}")
        stat = path.stat()
        info.size, info.mtime, info.mode = stat.st_size, int(stat.st_mtime), 0o644
        yield gzip.compress(info.tobuf(format=tarfile.PAX_FORMAT))
        with open(path, "rb") as f:
            while chunk := f.read(chunk_size):
                yield gzip.compress(chunk)
        yield gzip.compress(b"\0" * (-stat.st_size % tarfile.BLOCKSIZE))
    yield gzip.compress(b"\0" * (2 * tarfile.BLOCKSIZE)) + gzip.flush()
