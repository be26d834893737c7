"""The data cache: leftovers of killed writers go, a damaged tokenizer is rebuilt, first use is announced."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from sinklab.data.cache import STALE_SECONDS, remove_stale_temporaries
from sinklab.data.pipeline import prepare_data
from sinklab.data.tokenizer import load_bpe
from tests.data.test_corpus_tokenizer import _data_cfg, make_docs, write_jsonl


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporaries_of_dead_writers_are_removed(tmp_path):
    dead, alive = _dead_pid(), os.getpid()
    tokens = tmp_path / "tokens" / "0123456789abcdef"
    tokenizers = tmp_path / "tokenizers"
    tokens.mkdir(parents=True)
    tokenizers.mkdir()
    gone = [tokens / f".train.bin.{dead}.tmp", tokenizers / f".bpe-300-0123.{dead}.tmp"]
    kept = [
        tokens / f".validation.bin.{alive}.tmp",  # a writer at work
        tokens / ".train.bin.json.k3x_9q2a.tmp",  # an atomic write (tempfile name), recent
        tokens / "train.bin",
    ]
    old = tokens / ".train.bin.json.zz1_8w7b.tmp"  # the same, but left a day ago
    (tokenizers / f".bpe-300-0123.{dead}.tmp").mkdir()
    (tokenizers / f".bpe-300-0123.{dead}.tmp" / "vocab.json").write_text("{}")
    for path in [gone[0], *kept, old]:
        path.write_bytes(b"x")
    past = time.time() - STALE_SECONDS - 60
    os.utime(old, (past, past))
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([*gone, old])
    assert all(p.exists() for p in kept) and not any(p.exists() for p in [*gone, old])


def test_pipeline_clears_leftovers_and_says_what_it_builds(tmp_path, capsys):
    path = write_jsonl(tmp_path / "c.jsonl", make_docs(80))
    cfg = _data_cfg(path, tmp_path)
    prepare_data(cfg, batch_size=4, seed=0)
    err = capsys.readouterr().err
    assert "training a 300-token BPE tokenizer on the" in err and str(path) in err and "first use" in err
    assert "tokenising the train split" in err and "tokenising the validation split" in err
    # a tokenisation killed with -9 left its temporary file
    (entry,) = (tmp_path / "cache" / "tokens").iterdir()
    leftover = entry / f".train.bin.{_dead_pid()}.tmp"
    leftover.write_bytes(b"\0" * 10)
    prepare_data(cfg, batch_size=4, seed=0)
    assert not leftover.exists()
    assert capsys.readouterr().err == ""  # everything cached: nothing to announce


def test_a_corrupt_cached_tokenizer_is_rebuilt_naming_it(tmp_path, capsys):
    docs = make_docs(50)
    tok = load_bpe(iter(docs), "fp1", 300, 10**6, tmp_path, corpus="test")
    capsys.readouterr()
    path = tmp_path / "tokenizers" / tok.fingerprint / "tokenizer.json"
    path.write_text('{"version": "1.0", "trunc')
    again = load_bpe(iter(docs), "fp1", 300, 10**6, tmp_path, corpus="test")
    err = capsys.readouterr().err
    assert f"the cached tokenizer {path} is unreadable" in err and "rebuilding it" in err
    assert again.encode_batch(["the cat sat"]) == tok.encode_batch(["the cat sat"])
