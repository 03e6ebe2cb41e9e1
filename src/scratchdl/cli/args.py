"""Argument types shared by the ``scratchdl`` subcommands (the modules of cli/):
each turns a bad value into argparse's one-line error, which the command prints with exit 2.
And ``printable``, for the file names the commands print."""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

__all__ = ["folder", "positive_float", "positive_int", "printable"]


def printable(text: str) -> str:
    """``text`` with the bytes of a file name that the file system's encoding cannot decode
    shown as ``\\xff``, as Python shows bytes.

    Python keeps such bytes as lone surrogates (os.fsdecode's surrogateescape), which
    stderr prints as ``\\udcff`` and a strict stdout refuses to print at all.
    """
    try:
        raw = os.fsencode(text)  # the name's own bytes again
    except UnicodeEncodeError:  # a lone surrogate that came from no file name
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode(sys.getfilesystemencoding(), "backslashreplace")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def folder(text: str) -> str:
    if not text:  # "" would silently mean the default, or the current folder
        raise argparse.ArgumentTypeError("must name a folder, got ''")
    return text


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value
