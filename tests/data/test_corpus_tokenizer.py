"""Corpora (stdlib, local files, HF datasets from a local folder), the cached BPE and the data pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sinklab.data import tokenizer as tokmod
from sinklab.data.config import DataConfig
from sinklab.data.corpus import FileCorpus, StdlibCorpus, load_corpus, split_of
from sinklab.data.pipeline import prepare_data
from sinklab.data.tokenizer import load_bpe, load_hf_tokenizer

WORDS = "the cat sat on the mat while a dog ran after the red ball in the park".split()  # noqa: SIM905


def make_docs(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(20, 60)))) for _ in range(n)]


def write_jsonl(path, docs):
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    return path


def test_split_is_a_stable_hash():
    keys = [f"pkg/mod{i}.py" for i in range(2000)]
    val = [k for k in keys if split_of(k, 0.1) == "validation"]
    assert 120 < len(val) < 280
    assert val == [k for k in keys if split_of(k, 0.1) == "validation"]


def test_local_files_and_splits(tmp_path):
    docs = make_docs(60)
    (tmp_path / "a.txt").write_text("\n".join(docs[:30]) + "\n\n")
    write_jsonl(tmp_path / "b.jsonl", docs[30:50])
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": docs[50:]}), tmp_path / "c.parquet")
    corpus = load_corpus(str(tmp_path), val_fraction=0.3)
    assert isinstance(corpus, FileCorpus)
    train, val = list(corpus.documents("train")), list(corpus.documents("validation"))
    assert sorted(train + val) == sorted(docs) and not set(train) & set(val) and val
    fp = corpus.fingerprint()
    (tmp_path / "a.txt").write_text("\n".join(docs[:29]))
    assert load_corpus(str(tmp_path), val_fraction=0.3).fingerprint() != fp


def test_bad_specs_list_what_is_accepted(tmp_path):
    with pytest.raises(ValueError, match="stdlib"):
        load_corpus("no/such/thing")
    (tmp_path / "x.jsonl").write_text('{"body": "x"}\n')
    with pytest.raises(ValueError, match="'text' field"):
        list(load_corpus(str(tmp_path / "x.jsonl"), val_fraction=0.5).documents("train"))


def test_stdlib_corpus_on_a_fake_root(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "site-packages").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    (tmp_path / "site-packages" / "c.py").write_text("z = 3\n")
    corpus = StdlibCorpus("stdlib", 0.5, root=tmp_path)
    assert [p.name for p in corpus.files()] == ["b.py", "a.py"]  # sorted by relative path, no site-packages
    both = list(corpus.documents("train")) + list(corpus.documents("validation"))
    assert sorted(both) == ["x = 1\n", "y = 2\n"]


def test_real_stdlib_is_found():
    files = StdlibCorpus("stdlib").files()
    assert len(files) > 500 and not any("site-packages" in p.parts for p in files)


def test_hf_dataset_code_path_on_a_local_folder(tmp_path):
    docs = make_docs(40)
    (tmp_path / "ds").mkdir()
    write_jsonl(tmp_path / "ds" / "train.jsonl", docs)
    corpus = load_corpus(f"hf:{tmp_path / 'ds'}", val_fraction=0.25)
    got = list(corpus.documents("train")) + list(corpus.documents("validation"))
    assert sorted(got) == sorted(docs)
    limited = load_corpus(f"hf:{tmp_path / 'ds'}::train:text", val_fraction=0.25, max_documents=5)
    assert len(list(limited.documents("train"))) == 5


def test_bpe_is_trained_once_and_cached(tmp_path, monkeypatch):
    docs = make_docs(50)
    tok = load_bpe(iter(docs), "fp1", 300, 10**6, tmp_path)
    assert tok.vocab_size == 300 and {tok.eos_id, tok.bos_id, tok.pad_id} == {0, 1, 2}
    ids = tok.encode_batch(["the cat sat"])[0]
    assert tok.backend.decode(ids) == "the cat sat" and tok.eos_id not in ids

    def fail(*a, **k):
        raise AssertionError("retrained despite the cache")

    monkeypatch.setattr(tokmod, "train_bpe", fail)
    again = load_bpe(iter(docs), "fp1", 300, 10**6, tmp_path)
    assert again.fingerprint == tok.fingerprint
    with pytest.raises(AssertionError):  # another corpus fingerprint is another entry
        load_bpe(iter(docs), "fp2", 300, 10**6, tmp_path)
    tok.save(tmp_path / "run_tok")
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(tmp_path / "run_tok")
    assert hf("the cat sat")["input_ids"] == ids and hf.eos_token_id == tok.eos_id
    by_folder = load_hf_tokenizer(str(tmp_path / "run_tok"))
    assert by_folder.encode_batch(["the cat sat"])[0] == ids and by_folder.bos_id == tok.bos_id


def _data_cfg(path, tmp_path, **kw) -> DataConfig:
    base = dict(
        corpus=str(path),
        val_fraction=0.3,
        vocab_size=300,
        context=16,
        eval_length=16,
        eval_samples=4,
        val_sequences=2,
        cache_dir=str(tmp_path / "cache"),
    )
    return DataConfig(**(base | kw))


def test_pipeline_bos_options_and_eval_set(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", make_docs(80))
    plain = prepare_data(_data_cfg(path, tmp_path), batch_size=4, seed=0)
    bos = plain.tokenizer.bos_id
    assert plain.eval_ids.shape == (4, 16) and plain.val.shape == (2, 17)
    assert bos not in plain.eval_ids and bos not in plain.train.batch(0)  # the paper's packing: no BOS
    assert plain.model_vocab_size == 320  # 300 rounded up to a multiple of 64
    seq = prepare_data(_data_cfg(path, tmp_path, bos="sequence"), batch_size=4, seed=0)
    assert np.all(seq.train.batch(0)[:, 0] == bos) and np.all(seq.eval_ids[:, 0] == bos)
    assert np.all(seq.val[:, 0] == bos) and bos not in seq.train.batch(0)[:, 1:]
    doc = prepare_data(_data_cfg(path, tmp_path, bos="document"), batch_size=4, seed=0)
    stream = np.asarray(doc.train.sequences.tokens)
    eos = doc.tokenizer.eos_id
    assert stream[0] == bos and np.all(stream[np.flatnonzero(stream[:-1] == eos) + 1] == bos)
    fixed = prepare_data(_data_cfg(path, tmp_path, fixed_position=1), batch_size=4, seed=0)
    assert np.all(fixed.train.batch(0)[:, 1] == fixed.tokenizer.pad_id)
    assert np.all(fixed.eval_ids[:, 1] == fixed.tokenizer.pad_id)  # intervene_eval defaults to on
    natural = prepare_data(
        _data_cfg(path, tmp_path, fixed_position=1, intervene_eval=False), batch_size=4, seed=0
    )
    assert np.array_equal(natural.eval_ids, plain.eval_ids)
    with pytest.raises(ValueError, match="eval_samples"):
        prepare_data(_data_cfg(path, tmp_path, eval_samples=10_000), batch_size=4, seed=0)
