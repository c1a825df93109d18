"""Class names: what a conditional generator's labels are called, and a label a user gives (a class name in
any case, or a class number) as the index the generator takes.

Nothing here knows about GANs or imports anything of ours; a problem is a ValueError whose message names
the classes there are, which the command line and the Python API both show as they are.
"""

from __future__ import annotations

import operator
import unicodedata
from typing import Sequence

LISTED_CLASSES = 30  # a folder of a thousand classes is not listed in full in a one-line error


def numbered(num_classes: int) -> list[str]:
    """The names of classes nobody named: "0", "1", ..."""
    return [str(i) for i in range(num_classes)]


def names_or_numbers(names: Sequence[str] | None, num_classes: int) -> list[str]:
    """`names` when there is one per class, else the class numbers as names."""
    names = list(names or ())
    return names if len(names) == num_classes else numbered(num_classes)


MAX_NAME_CHARS = 255  # a folder's name, the longest a class name a dataset gives can be


def class_names_problem(names, num_classes: int) -> str | None:
    """Why `names` (read from a file) cannot be the names of `num_classes` classes, or None."""
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return "class names are not a list of strings"
    if len(names) != num_classes:
        return f"{len(names)} class names for {num_classes} classes"
    odd = next((n for n in names if not 0 < len(n) <= MAX_NAME_CHARS or _breaks_a_line(n)), None)
    if odd is not None:  # printed in one-line messages and drawn under grids: no control characters, no essays
        return f"class name {odd[:40]!r} is empty, over {MAX_NAME_CHARS} characters or holds control characters"
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:  # a label by that name could not say which of the two classes it means
        return f"class name {twice[:40]!r} names two classes"
    return None


def _breaks_a_line(name: str) -> bool:
    """Whether `name` holds a control character or a line separator (a terminal would act on it)."""
    return any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in name)


def describe_classes(names: Sequence[str]) -> str:
    """The classes, as an error message lists them: "T-shirt/top, Trouser, ... (a name in any case, or 0-9)"."""
    shown = ", ".join(names[:LISTED_CLASSES])
    more = f" and {len(names) - LISTED_CLASSES} more" if len(names) > LISTED_CLASSES else ""
    return f"{shown}{more} (a name in any case, or a number 0-{len(names) - 1})"


def class_index(label, names: Sequence[str]) -> int:
    """The index of the class `label` names: an int is a class number; a string is a class name (exactly,
    else in any case), else a class number written out. Names come first, so a folder whose classes are
    called "10" and "2" is asked for by those names. A ValueError says why not, for the caller to prefix
    with the label as the user gave it."""
    if not names:
        raise ValueError("this generator has no classes")
    if isinstance(label, bool):
        raise ValueError(f"a label is a class name or number; its classes are {describe_classes(names)}")
    if not isinstance(label, str):
        try:
            return _in_range(operator.index(label), names)  # int, numpy and 0-d torch integers
        except TypeError:
            raise ValueError(f"a label is a class name or number; its classes are {describe_classes(names)}") from None
    if label in names:
        return list(names).index(label)
    text = label.strip()
    folded = [i for i, n in enumerate(names) if n.casefold() == text.casefold()]
    if len(folded) == 1:
        return folded[0]
    if len(folded) > 1:
        raise ValueError(f"names {len(folded)} classes that differ only in case "
                         f"({', '.join(names[i] for i in folded)}): give the name exactly, or its number")
    if text.isascii() and text.lstrip("-").isdigit():
        return _in_range(int(text), names)
    raise ValueError(f"not a class of this generator; its classes are {describe_classes(names)}")


def _in_range(number: int, names: Sequence[str]) -> int:
    if not 0 <= number < len(names):
        raise ValueError(f"no class number {number}; its classes are {describe_classes(names)}")
    return number


def class_indices(labels, names: Sequence[str], num: int) -> list[int]:
    """One class index per sample: `labels` is one label for all `num` samples, or a list of one per sample."""
    if getattr(labels, "ndim", 0) == 1:  # a numpy array or tensor of labels
        labels = labels.tolist()
    if isinstance(labels, (list, tuple)):
        if len(labels) != num:
            raise ValueError(f"{len(labels)} labels for {num} samples: give one label, or one per sample")
        return [_labelled_index(label, names) for label in labels]
    return [_labelled_index(labels, names)] * num


def _labelled_index(label, names: Sequence[str]) -> int:
    try:
        return class_index(label, names)
    except ValueError as exc:
        raise ValueError(f"label {label!r}: {exc}") from None
