"""Where the benchmark's files come from, and how a path to one is resolved.

Every file the benchmark reads (datasets, pre-training corpus, pre-trained checkpoints) is a
:class:`DataFile` with its path relative to the *data root*, its sha256 and its canonical
public URL.

Resolution order for a file:

1. A data root, from ``--data-root`` or the ``ROFT_DATA`` environment variable: the file must
   be at ``<root>/<relpath>``; it is read in place and never copied.
2. Otherwise the download cache (``ROFT_CACHE``, default ``~/.cache/roft``): the file is
   downloaded once from its canonical URL, its sha256 checked, and moved into place atomically.

A missing file or a failed download raises :class:`DataUnavailableError` naming the file, the
places looked at and how to set the data root.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from trainables.core.data_root import (  # noqa: F401 (re-exported: the data layer's vocabulary)
    CACHE_ENV,
    DATA_ROOT_ENV,
    DataRoot,
    DataUnavailableError,
    cache_dir,
)
from trainables.core.registry import Registry

DOWNLOAD_TIMEOUT_S = 30


class ChecksumError(ValueError):
    """A file's sha256 does not match the registry."""


@dataclass(frozen=True)
class DataFile:
    """A file of the benchmark.

    Attributes
    ----------
    relpath: path below the data root, e.g. ``moleculenet/bbbp.csv``.
    sha256: digest of the file as it lies in the data root.
    url: canonical public URL, or ``None`` where no single public file exists.
    served_sha256: digest of the bytes ``url`` serves when they differ from ``sha256`` (the
        URL serves the uncompressed content of a ``.gz`` file; the cache then keeps the
        uncompressed file).
    """

    relpath: str
    sha256: str
    url: str | None
    served_sha256: str | None = None

    @property
    def cache_relpath(self) -> str:
        """Path below the cache: the served form of the file."""
        if self.served_sha256 and self.relpath.endswith(".gz"):
            return self.relpath[: -len(".gz")]
        return self.relpath

    @property
    def expected_cache_sha256(self) -> str:
        return self.served_sha256 or self.sha256


FILES: Registry[DataFile] = Registry("data file")

_GH = "https://raw.githubusercontent.com"
_AFP = f"{_GH}/OpenDrugAI/AttentiveFP/dda6708/data"
_CHEMPROP = f"{_GH}/chemprop/chemprop/73475d11/data"
_HIPS = f"{_GH}/HIPS/neural-fingerprint/d26dae3/data"
_HU = f"{_GH}/snap-stanford/pretrain-gnns/8b20528/chem/model_architecture"

