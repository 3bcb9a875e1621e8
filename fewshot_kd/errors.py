"""Exceptions raised for bad input. Each message says what was wrong and what to do."""

from __future__ import annotations


class FewShotKDError(Exception):
    """Base class of every error fewshot_kd raises on purpose."""


class BadInputError(FewShotKDError, ValueError):
    """An argument is wrong or does not fit the models; the message says which and what to do."""


class DataNotFoundError(FewShotKDError, FileNotFoundError):
    """A dataset or weights file is missing; the message names the path and how to get it."""


class NotEnoughExamplesError(FewShotKDError, ValueError):
    """A class holds fewer examples than the shots asked for."""


class ClassCountMismatchError(FewShotKDError, ValueError):
    """Teacher, student and data disagree on the number of classes."""


class UnsupportedLayerError(FewShotKDError, TypeError):
    """A module cannot be handled by the requested operation; the message names it."""


class NonFiniteLossError(FewShotKDError, FloatingPointError):
    """A loss became NaN or inf."""


class UnknownNameError(FewShotKDError, KeyError, ValueError):
    """A name is not in a registry; the message lists the known names. Also a ``ValueError``:
    an unknown choice is a bad argument value."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CorruptFileError(FewShotKDError, ValueError):
    """A file is truncated, corrupted or not what it should be; the message names it."""


class TaskMismatchError(BadInputError):
    """Teacher and data are for different tasks (a causal LM teacher with labelled classes, a
    classifier with running text, ...); the message says what each is and what fits."""


class UnsupportedModelError(BadInputError):
    """A model folder holds a kind of model fewshot_kd does not adapt; the message lists the kinds it does."""
