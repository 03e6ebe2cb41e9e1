"""MNIST and Fashion-MNIST (the book's ch3 data): load, fetch, verify and the IDX format.

One concern per module, data flowing one way (mnist -> download -> store -> idx):

- ``mnist``: the book's ``load_mnist``, ``load_fashion_mnist``, the shipped ``load_mnist_sample``;
- ``download``: the routes that bring missing files (npm, Debian, mirrors) and ``fetch``;
- ``store``: the data folder, the pinned sha256, finding and verifying files, ``verify``, ``where``;
- ``idx``: the IDX file format (``parse_idx``, ``read_idx``, ``write_idx``).

The constants below are re-exported for reading; to change one in a test, patch it on the
module that uses it.
"""

from .download import fetch
from .idx import IDX_CODES, IDX_DTYPES, MAX_IDX_BYTES, parse_idx, read_idx, write_idx
from .mnist import SAMPLE_DIR, SAMPLE_SHA256, load_fashion_mnist, load_mnist, load_mnist_sample
from .store import (
    DATASETS,
    DEBIAN_PACKAGE,
    DEBIAN_SUBDIR,
    ENV_DATA,
    ENV_MIRRORS,
    FILES,
    MANIFEST,
    MIRRORS,
    NPM_PACKAGE,
    SHA256,
    TITLES,
    ChecksumError,
    DatasetNotFoundError,
    verify,
    where,
)

__all__ = [
    "DATASETS",
    "DEBIAN_PACKAGE",
    "DEBIAN_SUBDIR",
    "ENV_DATA",
    "ENV_MIRRORS",
    "FILES",
    "IDX_CODES",
    "IDX_DTYPES",
    "MANIFEST",
    "MAX_IDX_BYTES",
    "MIRRORS",
    "NPM_PACKAGE",
    "SAMPLE_DIR",
    "SAMPLE_SHA256",
    "SHA256",
    "TITLES",
    "ChecksumError",
    "DatasetNotFoundError",
    "fetch",
    "load_fashion_mnist",
    "load_mnist",
    "load_mnist_sample",
    "parse_idx",
    "read_idx",
    "verify",
    "where",
    "write_idx",
]