for _f in [
    DataFile(
        "moleculenet/bbbp.csv",
        "d07a38487aeac5cee5508413e468043ef3097451d2a112701c2d60be9ec6b662",
        "https://deepchemdata.s3-us-west-1.amazonaws.com/datasets/BBBP.csv",
    ),
    DataFile(
        "moleculenet/bace.csv.gz",
        "c7c987403ca163463cbdb9f8217cd019a102c8591a4d74168c04df6fa3e4b479",
        f"{_AFP}/bace.csv",
        served_sha256="f3fb9ce90bada3e2bd6148b0df13f8f8145a357bf87df0dd5b391ede974fc737",
    ),
    DataFile(
        "moleculenet/clintox.csv",
        "9999816e760dd838358b5d88e81cea2fc062be4458ffa412ceecdba4f88a67b6",
        f"{_AFP}/clintox.csv",
    ),
    DataFile(
        "moleculenet/sider.csv",
        "71efc6ac4ca82d6545bc512509863281be0f17234afd7adaf71a71899988302e",
        f"{_CHEMPROP}/sider.csv",
    ),
    DataFile(
        "moleculenet/tox21.csv", "7d7e7facd853a63e79ddce4e9c3fcb7a0d83a1c300b603031c0f2c64fbe77761", f"{_AFP}/tox21.csv"
    ),
    DataFile(
        "moleculenet/toxcast.csv.gz",
        "4b9b4366b02ce7ec7a0831d60f8c46f153c53c5e122376df887476240496abd4",
        f"{_CHEMPROP}/toxcast.csv.gz",
    ),
    DataFile(
        "moleculenet/hiv.csv.gz",
        "81c0dc45814deb6ee9d8cc83078e06b95736fb2eb78d747b0d055fee1c6ec4c5",
        "https://deepchemdata.s3-us-west-1.amazonaws.com/datasets/HIV.csv",
        served_sha256="b72f0cf00cd1f45ae5c415f21aef10e69187e30dd24029ddb345fbca35b0d798",
    ),
    DataFile(
        "moleculenet/muv.csv.gz",
        "ee68d1fad0b10440dc494ac3a74cf99168a0b0da9683556b2b48220b88172135",
        f"{_CHEMPROP}/muv.csv.gz",
    ),
    DataFile(
        "moleculenet/esol.csv",
        "8c06a76f0c6487d29ab0f903e6a7a7139f189ab3c1178f159c8be8964602f189",
        f"{_HIPS}/2015-05-24-delaney/delaney-processed.csv",
    ),
    DataFile(
        "moleculenet/freesolv.csv",
        "ab5895d914ee87cb563bd7b9611e869527bba45bec6b014d34dc495a0f9dcb72",
        f"{_AFP}/SAMPL.csv",
    ),
    DataFile(
        "moleculenet/lipophilicity.csv",
        "aed41590cb30609d51d8e08ad3ff06495a76e80e211358801f596b10da69bacd",
        f"{_AFP}/Lipophilicity.csv",
    ),
    DataFile(
        "moleculenet/qm7.csv",
        "eb793e3172c4a74cfb74ef805e6cdea79d1db16fd1f40a42f459297ad6457548",
        f"{_GH}/HICAI-ZJU/KANO/766b478/data/qm7.csv",
    ),
    DataFile(
        "moleculenet/qm8.csv.gz",
        "a5de2f2d71f645eb53f741bf11d125edd9d62c1407769c20787d20026eb81434",
        f"{_CHEMPROP}/qm8.csv.gz",
    ),
    DataFile(
        "regression_extra/malaria.csv",
        "2cea95027569d94a05093f0e1ea9ae174b721298380d1dfc33f2eb802a0cf008",
        f"{_HIPS}/2015-06-03-malaria/malaria-processed.csv",
    ),
    DataFile(
        "regression_extra/cep.csv.gz",
        "f55ee0a912cb35edd6aab347efeb1bcebbb8422d04c336109bb9d81ba7528950",
        f"{_HIPS}/2015-06-02-cep-pce/cep-processed.csv",
        served_sha256="99c3def57a412e0ac3922194d0605b6a8a9056938706a44bc4ba1d35fe8bc8c0",
    ),
    # Assembled from a tar member of wenhao-gao/mol_opt (see SOURCES.md): no single public file.
    DataFile("pretrain/zinc250k.csv.gz", "9eeacba1b986322c7f6c38afd0abe38fdaa11ed98c02ed039ab3ebfb0696577e", None),
    DataFile(
        "weights/molclr/molclr_gcn_model.pth",
        "870e4599856867f4ae9f42f188f60b4199d23c39e1f99df092f6f8d45baccf5b",
        f"{_GH}/yuyangw/MolCLR/3d3bc19/ckpt/pretrained_gcn/checkpoints/model.pth",
    ),
]:
    FILES.register(_f.relpath, _f)

