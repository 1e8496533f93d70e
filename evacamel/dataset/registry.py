"""Known datasets: where their archives are and how to verify them.

An entry lists remote files (URL or Google Drive id) with their sha256/md5. An entry
whose hashes are unknown is marked ``verified=False``; downloading it needs an explicit
``allow_unverified=True`` (``evacamel download NAME --allow-unverified``), because
nothing could then tell a tampered or truncated archive from the real one.

``seed-1024`` is the original project's dataset as its README published it (an S3
bucket, 10 zip parts of 4,000 composites each, the backgrounds, and the index). Its
hashes were never published, and the bucket may be gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["RemoteFile", "DatasetEntry", "REGISTRY", "get_entry", "registry_table"]

_SEED_BUCKET = "https://eva-final-project-dataset.s3-ap-southeast-2.amazonaws.com"


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file."""

    source: str
    """``https://...`` URL or ``gdrive:<id>``."""
    filename: str
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    extract: bool = True
    """Extract it (zip/tar) into the dataset folder, or copy it there as is."""

    @property
    def verified(self) -> bool:
        """A hash is known."""
        return bool(self.sha256 or self.md5)

    @property
    def folder(self) -> str:
        """The sub-folder of the dataset an extracted archive goes to: its name without
        suffixes (``bg_cropped.zip`` -> ``bg_cropped``)."""
        return self.filename.split(".")[0] or self.filename


@dataclass(frozen=True)
class DatasetEntry:
    """A named dataset: its files and what it is."""

    name: str
    description: str
    files: tuple[RemoteFile, ...] = field(default_factory=tuple)
    layout: str = "evacamel"
    """``"evacamel"`` (our on-disk format) or ``"seed"`` (the seed's: 8-bit JPEG
    masks and min-max DenseDepth JPEGs; read it with your own code)."""

    @property
    def verified(self) -> bool:
        """All files have a known hash."""
        return all(f.verified for f in self.files)


REGISTRY: dict[str, DatasetEntry] = {
    "seed-1024": DatasetEntry(
        name="seed-1024",
        description="the seed's 40,000 composites at 1024 px (S3, 2020); hashes unknown, "
                    "may no longer be online",
        layout="seed",
        files=(
            RemoteFile(f"{_SEED_BUCKET}/bg_cropped.zip", "bg_cropped.zip"),
            *(RemoteFile(f"{_SEED_BUCKET}/dataset_{i}.zip", f"dataset_{i}.zip", extract=False)
              for i in range(10)),
            RemoteFile(f"{_SEED_BUCKET}/dataset_info.csv", "dataset_info.csv", extract=False),
        ),
    ),
}
"""Known datasets by name. The seed's parts are kept zipped (``extract=False``): the
zip dataset reads members straight from them, so nothing needs unpacking."""


def get_entry(name: str) -> DatasetEntry:
    """The registry entry ``name``.

    Raises:
        KeyError: unknown name; the message lists the known ones.
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(REGISTRY)} "
                       f"(or give a URL / gdrive:ID with --sha256)") from None


def registry_table() -> str:
    """One line per known dataset: name, files, verified or not, description."""
    lines = []
    for e in REGISTRY.values():
        lines.append(f"{e.name:<12} {len(e.files):>3} files  "
                     f"{'verified  ' if e.verified else 'UNVERIFIED'}  {e.description}")
    return "\n".join(lines)
