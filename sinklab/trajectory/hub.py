"""Hub revisions of a series: found in the local Hugging Face cache, downloaded where allowed, and dropped
again after measuring when this command downloaded them (never a revision that was in the cache before).

OUT/downloads.json lists the revisions this command started to download, written before each download: a
download cut short by Ctrl-C or kill -9 is finished (and later dropped) by the next run, and a revision
that was cached before the command never enters it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from sinklab.errors import SinklabError
from sinklab.io import atomic_write_json
from sinklab.trajectory.series import Checkpoint

TRUE = ("1", "true", "yes", "on")
# The files a measurement reads: config, tokenizer, safetensors weights (.bin only with --allow-pickle).
PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken"]


def cache_dir() -> Path:
    """The hub cache as the environment says now (HF_HUB_CACHE, HF_HOME/hub, else huggingface_hub's)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def offline() -> bool:
    from huggingface_hub import constants

    return os.environ.get("HF_HUB_OFFLINE", "").lower() in TRUE or bool(constants.HF_HUB_OFFLINE)


def repo_dir(repo: str) -> Path:
    return cache_dir() / ("models--" + repo.replace("/", "--"))


def cached_snapshot(repo: str, revision: str) -> Path | None:
    """The cached snapshot folder of repo@revision (a branch / tag ref or a commit hash), or None."""
    root = repo_dir(repo)
    ref = root / "refs" / revision
    commit = ref.read_text().strip() if ref.is_file() else None
    if commit is None and re.fullmatch(r"[0-9a-f]{40}", revision):
        commit = revision
    snapshot = root / "snapshots" / commit if commit else None
    return snapshot if snapshot is not None and (snapshot / "config.json").is_file() else None


def cached_revisions(repo: str) -> list[str]:
    refs = repo_dir(repo) / "refs"
    return sorted(p.name for p in refs.iterdir()) if refs.is_dir() else []


class Downloads:
    """OUT/downloads.json: the revisions this command downloaded (or began to) and has not dropped yet."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.names: list[str] = json.loads(path.read_text()) if path.is_file() else []

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def add(self, name: str) -> None:
        if name not in self.names:
            self.names.append(name)
            atomic_write_json(self.path, self.names)

    def remove(self, name: str) -> None:
        if name in self.names:
            self.names.remove(name)
            atomic_write_json(self.path, self.names)


def _not_found(ckpt: Checkpoint, why: str) -> SinklabError:
    cached = cached_revisions(ckpt.repo or "")
    listed = f"; cached revisions of {ckpt.repo}: {', '.join(cached)}" if cached else ""
    return SinklabError(
        f"unknown revision {ckpt.revision!r} of {ckpt.repo} ({why}){listed}; accepted: a branch, tag or "
        "commit of the repo (Pythia's are step0, step1, ..., step143000)"
    )


def check_cached(series: list[Checkpoint]) -> None:
    """Offline, every hub revision must be cached: checked before anything is measured."""
    if offline():
        for ckpt in series:
            if ckpt.on_hub and cached_snapshot(ckpt.repo or "", ckpt.revision or "") is None:
                raise _not_found(ckpt, "not in the local hub cache, and HF_HUB_OFFLINE is set")


def fetch(ckpt: Checkpoint, downloads: Downloads, allow_pickle: bool = False) -> Path:
    """The local folder of a hub revision: the cached snapshot, or a download (recorded in `downloads`)."""
    assert ckpt.repo is not None and ckpt.revision is not None
    cached = cached_snapshot(ckpt.repo, ckpt.revision)
    if offline():
        if cached is None:
            raise _not_found(ckpt, "not in the local hub cache, and HF_HUB_OFFLINE is set")
        return cached
    if cached is not None and ckpt.source not in downloads:
        return cached  # in the cache before this command: used as it is, never dropped
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    downloads.add(ckpt.source)  # before the download: a cut-short one is finished and dropped next time
    patterns = PATTERNS + (["*.bin"] if allow_pickle else [])
    try:
        path = snapshot_download(
            ckpt.repo, revision=ckpt.revision, cache_dir=cache_dir(), allow_patterns=patterns
        )
    except RevisionNotFoundError:
        downloads.remove(ckpt.source)
        raise _not_found(ckpt, "the hub has no such revision") from None
    except RepositoryNotFoundError:
        downloads.remove(ckpt.source)
        raise SinklabError(f"{ckpt.repo} is not a hub repository (or a gated / private one)") from None
    except Exception as err:  # no network, a timeout: nothing was downloaded that could be kept
        if cached_snapshot(ckpt.repo, ckpt.revision) is None:
            downloads.remove(ckpt.source)
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise FileNotFoundError(f"cannot download {ckpt.source} ({type(err).__name__}: {first})") from err
    return Path(path)


def drop(ckpt: Checkpoint, downloads: Downloads) -> bool:
    """Delete a revision this command downloaded from the hub cache (blobs other revisions share stay)."""
    if ckpt.source not in downloads or ckpt.path is None:
        return False
    from huggingface_hub import scan_cache_dir

    commit = Path(ckpt.path).name
    info = scan_cache_dir(cache_dir())
    hashes = [
        rev.commit_hash
        for repo in info.repos
        if repo.repo_id == ckpt.repo
        for rev in repo.revisions
        if rev.commit_hash == commit
    ]
    if hashes:
        info.delete_revisions(*hashes).execute()
    downloads.remove(ckpt.source)
    return bool(hashes)