_HU_SHA = {
    "gcn_contextpred": "ff1d9c5e5c198b8faf8af576c303808853e3f55a52aed7ae27964e3c8635a81a",
    "gcn_supervised": "8fb73bcce4991d6778e7309474505fcf2e5ff69f5debf166a5e6b91edf3f1493",
    "gcn_supervised_contextpred": "49cf0465e623c14fc802cdc67b47cbb78326f43fc7991afe6a14e1ff471755d5",
    "graphsage_contextpred": "63976e7795ae3ab46fc97c40a047ce1c4b13e243c2f8ef9125e78c7fabee9279",
    "graphsage_supervised": "9e2572f66e4e3c6a21b1e897c642b545abc8c6cbab1d56888c37f963b0c6da4b",
    "graphsage_supervised_contextpred": "aca7caa7c15a0e478b57d5d2cca84d8bda6d4500614bd96486b84739bff3929b",
    "gat_contextpred": "de030068b3cb8b5d2d4da09fd377fac0a111f401904d3806104874e058bc4af8",
    "gat_supervised": "62edee2aaf82c82e24236fe0124d93d975c4cb7b5e01280bc63050c606f64541",
    "gat_supervised_contextpred": "ad433c867915b166fbc98154d763eaa83fa53cd60bf3a3b0c2086a0ef7dc684e",
}
for _name, _sha in _HU_SHA.items():
    FILES.register(
        f"weights/pretrain_gnns_chem/{_name}.pth",
        DataFile(f"weights/pretrain_gnns_chem/{_name}.pth", _sha, f"{_HU}/{_name}.pth"),
    )


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


_HOW_TO = (
    f"set {DATA_ROOT_ENV}=/path/to/data (or pass --data-root) to a folder laid out like "
    "the benchmark's data, e.g. holding moleculenet/bbbp.csv"
)


def resolve(relpath: str, root: DataRoot, download: bool = True) -> Path:
    """Return a local path to the registered file ``relpath``: in ``root``'s folder, else in the
    download cache (downloaded there when missing and ``download``).

    Raises :class:`DataUnavailableError` when the file is neither in the data root nor in the
    cache and cannot be downloaded.
    """
    if not isinstance(root, DataRoot):
        raise TypeError(
            f"root must be a DataRoot (resolved once from --data-root / {DATA_ROOT_ENV}), not {type(root).__name__}"
        )
    spec = FILES.get(relpath)
    base = root.folder
    if base is not None:
        path = base / spec.relpath
        if not path.is_file():
            raise DataUnavailableError(
                f"{spec.relpath}: not found at {path} (data root {base}). The data root must hold "
                f"the file at that relative path; {_HOW_TO}."
            )
        return path
    cached = cache_dir() / spec.cache_relpath
    if cached.is_file():
        return cached
    if not download:
        raise DataUnavailableError(f"{spec.relpath}: not in the cache ({cached}) and no data root set; {_HOW_TO}.")
    return _download(spec, cached)


def _download(spec: DataFile, target: Path) -> Path:
    if spec.url is None:
        raise DataUnavailableError(
            f"{spec.relpath}: no single public URL serves this file and it is not in the cache ({target}); {_HOW_TO}."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(spec.url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            shutil.copyfileobj(response, out)
        actual = sha256_of(tmp_name)
        if actual != spec.expected_cache_sha256:
            raise ChecksumError(
                f"{spec.relpath}: downloaded {spec.url} but its sha256 is {actual}, expected "
                f"{spec.expected_cache_sha256}; the file was not kept."
            )
        os.replace(tmp_name, target)
        return target
    except ChecksumError:
        raise
    except Exception as exc:  # network, DNS, HTTP errors
        raise DataUnavailableError(
            f"{spec.relpath}: not found locally (no data root set; not in the cache at {target}) and the "
            f"download from {spec.url} failed ({type(exc).__name__}: {exc}); {_HOW_TO}."
        ) from exc
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def atomic_write(target: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``target`` by ``write(fh)`` into a hidden temporary file, fsync, then rename.

    Readers see either the old file or the complete new one, never a partial file; the
    temporary name starts with ``.`` so Parquet readers and globs skip it.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; caches and stores are shared between users
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
