"""Files: model files, the Trainer's checkpoints, and the book's pickled weights.

- ``save`` / ``load`` (model_file.py): a model with its class and config, as safetensors.
- ``save_tensors`` / ``load_tensors`` (safetensors_file.py): named arrays and string metadata,
  written atomically with the sha256 of the tensors, and read with every length, offset,
  dtype and that digest checked (files written before digests have none, and load).
- ``write_checkpoint`` / ``read_checkpoint`` (checkpoint.py): the Trainer's full state.
- ``import_book_params``, ``load_book_model`` (book_pickle.py): the book's pickled weights
  (``params.pkl``, ``sample_weight.pkl``), never run as a pickle; ``load_model`` takes either.
- ``find_book_weights`` / ``book_weight_file`` (book_weights.py): where those files are here,
  found by the book's names in ``$SCRATCHDL_BOOK_WEIGHTS`` or the data folder's book-weights/.

Every problem with a file raises ``ModelFileError`` (a ValueError) naming the file and what is
wrong. Importing this package needs numpy only: safetensors is imported where it is used.
"""

from .book_pickle import import_book_params, load_book_model
from .book_weights import book_weight_file, find_book_weights
from .checkpoint import read_checkpoint, write_checkpoint
from .model_file import load, load_model, save
from .safetensors_file import ModelFileError, load_tensors, save_tensors

__all__ = [
    "ModelFileError",
    "book_weight_file",
    "find_book_weights",
    "import_book_params",
    "load",
    "load_book_model",
    "load_model",
    "load_tensors",
    "read_checkpoint",
    "save",
    "save_tensors",
    "write_checkpoint",
]
