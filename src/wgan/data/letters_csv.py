"""The Kaggle "A-Z Handwritten Data" CSV: no header; label 0-25, then 784 pixel values 0-255
(whole-number floats such as 22.0, from a table saved as floats, are the same integers). Parsed once, in
chunks, with pandas' C parser, into the decoded cache's file that every process maps."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from wgan.data.cache import stamp
from wgan.data.core import Data, LoadOptions
from wgan.data.decoded import Rows, decoded
from wgan.data.idx import LETTER_CLASSES
from wgan.data.search import candidate_dirs, default_places, searched
from wgan.errors import UserError, first_line

LETTERS_CSV_NAMES = ("A_Z Handwritten Data.csv", "A_Z_Handwritten_Data.csv", "letters.csv")
LETTERS_COLUMNS = 1 + 28 * 28
LETTERS_TEST_FRACTION = 0.1  # the file has no split: a fixed, seeded tenth is held out as the test split
LETTERS_SPLIT_SEED = 20240
CSV_CHUNK_ROWS = 4096  # parsed as int64, 25 MB a chunk: the memory the parse takes, whatever the file's size
_CSV_LAYOUT = "expected the Kaggle A-Z layout: label 0-25 then 784 pixel values 0-255 per row, no header"


def find_letters_csv(data_path) -> Path:
    dirs = candidate_dirs("letters-csv", data_path)
    if data_path and Path(data_path).expanduser().is_file():
        return Path(data_path).expanduser()
    for d in dirs:
        for file_name in LETTERS_CSV_NAMES:
            if (d / file_name).is_file():
                return d / file_name
    names = " / ".join(LETTERS_CSV_NAMES)
    if data_path:
        csvs = sorted(Path(data_path).expanduser().glob("*.csv"))
        if len(csvs) == 1:
            return csvs[0]
        found = f"{len(csvs)} other .csv files ({csvs[0].name}, ...)" if csvs else "no other .csv file"
        raise UserError(f"--data {data_path}: no {names} there and {found}; pass --data FILE.csv (Kaggle's A-Z "
                        f"Handwritten Data), or leave --data out to search {default_places('letters-csv')}")
    raise UserError(f"letters-csv: no {names} in: {searched(dirs, None)}; "
                    "pass --data FILE.csv (Kaggle's A-Z Handwritten Data) or use --dataset emnist-letters")


def _csv_problem(path: Path, first_row: int) -> str | None:
    """The first bad row at or after data row `first_row` (0-based, blank lines not counted), as one
    line naming the 1-based line number and the value. The fast reader only says *that* a chunk is
    bad; this slow pass says *where*."""
    row = -1
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        for fields in reader:
            if not fields or all(not v.strip() for v in fields):
                continue  # blank lines are skipped by the fast reader too
            row += 1
            line_no = reader.line_num
            if row < first_row:
                continue
            where = f"{path} line {line_no}"
            if row == 0 and _is_numbered_header(fields):
                return (f"{where} is a header row (the column numbers 0,1,...,{fields[-1].strip()} that pandas' "
                        f"to_csv writes by default) and the Kaggle layout has none: drop that line (e.g. "
                        f"tail -n +2 '{path}' > fixed.csv) or write the file with to_csv(..., header=False, "
                        f"index=False)")
            if len(fields) != LETTERS_COLUMNS:
                return f"{where}: {len(fields)} columns, {_CSV_LAYOUT}"
            for col, value in enumerate(fields, start=1):
                number = _whole_number(value)
                if number is None:
                    header = " (the Kaggle file has no header row)" if row == 0 and _not_numeric(value) else ""
                    return f"{where}, column {col}: {value.strip()[:30]!r} is not a whole number{header}"
                if col == 1 and not 0 <= number < len(LETTER_CLASSES):
                    return f"{where}: label {number} out of range 0-{len(LETTER_CLASSES) - 1}"
                if col > 1 and not 0 <= number <= 255:
                    return f"{where}, column {col}: pixel value {number} out of range 0-255"
    return None


def _whole_number(value: str) -> int | None:
    """The cell as an integer: "22", and also "22.0" or "2.2e+01" (a table saved from floats) since
    those are exactly 22; None for anything else."""
    try:
        return int(value)
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


def _not_numeric(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return bool(value.strip())
    return False


def _is_numbered_header(fields: list[str]) -> bool:
    """pandas' default header for an unnamed table: the column numbers 0, 1, ..., after an empty cell
    when the index was written too. Such a row parses as numbers, so only its shape gives it away."""
    names = [f.strip() for f in fields]
    if names and names[0] == "":
        names = names[1:]
    return len(names) >= LETTERS_COLUMNS - 1 and names == [str(i) for i in range(len(names))]


def _chunk_values(chunk) -> np.ndarray | None:
    """The chunk as uint8 rows, or None if any cell is missing, not a whole number or out of range."""
    import pandas as pd
    if chunk.shape[1] != LETTERS_COLUMNS or not all(pd.api.types.is_integer_dtype(t) or
                                                    pd.api.types.is_float_dtype(t) for t in chunk.dtypes):
        return None
    values = chunk.to_numpy()
    if values.dtype.kind == "f" and not (np.isfinite(values).all() and (values == np.floor(values)).all()):
        return None
    labels, pixels = values[:, 0], values[:, 1:]
    if labels.min() < 0 or labels.max() >= len(LETTER_CLASSES) or pixels.min() < 0 or pixels.max() > 255:
        return None
    return values.astype(np.uint8)


def check_parseable(path: Path) -> None:
    """Files that are no CSV at all are refused before any row is read: an empty one, a gzipped one."""
    if path.stat().st_size == 0 or not _has_content(path):
        raise UserError(f"{path}: the file is empty; {_CSV_LAYOUT}")
    with open(path, "rb") as f:
        if f.read(2) == b"\x1f\x8b":  # the gzip magic: pandas would read its bytes as one odd column
            raise UserError(f"{path}: is gzip-compressed, not a CSV; unpack it first (gunzip -c '{path}' > letters.csv) "
                            "and pass the unpacked file")


def count_rows(path: Path) -> int:
    """The lines that hold anything but blanks (which the parser skips too): the rows, known before parsing,
    so that each row is written at its place in the split from the start."""
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if not line.isspace())
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def parse_letters_csv(path: Path, rows: Rows) -> tuple[np.ndarray, int]:
    """Read the CSV in chunks with pandas' C parser, each chunk's images written into `rows` at once, train
    rows first, then test rows (so a split is a slice of the file, not a 300 MB copy); returns the labels
    (uint8, in that order) and the number of train rows. `rows` holds as many rows as count_rows says."""
    import pandas as pd  # here, not at the top: 0.3 s and 35 MB that commands reading no CSV do not pay
    n = rows.capacity
    train_rows, test_rows = (letters_split_indices(n, part) for part in ("train", "test"))
    place = np.empty(n, dtype=np.int64)  # row r of the file is row place[r] of the decoded file
    place[np.concatenate([train_rows, test_rows])] = np.arange(n)
    labels = np.empty(n, dtype=np.uint8)
    done = 0
    try:
        with pd.read_csv(path, header=None, chunksize=CSV_CHUNK_ROWS, engine="c") as reader, \
                tqdm(desc=f"reading {path.name}", total=n, unit=" rows", unit_scale=True, disable=None,
                     leave=False) as bar:
            for chunk in reader:
                values = _chunk_values(chunk)
                if values is None or done + len(values) > n:
                    raise UserError(_csv_problem(path, done) or f"{path}: rows {done + 1}-{done + len(chunk)} "
                                    f"cannot be read; {_CSV_LAYOUT}")
                at = place[done:done + len(values)]
                rows.put_at(at, values[:, 1:].reshape(-1, 1, 28, 28))
                labels[at] = values[:, 0]
                done += len(values)
                bar.update(len(values))
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, UserError):
            raise
        raise UserError(_csv_problem(path, done) or f"{path}: cannot be parsed ({first_line(exc, None)}); "
                                                    f"{_CSV_LAYOUT}") from None
    if done != n:
        raise UserError(_csv_problem(path, done) or f"{path}: {done} rows parsed of the {n} lines that hold "
                                                    f"values; {_CSV_LAYOUT}")
    return labels, len(train_rows)


def _has_content(path: Path) -> bool:
    with open(path, "rb") as f:
        return bool(f.read(1 << 16).strip())


def letters_split_indices(n: int, split: str) -> np.ndarray:
    """Rows of the train or test split: a seeded permutation, so the split never changes for a file."""
    perm = np.random.default_rng(LETTERS_SPLIT_SEED).permutation(n)
    n_test = int(n * LETTERS_TEST_FRACTION)
    return np.sort(perm[:n_test] if split == "test" else perm[n_test:])


def load_letters_csv(split: str, data_path, options: LoadOptions = LoadOptions()) -> Data:
    path = find_letters_csv(data_path).resolve()
    st = path.stat()
    prefix = f"letters-csv-{stamp(path)[:8]}-"

    def capacity() -> int:
        check_parseable(path)
        return count_rows(path)

    def decode(rows: Rows) -> tuple[int, dict[str, np.ndarray]]:
        labels, num_train = parse_letters_csv(path, rows)
        return len(labels), {"labels": labels, "num_train": np.array(num_train)}

    def consistent(count: int, arrays: dict[str, np.ndarray]) -> bool:
        labels, num_train = arrays.get("labels"), arrays.get("num_train")
        return (labels is not None and num_train is not None and labels.dtype == np.uint8 and labels.ndim == 1
                and len(labels) == count >= int(num_train) >= 0 and int(labels.max(initial=0)) < len(LETTER_CLASSES))

    found = decoded(prefix + stamp("v3", path, st.st_size, st.st_mtime_ns), prefix, (1, 28, 28), capacity, decode,
                    source=str(path), consistent=consistent)
    labels, num_train, notes = found.arrays["labels"], int(found.arrays["num_train"]), list(found.notes)
    rows = slice(0, num_train) if split == "train" else slice(num_train, None)
    if split == "test" and num_train == len(labels):
        raise UserError(f"{path}: {len(labels)} rows leave no test split (it is a seeded "
                        f"{LETTERS_TEST_FRACTION:.0%} of the rows); give at least "
                        f"{math.ceil(1 / LETTERS_TEST_FRACTION)}")
    x = found.images[rows]  # a slice of the mapped file: no copy
    y = torch.from_numpy(labels[rows].astype(np.int64))
    present = set(y.unique().tolist())
    absent = [c for i, c in enumerate(LETTER_CLASSES) if i not in present]
    if absent and len(y):
        # A conditional model still has these labels (the 26 columns of its grids) but nothing to learn them from.
        notes.append(f"{path}: the {split} split has no rows of letter(s) {', '.join(absent)}")
    return Data("letters-csv", x, y, len(LETTER_CLASSES), list(LETTER_CLASSES), source=str(path), notes=notes,
                mapped_from=str(found.path or ""))

