"""The run folder and ``results.json``: written atomically after every job.

``results.json`` is always valid JSON on disk: it is written to a temporary
file in the same folder, flushed and fsynced, then renamed over the old one,
so a run killed at any instant leaves the last complete version behind.
"""

from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import json
import logging
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable

from harness.errors import DISK_FULL_ERRNOS, HarnessError, StorageError
from harness.text import squeeze

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


_DEVICE_NAMES = re.compile(r"(con|prn|aux|nul|com[0-9\u00b9\u00b2\u00b3]|lpt[0-9\u00b9\u00b2\u00b3])", re.IGNORECASE)
"""Names Windows keeps for devices, with any extension (``aux.2024``): a folder or file so named is the device."""


def _not_a_device(name: str) -> str:
    """``name`` with ``_`` after its first part when that part is a Windows device name (``con`` -> ``con_``,
    ``nul.png`` -> ``nul_.png``), on every system: a run folder copied to Windows must still open there."""
    stem, dot, rest = name.partition(".")
    return f"{stem}_{dot}{rest}" if _DEVICE_NAMES.fullmatch(stem) else name


def safe_name(name: str, max_length: int = 80) -> str:
    """A file-name-safe form of a plugin-supplied name: no separators, no ``..``, no leading dot, no Windows
    device name."""
    cleaned = _UNSAFE.sub("_", str(name)).strip("._") or "unnamed"
    cleaned = re.sub(r"\.{2,}", ".", cleaned)
    return _not_a_device(cleaned)[:max_length]


_RUN_NAME_BYTES = 200
"""At most this many bytes of a run folder's name in UTF-8: file systems allow 255."""


def run_folder_name(run_id: str) -> str:
    """The folder name of the run ``--run-id run_id``: ``safe_name``'s rule for ASCII, and letters of
    other scripts kept (``実験-1``, ``étude``), where the file system can encode them; else the ASCII
    form with 8 hex digits of the id's SHA-1, so that two ids of other scripts stay two folders."""
    import unicodedata

    text = unicodedata.normalize("NFC", str(run_id))

    def kept(ch: str) -> bool:
        if ch.isascii():
            return ch.isalnum() or ch in "._-"
        return ch.isprintable() and not ch.isspace()

    cleaned = re.sub("\0+", "_", "".join(ch if kept(ch) else "\0" for ch in text)).strip("._")
    cleaned = re.sub(r"\.{2,}", ".", cleaned)
    while len(cleaned.encode("utf-8")) > _RUN_NAME_BYTES:
        cleaned = cleaned[:-1]
    cleaned = cleaned.rstrip("._")
    if cleaned.isascii():
        return safe_name(cleaned)
    try:
        os.fsencode(cleaned)
    except UnicodeError:  # an ASCII file-system encoding (LC_ALL=C without UTF-8 mode)
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]
        return f"{safe_name(text, 71)}-{digest}"
    return _not_a_device(cleaned)  # com¹ is one too


# A job id whose parts use only these characters maps to a distinct file name by safe_name alone.
_PLAIN_NAME = r"[A-Za-z0-9.-]+"
_PLAIN_JOB_ID = re.compile(rf"{_PLAIN_NAME}@{_PLAIN_NAME}(#\w+={_PLAIN_NAME}(,\w+={_PLAIN_NAME})*)?")


def job_file_stem(job_id: str, max_length: int = 80) -> str:
    """The file-name stem of a job's files (ONNX export, weights, plots): distinct for distinct ids.

    ``safe_name`` alone maps ``odd net@d`` and ``odd_net@d`` to the same name, so one job's export
    would overwrite the other's. A plain id (names of letters, digits, ``.-``) keeps the readable
    form (``mnist-fast_mnist``); any other id, one with upper case letters too (a case-insensitive file
    system would take ``CNN_d`` and ``cnn_d`` for one file), gets the first 8 hex digits of its SHA-1 appended.
    """
    stem = safe_name(job_id, max_length)
    # lower case too: on a case-insensitive file system (Windows, macOS) CNN@d and cnn@d would be one file
    if _PLAIN_JOB_ID.fullmatch(job_id) and len(stem) == len(job_id) and job_id == job_id.lower():
        return stem
    digest = hashlib.sha1(job_id.encode("utf-8")).hexdigest()[:8]
    return f"{stem[: max_length - 9]}-{digest}"


