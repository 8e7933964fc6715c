"""trainables.data.sources: data root, cache, download with checksum, error messages.

Downloads never touch the network: ``urllib.request.urlopen`` is monkeypatched.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from trainables.core.data_root import DataRoot
from trainables.data import sources
from trainables.data.sources import ChecksumError, DataUnavailableError

ESOL = "moleculenet/esol.csv"


@pytest.fixture
def no_data_root(monkeypatch, tmp_path):
    """ROFT_DATA unset, ROFT_CACHE an empty tmp folder; returns the cache folder."""
    monkeypatch.delenv("ROFT_DATA", raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("ROFT_CACHE", str(cache))
    return cache


def _urlopen_returning(payload: bytes, calls: list):
    def fake(url, timeout=None):
        calls.append((url, timeout))
        return io.BytesIO(payload)

    return fake


def _urlopen_raising(calls: list):
    def fake(url, timeout=None):
        calls.append(url)
        raise OSError("network is unreachable")

    return fake


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


# ----------------------------------------------------------------------------- registry of files

def test_registry_holds_the_benchmark_files():
    names = sources.FILES.names()
    assert len(names) == 26  # 15 task files + zinc250k + molclr + 9 Hu checkpoints
    for relpath in ("moleculenet/bbbp.csv", "regression_extra/cep.csv.gz", "pretrain/zinc250k.csv.gz",
                    "weights/pretrain_gnns_chem/gat_supervised_contextpred.pth"):
        assert relpath in sources.FILES
    for _, spec in sources.FILES.items():
        assert len(spec.sha256) == 64 and int(spec.sha256, 16) >= 0


def test_served_uncompressed_files_are_cached_without_gz():
    bace = sources.FILES.get("moleculenet/bace.csv.gz")
    assert bace.cache_relpath == "moleculenet/bace.csv"
    assert bace.expected_cache_sha256 == bace.served_sha256 != bace.sha256
    toxcast = sources.FILES.get("moleculenet/toxcast.csv.gz")  # served gzipped: cached as is
    assert toxcast.cache_relpath == "moleculenet/toxcast.csv.gz"
    assert toxcast.expected_cache_sha256 == toxcast.sha256


def test_unknown_file_is_an_unknown_name_error(no_data_root):
    with pytest.raises(KeyError, match="unknown data file 'moleculenet/esol.csvx'.*did you mean"):
        sources.resolve("moleculenet/esol.csvx", DataRoot.from_setting())


# ----------------------------------------------------------------------------- data root

def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("ROFT_CACHE", str(tmp_path / "c"))
    assert sources.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("ROFT_CACHE")
    assert sources.cache_dir() == Path.home() / ".cache" / "roft"


def test_data_root_unset_or_empty_is_none(monkeypatch):
    monkeypatch.delenv("ROFT_DATA", raising=False)
    assert DataRoot.from_setting().folder is None
    monkeypatch.setenv("ROFT_DATA", "")
    assert DataRoot.from_setting().folder is None


def test_data_root_that_is_a_file_is_a_clear_error(monkeypatch, tmp_path):
    not_a_dir = tmp_path / "data.txt"
    not_a_dir.write_text("x")
    with pytest.raises(DataUnavailableError) as info:
        DataRoot.from_setting(not_a_dir)
    message = str(info.value)
    assert str(not_a_dir) in message and "is not a directory" in message and "(from --data-root)" in message
    monkeypatch.setenv("ROFT_DATA", str(tmp_path / "missing"))
    with pytest.raises(DataUnavailableError, match=r"missing' \(from ROFT_DATA\) is not a directory"):
        sources.resolve(ESOL, DataRoot.from_setting())


def test_file_missing_from_data_root_names_the_path(monkeypatch, tmp_path):
    monkeypatch.setenv("ROFT_DATA", str(tmp_path))
    with pytest.raises(DataUnavailableError) as info:
        sources.resolve(ESOL, DataRoot.from_setting())
    message = str(info.value)
    assert message.startswith(f"{ESOL}: not found at {tmp_path / ESOL}")
    assert "ROFT_DATA" in message and "--data-root" in message


def test_file_in_data_root_is_read_in_place(monkeypatch, tmp_path):
    target = tmp_path / ESOL
    target.parent.mkdir(parents=True)
    target.write_text("smiles\nC\n")
    monkeypatch.setenv("ROFT_DATA", str(tmp_path))
    monkeypatch.setenv("ROFT_CACHE", str(tmp_path / "cache"))
    assert sources.resolve(ESOL, DataRoot.from_setting()) == target
    # an explicit root wins over the environment
    other = tmp_path / "other"
    (other / "moleculenet").mkdir(parents=True)
    (other / ESOL).write_text("smiles\nCC\n")
    assert sources.resolve(ESOL, DataRoot(other)) == other / ESOL
    assert not (tmp_path / "cache").exists()  # nothing copied


@pytest.mark.data
def test_real_data_root_resolves_every_registered_file(data_root):
    for relpath, spec in sources.FILES.items():
        path = sources.resolve(relpath, DataRoot(data_root))
        assert path == data_root / spec.relpath and path.is_file(), relpath


# ----------------------------------------------------------------------------- downloads

def test_offline_download_fails_with_data_unavailable(no_data_root, monkeypatch):
    calls: list = []
    monkeypatch.setattr(sources.urllib.request, "urlopen", _urlopen_raising(calls))
    with pytest.raises(DataUnavailableError) as info:
        sources.resolve(ESOL, DataRoot.from_setting())
    message = str(info.value)
    assert calls == [sources.FILES.get(ESOL).url]
    assert message.startswith(ESOL)
    assert str(no_data_root / ESOL) in message  # the cache path looked at
    assert "ROFT_DATA" in message and "--data-root" in message
    assert "OSError: network is unreachable" in message
    assert isinstance(info.value.__cause__, OSError)
    assert _leftovers(no_data_root) == []  # no partial file


def test_no_download_when_not_allowed(no_data_root, monkeypatch):
    calls: list = []
    monkeypatch.setattr(sources.urllib.request, "urlopen", _urlopen_raising(calls))
    with pytest.raises(DataUnavailableError) as info:
        sources.resolve(ESOL, DataRoot.from_setting(), download=False)
    assert calls == []
    assert str(no_data_root / ESOL) in str(info.value) and "ROFT_DATA" in str(info.value)


def test_file_without_public_url_is_not_downloaded(no_data_root, monkeypatch):
    calls: list = []
    monkeypatch.setattr(sources.urllib.request, "urlopen", _urlopen_raising(calls))
    with pytest.raises(DataUnavailableError, match=r"pretrain/zinc250k.csv.gz: no single public URL") as info:
        sources.resolve("pretrain/zinc250k.csv.gz", DataRoot.from_setting())
    assert calls == []
    assert "ROFT_DATA" in str(info.value)


def test_download_with_wrong_checksum_is_not_kept(no_data_root, monkeypatch):
    calls: list = []
    payload = b"smiles,measured log solubility in mols per litre\nCCO,1.0\n"
    monkeypatch.setattr(sources.urllib.request, "urlopen", _urlopen_returning(payload, calls))
    with pytest.raises(ChecksumError) as info:
        sources.resolve(ESOL, DataRoot.from_setting())
    message = str(info.value)
    assert hashlib.sha256(payload).hexdigest() in message
    assert sources.FILES.get(ESOL).sha256 in message
    assert len(calls) == 1 and calls[0][1] == sources.DOWNLOAD_TIMEOUT_S
    assert not (no_data_root / ESOL).exists()
    assert _leftovers(no_data_root) == []  # the .part file is removed too


@pytest.mark.data
def test_correct_download_lands_atomically_and_is_reused(no_data_root, monkeypatch, data_root):
    payload = (data_root / ESOL).read_bytes()
    assert hashlib.sha256(payload).hexdigest() == sources.FILES.get(ESOL).sha256
    calls: list = []
    monkeypatch.setattr(sources.urllib.request, "urlopen", _urlopen_returning(payload, calls))
    renames: list = []
    real_replace = sources.os.replace

    def spy_replace(src, dst):
        renames.append((Path(src), Path(dst), Path(src).read_bytes() == payload))
        real_replace(src, dst)

    monkeypatch.setattr(sources.os, "replace", spy_replace)
    path = sources.resolve(ESOL, DataRoot.from_setting())
    assert path == no_data_root / ESOL
    # downloaded into a hidden temporary file beside the target, then renamed into place in one step
    [(tmp, dst, complete)] = renames
    assert dst == path and tmp.parent == path.parent and complete
    assert tmp.name.startswith(".esol.csv.") and tmp.name.endswith(".part")
    assert path.read_bytes() == payload
    assert _leftovers(no_data_root) == ["esol.csv"]  # no temporary file left
    assert [url for url, _ in calls] == [sources.FILES.get(ESOL).url]
    # second resolution: from the cache, no network
    monkeypatch.setattr(sources.urllib.request, "urlopen", _urlopen_raising(calls))
    assert sources.resolve(ESOL, DataRoot.from_setting()) == path
    assert len(calls) == 1


def test_atomic_write_replaces_whole_files_and_cleans_up(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    sources.atomic_write(target, lambda fh: fh.write(b"first"))
    assert target.read_bytes() == b"first"
    assert _leftovers(tmp_path) == ["out.bin"]

    def half_then_fail(fh):
        fh.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        sources.atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"first"  # the old file is intact
    assert _leftovers(tmp_path) == ["out.bin"]  # no temporary file left
    sources.atomic_write(target, lambda fh: fh.write(b"second"))
    assert target.read_bytes() == b"second"
    assert _leftovers(tmp_path) == ["out.bin"]