def _new_file_mode() -> int:
    """The mode ``open()`` gives a new file under this process's umask (0o644 under the usual 022)."""
    try:  # Linux: read without changing it (os.umask can only be read by setting it)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def temp_file_beside(target: Path) -> tuple[int, str]:
    """``(fd, name)`` of a temporary file beside ``target``, to be renamed over it once written.

    The temporary name starts with a dot, so a half-written file is never mistaken for a result.

    ``mkstemp`` creates it 0600; it gets the mode a plain new file would have, so the run folder's
    reports stay readable by CI artifact collectors and other users as the umask allows.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    if os.name == "posix":
        with _suppress_os_error():
            os.fchmod(fd, _new_file_mode())
    return fd, tmp


REPLACE_TRIES = 5
"""How often :func:`atomic_write_text` tries to replace a file another program holds open (0.1 s apart)."""


def _replace(tmp: str, path: Path) -> None:
    """``os.replace``, tried again for a moment where the target is open in another program: on Windows
    replacing a file fails while a reader holds it (Excel on results.csv, a virus scan, a sync client, a
    harness report reading results.json). Then the error names the target, not the temporary file."""
    for attempt in range(REPLACE_TRIES):
        try:
            os.replace(tmp, path)
            return
        except PermissionError as exc:
            if attempt + 1 < REPLACE_TRIES:
                time.sleep(0.1)
                continue
            raise PermissionError(exc.errno, f"{exc.strerror or exc}; is it open in another program?",
                                  str(path)) from None


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers only ever see the old or the new content."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so readers only ever see the old or the new content (a full disk leaves
    the old file, not a truncated one)."""
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Replace ``path`` with what ``write`` writes into the binary file it is given (``torch.save`` streams
    into it), so readers only ever see the old or the new content; a failure, whatever raised it, leaves
    the old file and no temporary one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file_beside(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        _replace(tmp, path)
    except BaseException:
        with _suppress_os_error():
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":  # pragma: no cover
        return
    with _suppress_os_error():
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _suppress_os_error:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        return exc_type is not None and issubclass(exc_type, OSError)


def json_ready(value: Any) -> Any:
    """``value`` as strict JSON can hold it: NaN and infinities become null (JSON has neither, and strict
    parsers such as jq refuse Python's ``NaN``), numpy scalars and arrays their Python numbers and lists,
    tuples and sets lists, keys strings, anything else its ``str``. A plugin's ``reference`` or ``info``
    holding ``float("nan")`` or a ``numpy.float32`` would otherwise stop a run at its first save."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_ready(v) for v in value]
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):  # numpy scalars and arrays
        return json_ready(value.tolist())
    return str(value)


def json_text(data: Any, indent: int | None = 2) -> str:
    """``data`` as strict JSON text (see :func:`json_ready`)."""
    return json.dumps(json_ready(data), indent=indent, allow_nan=False)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json_text(data) + "\n")


def new_run_id(now: _dt.datetime | None = None) -> str:
    now = now or _dt.datetime.now()
    return now.strftime("%Y%m%d-%H%M%S")


def job_id(model: str, dataset: str, point: dict[str, Any] | None = None) -> str:
    """The key of a job in a run: ``model@dataset`` plus sweep settings when there are any."""
    base = f"{model}@{dataset}"
    if point:
        base += "#" + ",".join(f"{k}={point[k]}" for k in sorted(point))
    return base


def read_regular_file(path: Path) -> bytes:
    """The bytes of ``path``, a regular file; a FIFO or a device (``/dev/zero`` behind a link) is refused
    before it is opened, where reading it would wait forever or fill the memory."""
    import stat

    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise HarnessError(f"{path} is not a regular file")
    with open(path, "rb") as handle:
        return handle.read()


def run_folder_of(path: "str | Path") -> Path:
    """The run folder ``path`` names: itself, or the folder holding it when it is a file (its results.json),
    as :func:`load_results` reads either."""
    path = Path(path)
    if path.is_file() and path.name != RESULTS_FILE:  # --like a.toml: "no results.json in ." said nothing useful
        raise HarnessError(f"{path} is a file, not a run folder or its {RESULTS_FILE}")
    return path.parent if path.is_file() else path


def load_results(path: Path) -> dict[str, Any]:
    """Read a run's ``results.json`` (or the file itself); a clear :class:`HarnessError` if unusable."""
    path = Path(path)
    file = path / RESULTS_FILE if path.is_dir() else path
    if not file.exists():
        if not path.exists():
            raise HarnessError(f"{path}: no such run folder")
        if path.is_dir() and (path / RunFolder.LOCK_FILE).exists():  # a run made this folder, then lost the file
            raise HarnessError(f"no {RESULTS_FILE} in the run folder {path}: the run was stopped before its first "
                               f"write, or the file was removed")
        if path.is_dir() and (path / "report.md").exists():  # harness report A B --out DIR writes no results.json
            raise HarnessError(f"no {RESULTS_FILE} in {path}: it looks like a joined report; give the run folders "
                               f"it joined instead")
        runs = sorted(found.parent.name for found in path.glob(f"*/{RESULTS_FILE}")) if path.is_dir() else []
        if runs:  # --out's folder, which holds the runs: name them
            shown = ", ".join(str(path / name) for name in runs[:3]) + (" ..." if len(runs) > 3 else "")
            raise HarnessError(f"no {RESULTS_FILE} in {path}: it holds {len(runs)} run folder(s); give one "
                               f"(e.g. {shown})")
        above = next((parent for parent in path.resolve().parents if (parent / RESULTS_FILE).is_file()), None)
        if above is not None:  # a folder inside a run (its onnx/, plots/ or logs/): name the run
            raise HarnessError(f"no {RESULTS_FILE} in {path}: it is inside the run folder {above}; give that")
        raise HarnessError(f"no {RESULTS_FILE} in {path}")
    try:
        data = json.loads(read_regular_file(file).decode("utf-8"))
    except OSError as exc:
        raise HarnessError(f"cannot read {file}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HarnessError(f"{file} is not valid JSON: {squeeze(exc, 300)}") from None
    except RecursionError:  # [[[[... thousands deep: the parser's stack runs out
        raise HarnessError(f"{file} was edited or damaged: it is nested too deeply to read "
                           f"(harness writes at most a few levels)") from None
    except ValueError:  # an integer of over 4,300 digits: past Python's int_max_str_digits
        raise HarnessError(f"{file} was edited or damaged: it holds an integer too long to read (thousands of "
                           f"digits)") from None
    if isinstance(data, dict) and isinstance(data.get("latency"), list) and "model" in data and "jobs" not in data:
        raise HarnessError(f"{file} is the output of harness bench --json (one ONNX file's latency rows), not a "
                           f"run's {RESULTS_FILE}: report and compare read the run folders harness run writes")
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        raise HarnessError(f"{file} does not look like harness results (no 'jobs' list)")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise HarnessError(f"{file} has schema_version {version!r}; this harness reads {SCHEMA_VERSION}")
    problem = damage(data)
    if problem:
        raise HarnessError(f"{file} was edited or damaged: {problem}")
    return data


STATUSES = ("ok", "failed", "skipped")
_NUMBER = (int, float)
_LATENCY_NUMBERS = ("batch_size", "threads", "runs", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms",
                    "throughput_per_s")


MAX_DEPTH = 64
"""How deeply results.json may nest: harness writes a handful of levels, plugins' extras a few more; the
reports' walkers recurse, and thousands of levels would run the stack out."""


def _path_text(data: dict[str, Any], path: tuple[Any, ...]) -> str:
    """A place in results.json as the messages name it: ``job 2 (a@b): train.epochs``, ``config.sweep[0]``."""
    where = ""
    if len(path) >= 2 and path[0] == "jobs" and isinstance(path[1], int):
        job = data["jobs"][path[1]]
        name = (job.get("id") or job.get("model")) if isinstance(job, dict) else None
        where = f"job {path[1] + 1}" + (f" ({squeeze(name, 80)})" if isinstance(name, str) else "")
        path = path[2:]
        if not path:
            return where
        where += ": "
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return where + squeeze(text, 120)


def _outsized(data: dict[str, Any]) -> str | None:
    """The first value of ``data`` nested deeper than :data:`MAX_DEPTH`, or an integer no float can hold
    (``1e400`` written out: the tables' arithmetic overflows on it); None when there is none. Walks
    without recursing, so that the depth it looks for cannot stop it."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, (dict, list)):
            if len(path) >= MAX_DEPTH:
                return f"{_path_text(data, path)} is nested more than {MAX_DEPTH} levels deep"
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((item, (*path, key)) for key, item in reversed(list(items)))
        elif isinstance(value, int) and not isinstance(value, bool):
            try:
                float(value)
            except OverflowError:
                return (f"{_path_text(data, path)} is a number too large for a figure (about "
                        f"10^{int(value.bit_length() * 0.30103)})")
    return None


def damage(data: dict[str, Any]) -> str | None:
    """The first place where ``data`` breaks the types docs/CONTRACT.md gives results.json, or None.

    Checked where the reports, ``compare`` and ``--resume`` read: a hand-edited file then fails in
    one line naming the field instead of deep inside a table. Fields the contract leaves open (and
    plugins' extras) are not checked.
    """
    def kind(value: Any) -> str:
        return "null" if value is None else type(value).__name__

    def number(value: Any) -> bool:
        return value is None or (isinstance(value, _NUMBER) and not isinstance(value, bool))

    outsized = _outsized(data)
    if outsized:
        return outsized
    for key in ("config", "environment", "metric_specs"):
        if not isinstance(data.get(key, {}), (dict, type(None))):
            return f"{key} is {kind(data[key])}, not an object"
    if not isinstance(data.get("run_id"), (str, type(None))):
        return f"run_id is {kind(data['run_id'])}, not a string"
    if not isinstance(data.get("created", ""), str):  # joined reports take the latest of the runs'
        return f"created is {kind(data['created'])}, not an ISO-8601 string"
    from harness.edge import Question

    for key in Question.KEYS:  # the edge question's floor and budgets, which the reports ask again
        if not number((data.get("config") or {}).get(key)):
            return f"config.{key} is {kind(data['config'][key])}, not a number"
    planned = data.get("planned_jobs", [])
    if not isinstance(planned, (list, type(None))) or not all(isinstance(p, str) for p in planned or []):
        return "planned_jobs is not a list of job ids"
    if not isinstance(data.get("reporter_errors", []), (list, type(None))):
        return f"reporter_errors is {kind(data['reporter_errors'])}, not a list"
    for i, job in enumerate(data["jobs"], 1):
        if not isinstance(job, dict):
            return f"job {i} is {kind(job)}, not an object"
        where = f"job {i} ({job.get('id') or job.get('model')})"
        for key in ("id", "model", "dataset", "error", "stage"):
            if not isinstance(job.get(key), (str, type(None))):
                return f"{where}: {key} is {kind(job[key])}, not a string"
        if job.get("status") not in (*STATUSES, None):
            return f"{where}: status {job['status']!r} is none of {', '.join(STATUSES)}"
        for key in ("train", "metrics", "onnx", "point", "reference"):
            if not isinstance(job.get(key), (dict, type(None))):
                return f"{where}: {key} is {kind(job[key])}, not an object"
        for key in ("params", "flops", "seconds"):
            if not number(job.get(key)):
                return f"{where}: {key} is {kind(job[key])}, not a number"
        if not isinstance(job.get("latency_skipped", []), (list, type(None))):
            return f"{where}: latency_skipped is {kind(job['latency_skipped'])}, not a list"
        if not isinstance((job.get("train") or {}).get("history", []), (list, type(None))):
            return f"{where}: train.history is {kind(job['train']['history'])}, not a list"
        if not isinstance((job.get("train") or {}).get("recipe"), (dict, type(None))):
            return f"{where}: train.recipe is {kind(job['train']['recipe'])}, not an object"
        onnx = job.get("onnx") or {}
        blocks = [("metrics", job.get("metrics")), ("onnx.metrics", onnx.get("metrics"))]
        rows = [("latency", job.get("latency"))]
        for key in ("variants", "latency"):
            if not isinstance(job.get(key), (list, type(None))):
                return f"{where}: {key} is {kind(job[key])}, not a list"
        for n, variant in enumerate(job.get("variants") or [], 1):
            if not isinstance(variant, dict):
                return f"{where}: variant {n} is {kind(variant)}, not an object"
            if not isinstance(variant.get("variant"), (str, type(None))):
                return f"{where}: variant {n}'s name is {kind(variant['variant'])}, not a string"
            if not isinstance(variant.get("latency_skipped", []), (list, type(None))):
                return f"{where}: variant {variant['variant']} latency_skipped is not a list"
            blocks.append((f"variant {variant.get('variant')} metrics", variant.get("metrics")))
            rows.append((f"variant {variant.get('variant')} latency", variant.get("latency")))
        for key in ("bytes", "max_abs_diff"):
            if not number(onnx.get(key)):
                return f"{where}: onnx.{key} is {kind(onnx[key])}, not a number"
        for label, block in blocks:
            if block is None:
                continue
            if not isinstance(block, dict):
                return f"{where}: {label} is {kind(block)}, not an object"
            for name, value in block.items():
                if not number(value):
                    return f"{where}: {label} {name} is {kind(value)}, not a number"
        for label, latency in rows:
            if not isinstance(latency, (list, type(None))):
                return f"{where}: {label} is {kind(latency)}, not a list"
            for row in latency or []:
                if not isinstance(row, dict):
                    return f"{where}: a {label} row is {kind(row)}, not an object"
                for key in _LATENCY_NUMBERS:
                    if not number(row.get(key)):
                        return f"{where}: {label} {key} is {kind(row[key])}, not a number"
                if row.get("p50_ms") is None:  # a row is a measurement: the tables divide by its median
                    return f"{where}: a {label} row has no p50_ms"
                for key in ("runtime", "provider"):
                    if not isinstance(row.get(key), (str, type(None))):
                        return f"{where}: {label} {key} is {kind(row[key])}, not a string"
    return None


def run_taken(out: Path, run_id: str) -> HarnessError | None:
    """The error for a new run whose ``--run-id`` names a finished or running run in ``out``; else None."""
    path = Path(out) / run_folder_name(run_id)
    if not (path / RESULTS_FILE).exists():
        return None
    what = repr(run_id) if path.name == run_id else f"{run_id!r} (folder {path.name!r})"
    return HarnessError(f"run {what} already exists in {out}; use --resume or another --run-id")


def _open_lock_file(path: Path, create: bool) -> Any:
    """``path`` (a run folder's ``.lock``) open as text: made and open for writing when ``create``, else
    only read (a look at who holds a run folder another user owns).

    The pid written into it truncates the file, so it must be the run folder's own plain file: a
    symbolic link there (left by a copy, or planted) is not followed, which would overwrite the file
    it points to, and a FIFO or device is refused, which would hang a ``harness compare`` that only
    looks. Each is a one-line :class:`HarnessError`; an :class:`OSError` for what the system refuses.
    """
    import stat

    flags = os.O_RDWR | os.O_CREAT if create else os.O_RDONLY
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)  # Windows has neither
    link = HarnessError(f"{path} is a symbolic link, not the run's lock file; remove it and run again")
    if os.path.islink(path):
        raise link
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # made a link since the look above
            raise link from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise HarnessError(f"{path} is not a regular file, so it cannot be the run's lock file; remove it "
                               f"and run again")
        if getattr(os, "O_NONBLOCK", 0):  # only the open had to return at once
            os.set_blocking(fd, True)
        return os.fdopen(fd, "r+" if create else "r", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


class RunInUseError(HarnessError):
    """The run folder is held by another harness process (see :meth:`RunFolder.lock`); ``holder``: its pid."""

    holder = "unknown"


FILE_ROOM = 128
"""Bytes a run folder's path must leave below the system's limit for its files' paths: ``onnx/``, an
80-character job stem (:func:`job_file_stem`), a variant's name and the suffix."""


WINDOWS_MAX_PATH = 260
"""Windows' limit on a path, in UTF-16 units with the closing NUL, unless long paths are switched on."""


def _windows_path_limit() -> int:
    """:data:`WINDOWS_MAX_PATH`, or 32,767 where the system has long paths on (``LongPathsEnabled``;
    Python's own manifest opts in)."""
    from harness.environment import windows_machine_value

    enabled = windows_machine_value(r"SYSTEM\CurrentControlSet\Control\FileSystem", "LongPathsEnabled")
    return 32767 if enabled == 1 else WINDOWS_MAX_PATH


def check_path_room(run_dir: Path) -> None:
    """Refuse (:class:`HarnessError`, exit 2 before any job) a run folder whose path leaves its files no room
    under the system's limit on a path (PATH_MAX, 4,096 bytes on Linux; 260 characters on Windows without
    long paths, where a OneDrive folder gets there): the run trained its first job and then failed to write
    the weights, exit 74, with a --resume that would fail the same way."""
    path = str(Path(run_dir).absolute())
    if sys.platform == "win32":  # no pathconf there; the limit counts UTF-16 units
        limit, length, unit = _windows_path_limit(), len(path.encode("utf-16-le")) // 2, "characters"
    else:
        anchor = Path(path)
        while not anchor.exists() and anchor != anchor.parent:
            anchor = anchor.parent
        try:
            limit = os.pathconf(anchor, "PC_PATH_MAX")
        except (AttributeError, OSError, ValueError):  # a limit the system does not say
            return
        length, unit = len(os.fsencode(path)), "bytes"
    if limit > 0 and length + FILE_ROOM > limit:
        raise HarnessError(f"the run folder's path is {length} {unit} long; with its files' names it would pass "
                           f"this system's limit of {limit} {unit} on a path: choose a shorter --out or --run-id")


WRITTEN_FOLDERS = ("onnx", "weights")
"""The run folder's sub-folders a job writes its files into (and a resume removes unfinished jobs' from).
``plots/`` is not one: it may link to a folder of the user's on purpose, and each plot replaces a link in
place (atomically) rather than writing through it."""


def check_no_links(run_dir: Path, doing: str) -> None:
    """Refuse (:class:`HarnessError`) a run folder whose :data:`WRITTEN_FOLDERS`, or anything in them, is a
    symbolic link: a run folder from elsewhere (a CI artifact keeps links) pointed ``onnx/JOB.onnx`` at another
    file, which a --resume overwrote with its export, or ``onnx/`` at another folder, where it removed files.
    ``doing``: what the refusal stops, for the message."""
    found = []
    for name in WRITTEN_FOLDERS:
        top = Path(run_dir) / name
        if top.is_symlink():
            found.append(name)
            continue
        for where, folders, files in os.walk(top):  # followlinks=False: a linked folder is listed, not entered
            found += [os.path.relpath(os.path.join(where, entry), run_dir) for entry in (*folders, *files)
                      if os.path.islink(os.path.join(where, entry))]
    if found:
        shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        raise HarnessError(f"{run_dir} holds symbolic links where the harness writes ({shown}): from elsewhere, "
                           f"they could point at any file; remove them to {doing}")


class RunFolder:
    """``<out>/<run-id>/`` with its ``results.json`` kept current job by job."""

    LOCK_FILE = ".lock"

    def __init__(self, path: Path, data: dict[str, Any]):
        self.path = Path(path)
        self.data = data
        self._lock: Any = None
        self._job_texts: dict[int, tuple[dict[str, Any], str]] = {}  # id(row) -> (row, its JSON in results.json)

    @classmethod
    def holder(cls, path: Path) -> str | None:
        """The pid a harness process holding the run folder ``path`` wrote, or None when none holds it. Only
        looks: no ``.lock`` file is made (a run always has one while it runs)."""
        from harness.filelock import held_elsewhere

        try:
            handle = _open_lock_file(Path(path) / cls.LOCK_FILE, create=False)
        except (OSError, HarnessError):
            return None
        with handle:
            if held_elsewhere(handle):
                return squeeze(handle.read(), 40) or "unknown"
            return None

    def lock(self) -> "RunFolder":
        """Hold this run folder for this process, so a second ``harness run`` on it (say a ``--resume``
        started while the run still goes) is refused instead of both writing ``results.json``.

        An advisory lock on ``.lock`` in the folder (:mod:`harness.filelock`: ``flock``, or ``msvcrt`` on
        Windows), released when the process ends, however it ends (a killed run leaves no stale lock).
        """
        from harness.filelock import Unsupported, try_lock

        try:
            handle = _open_lock_file(self.path / self.LOCK_FILE, create=True)
        except OSError as exc:
            raise HarnessError(f"cannot write in the run folder {self.path}: {exc.strerror or exc}") from None
        try:
            taken = try_lock(handle)
        except Unsupported as exc:  # a file system without flock (some NFS, CIFS or FUSE mounts): run unlocked
            handle.close()
            log.warning("cannot lock %s (%s); running without the lock that refuses a second harness "
                        "process on this run", self.path, exc)
            return self
        if not taken:
            handle.seek(0)
            holder = squeeze(handle.read(), 40) or "unknown"
            handle.close()
            error = RunInUseError(f"run {self.path.name!r} in {self.path.parent} is in use by another harness "
                                  f"process (pid {holder}); wait for it to end, or use another --run-id")
            error.holder = holder
            raise error from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock = handle
        return self

    def unlock(self) -> None:
        """Let the folder go (the end of ``execute``); closing the file drops the ``flock``."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    @classmethod
    def create(cls, out: Path, run_id: str | None, environment: dict[str, Any],
               config: dict[str, Any]) -> "RunFolder":
        """A new run folder ``out/run_id``; without a ``run_id``, one named after the time, with a
        ``-2``, ``-3`` ... suffix when another run started in the same second."""
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise HarnessError(f"--out {out} is a file, not a folder")
        chosen = bool(run_id)  # "" (an unset $CI_ID) means no choice, as --resume reads it
        base = run_id if chosen else new_run_id()
        if chosen and run_folder_name(base) != base:
            log.warning("--run-id %r is not a plain folder name: the run folder is %r", base, run_folder_name(base))
        for attempt in range(1, 1000):
            name = base if attempt == 1 else f"{base}-{attempt}"
            path = out / run_folder_name(name)
            check_path_room(path)
            if not (path / RESULTS_FILE).exists():
                try:
                    path.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise HarnessError(f"cannot make the run folder {path}: {exc.strerror or exc}") from None
                try:
                    folder = cls(path, {}).lock()
                except RunInUseError:
                    if chosen:
                        raise
                    continue  # another run took this name a moment ago and is still writing its results.json
                if not (path / RESULTS_FILE).exists():
                    break
                folder.unlock()  # another process created it meanwhile
            if chosen:  # results.json is there (it was, or another process wrote it meanwhile)
                raise run_taken(out, run_id) or HarnessError(f"run {run_id!r} already exists in {out}")
        else:  # pragma: no cover - a thousand runs in one second
            raise HarnessError(f"no free run id for {base!r} in {out}; give one with --run-id")
        folder.data = {
            "schema_version": SCHEMA_VERSION,
            "run_id": path.name,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "environment": environment,
            "config": config,
            "jobs": [],
        }
        folder.save()
        return folder

    @classmethod
    def open(cls, path: Path, lock: bool = False) -> "RunFolder":
        """The run at ``path``; with ``lock``, held for this process first (see :meth:`lock`), then read."""
        folder = cls(Path(path), {})
        if lock:
            folder.lock()
        try:
            folder.data = load_results(path)
        except BaseException:
            folder.unlock()
            raise
        return folder

    @property
    def results_path(self) -> Path:
        return self.path / RESULTS_FILE

    def finished_ids(self) -> set[str]:
        """Ids of jobs that are done (ok or skipped): a resume does not repeat them; it runs a failed job again."""
        return {job["id"] for job in self.data["jobs"] if job.get("status") in ("ok", "skipped") and "id" in job}

    def record(self, row: dict[str, Any]) -> None:
        """Add or replace the job ``row`` (matched by id) and rewrite ``results.json``."""
        jobs = [job for job in self.data["jobs"] if job.get("id") != row["id"]]
        jobs.append(row)
        self.data["jobs"] = jobs
        self.save()

    def text(self) -> str:
        """``results.json``'s text: :func:`json_text` of :attr:`data`, character for character, with each job's
        JSON made once and kept (:attr:`_job_texts`).

        Saved after every job, the whole document was made again each time: 0.6 s a save at 1,000 jobs, five
        minutes of a 1,000-job sweep. A row saved once is taken as it was then: a job's row is replaced
        through :meth:`record`, not changed in place (a row changed in place after its first save, say by a
        reporter handed it, keeps the figures the harness recorded)."""
        jobs = self.data.get("jobs")
        if not isinstance(jobs, list):
            return json_text(self.data)
        kept, texts = {}, []
        for job in jobs:
            hit = self._job_texts.get(id(job))
            if hit is not None and hit[0] is job:
                text = hit[1]
            else:  # nested two levels in the document: its lines indented by 4 (json.dumps' own indent=2)
                text = json_text(job).replace("\n", "\n    ")
            kept[id(job)] = (job, text)
            texts.append(text)
        self._job_texts = kept
        marker = f"jobs-{os.getpid()}-{id(self)}-{time.monotonic_ns()}"
        head = json_text({**self.data, "jobs": marker})  # the document with the jobs' place held, in key order
        listing = "[\n    " + ",\n    ".join(texts) + "\n  ]" if texts else "[]"
        return head.replace(json.dumps(marker), listing, 1)

    def save(self) -> None:
        """Rewrite ``results.json``; a :class:`HarnessError` naming the cause when the disk refuses (full,
        read-only): the file keeps what the last good write held."""
        written = self.results_path.exists()
        try:
            atomic_write_text(self.results_path, self.text() + "\n")
        except OSError as exc:
            if not written:  # the folder refused the run from the start: the --out given
                raise HarnessError(f"cannot write {self.results_path}: {exc.strerror or exc}") from None
            fix = "make room" if exc.errno in DISK_FULL_ERRNOS else "make the folder writable"
            raise StorageError(f"cannot write {self.results_path}: {exc.strerror or exc}; it keeps the jobs written "
                               f"before: {fix}, then continue with: harness run --resume --run-id {self.path.name} "
                               f"--out {self.path.parent}") from None


def latest_run(out: Path) -> Path | None:
    """The most recently created run folder under ``out``: by the ``created`` time its results.json records
    (a resume that only saved an older run must not make it the latest), then by the file's mtime."""
    out = Path(out)
    if not out.is_dir():
        return None
    candidates: Iterable[Path] = (p for p in out.iterdir() if (p / RESULTS_FILE).is_file())

    soon = _dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(days=1)

    def created(folder: Path) -> tuple[str, float]:
        file = folder / RESULTS_FILE
        try:
            stamp = json.loads(file.read_text(encoding="utf-8")).get("created")
        except (OSError, ValueError, AttributeError):
            stamp = None
        try:  # a stamp in the future (a downloaded artifact's "9999-...") does not make a run the latest
            when = _dt.datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
            if when is not None and (when if when.tzinfo else when.replace(tzinfo=_dt.timezone.utc)) > soon:
                stamp = None
        except ValueError:
            stamp = None
        return (stamp if isinstance(stamp, str) else "", file.stat().st_mtime)

    return max(candidates, key=created, default=None)
