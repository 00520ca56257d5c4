"""Command line: ``slicer encode|decode|inspect`` plus subcommands of optional modules.

Errors print one line on stderr and exit with status 2 (no traceback).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["cmake_dir", "main", "pkgconfig_dir"]

#: Modules that add subcommands through ``register(subparsers)``: (module, the extra that
#: installs its dependencies, the commands it adds). When the module cannot be imported, its
#: commands still parse and say how to install the extra.
_SUBCOMMAND_MODULES: list[tuple[str, str, tuple[str, ...]]] = [
    ("slicer.split.cli", "split", ("cuts", "plan", "run", "calibrate")),
    ("slicer.serve.cli", "serve", ("serve", "client", "loadtest")),
    ("slicer.llm.cli", "models", ("generate",)),
]
#: The distribution name on PyPI (the import name stays ``slicer``; README, "Installing").
DISTRIBUTION = "slicer-codec"
_EXIT_ERROR = 2


class CliError(Exception):
    """A user-facing error of the command line."""


def cmake_dir() -> Path:
    """The folder holding slicerConfig.cmake inside the installed package."""
    from . import _core

    folder = Path(_core.__file__).resolve().parent / "lib" / "cmake" / "slicer"
    if not (folder / "slicerConfig.cmake").is_file():
        raise CliError(f"slicerConfig.cmake is not installed in {folder}")
    return folder


def pkgconfig_dir() -> Path:
    """The folder holding slicer.pc (pkg-config) inside the installed package."""
    from . import _core

    folder = Path(_core.__file__).resolve().parent / "lib" / "pkgconfig"
    if not (folder / "slicer.pc").is_file():
        raise CliError(f"slicer.pc is not installed in {folder}")
    return folder


def _bits(text: str) -> int | list[int]:
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"bits must be an int or a list like 8,4,2: {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("bits must not be empty")
    return values[0] if len(values) == 1 and "," not in text else values


def _blocks(text: str) -> int | tuple[int, int]:
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"blocks must be M or M+,M-: {text!r}") from None
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise argparse.ArgumentTypeError(f"blocks must be M or M+,M-: {text!r}")


def _count(text: str) -> int:
    try:
        value = int(text.replace("_", ""), 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer: {text!r}")
    return value


def _load_npy(path: str, bfloat16_bits: bool) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {path}: {exc}") from exc
    if bfloat16_bits:
        from ._intake import BFLOAT16

        if array.dtype not in (np.dtype("<u2"), np.dtype("<i2"), np.dtype("V2")):
            raise CliError(f"--bfloat16-bits needs a uint16 array, {path} holds {array.dtype}")
        array = array.view(BFLOAT16)
    elif array.dtype == np.dtype("V2"):
        # What numpy.save writes for an ml_dtypes.bfloat16 array: raw 2-byte records.
        raise CliError(
            f"{path} holds raw 2-byte records; if they are bfloat16, pass --bfloat16-bits"
        )
    return array


def _cmd_encode(args: argparse.Namespace) -> int:
    from . import encode

    array = _load_npy(args.input, args.bfloat16_bits)
    stream = encode(
        array,
        sparsity=args.sparsity,
        asym=args.asym,
        blocks=args.blocks,
        bits=args.bits,
        delta=args.delta,
        seed=args.seed,
        max_bytes=args.max_bytes,
        groups=args.groups,
        chunk_size=args.chunk_size,
        threads=args.threads,
    )
    Path(args.output).write_bytes(stream)
    bpe = 8.0 * len(stream) / array.size if array.size else 0.0
    print(f"{args.output}: {len(stream)} bytes ({bpe:.4f} bits per element)")
    return 0


def _cmd_decode(args: argparse.Namespace) -> int:
    from . import decode
    from ._intake import BFLOAT16

    stream = Path(args.input).read_bytes()
    array = decode(stream, threads=args.threads, max_elements=args.max_elements)
    if array.dtype == BFLOAT16:
        # .npy has no bfloat16 type: store the bit patterns (read back with --bfloat16-bits).
        array = array.view(np.uint16)
        print("bfloat16 stream: wrote its bit patterns as uint16", file=sys.stderr)
    # Written under exactly the name given (numpy.save would append ".npy" to a bare name).
    with open(args.output, "wb") as file:
        np.save(file, array, allow_pickle=False)
    print(f"{args.output}: shape {tuple(array.shape)} {array.dtype}")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from . import inspect

    info = inspect(Path(args.input).read_bytes(), blocks=args.blocks)
    if args.json:
        print(json.dumps(info.to_dict(), indent=1))
    else:
        print(info)
    return 0


def _add_codec_commands(sub: Any) -> None:
    enc = sub.add_parser("encode", help="encode a .npy array into a SLICER stream")
    enc.add_argument("input", help="input .npy (float32, float16; see --bfloat16-bits)")
    enc.add_argument("output", help="output stream (.slc)")
    enc.add_argument("--sparsity", type=float, default=0.9, help="fraction dropped, [0, 1)")
    enc.add_argument("--asym", type=float, default=0.0, help="asymmetry lambda, [0, 1)")
    enc.add_argument("--blocks", type=_blocks, default=None, help="M or M+,M- (default 3)")
    enc.add_argument("--bits", type=_bits, default=8, help="q_bit, or widths like 8,4,2")
    enc.add_argument("--delta", type=float, default=0.01, help="ABQ budget (0: keep q_bit)")
    enc.add_argument("--seed", type=int, default=0, help="tie-break seed")
    enc.add_argument("--groups", choices=("tensor", "rows"), default="tensor")
    enc.add_argument("--max-bytes", type=int, default=None, help="rate control: size limit")
    enc.add_argument("--chunk-size", type=int, default=16384, help="elements per chunk")
    enc.add_argument("--threads", type=int, default=0, help="worker threads (0: all)")
    enc.add_argument(
        "--bfloat16-bits", action="store_true", help="the .npy holds bfloat16 bit patterns (uint16)"
    )
    enc.set_defaults(func=_cmd_encode)

    dec = sub.add_parser("decode", help="decode a SLICER stream into a .npy array")
    dec.add_argument("input", help="input stream (.slc)")
    dec.add_argument("output", help="output .npy (bfloat16 as uint16 bit patterns)")
    dec.add_argument("--threads", type=int, default=0, help="worker threads (0: all)")
    dec.add_argument(
        "--max-elements",
        type=_count,
        default=2**28,
        help="refuse streams that claim more elements (default 2**28: 1 GiB of float32)",
    )
    dec.set_defaults(func=_cmd_decode)

    ins = sub.add_parser("inspect", help="describe a stream: parameters, blocks, byte account")
    ins.add_argument("input", help="input stream (.slc)")
    ins.add_argument("--json", action="store_true", help="machine-readable JSON")
    ins.add_argument("--blocks", action="store_true", help="list every block (count, width, range)")
    ins.set_defaults(func=_cmd_inspect)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="slicer", description="SLICER intermediate-feature codec and split inference."
    )
    parser.add_argument("--version", action="version", version=f"slicer {__version__}")
    parser.add_argument(
        "--cmake-dir", action="store_true", help="print the folder holding slicerConfig.cmake"
    )
    parser.add_argument(
        "--pkgconfig-dir",
        action="store_true",
        help="print the folder holding slicer.pc (for PKG_CONFIG_PATH)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_codec_commands(sub)
    for name, extra, commands in _SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:  # optional dependencies of that module are not installed
            for command in commands:
                _add_missing_extra(sub, command, extra, exc)
            continue
        module.register(sub)
    return parser


def _add_missing_extra(sub: Any, command: str, extra: str, exc: ImportError) -> None:
    """A stand-in for a command whose optional dependencies are missing: it says what to
    install instead of argparse's "invalid choice"."""
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    message = (
        f"`slicer {command}` needs the {extra!r} extra ({reason}): "
        f"pip install '{DISTRIBUTION}[{extra}]'"
    )
    sub.add_parser(command, help=f"(needs: pip install '{DISTRIBUTION}[{extra}]')")
    _MISSING_EXTRA[command] = message


#: Commands whose module could not be imported, and the message that says what to install.
_MISSING_EXTRA: dict[str, str] = {}


def _join_negative_values(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``--memory -5MB`` as ``--memory=-5MB``: argparse takes a value that starts with "-"
    (other than a plain number) for an option and answers "expected one argument"; joined,
    the option's own check reports what is wrong with the value."""
    takes_value: set[str] = set()
    parsers = [parser]
    while parsers:
        current = parsers.pop()
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
            elif action.option_strings and action.nargs is None:
                takes_value.update(o for o in action.option_strings if o.startswith("--"))
    joined: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        following = argv[i + 1] if i + 1 < len(argv) else ""
        if token in takes_value and len(following) > 1 and following[0] == "-":
            if following[1].isdigit() or following[1] == ".":
                joined.append(f"{token}={following}")
                i += 2
                continue
        joined.append(token)
        i += 1
    return joined


def _close_progress_bars() -> None:
    """Close any tqdm bar still open (they use leave=False), so that the error message starts
    on a clean line instead of after a bar's last state."""
    tqdm_module = sys.modules.get("tqdm")
    if tqdm_module is None:
        return
    for bar in list(getattr(tqdm_module.tqdm, "_instances", ())):
        try:
            bar.leave = False
            bar.close()
        except Exception:  # noqa: BLE001 - closing a bar must never hide the real error
            pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in arguments if not a.startswith("-")), None)
    if command in _MISSING_EXTRA:  # before argparse, which would judge its options
        print(f"slicer: error: {_MISSING_EXTRA[command]}", file=sys.stderr)
        return _EXIT_ERROR
    args = parser.parse_args(_join_negative_values(parser, arguments))
    try:
        if args.cmake_dir:
            print(cmake_dir())
            return 0
        if args.pkgconfig_dir:
            print(pkgconfig_dir())
            return 0
        if getattr(args, "func", None) is None:
            parser.print_usage(sys.stderr)
            print("slicer: error: a command is required", file=sys.stderr)
            return _EXIT_ERROR
        return int(args.func(args))
    except (CliError, ValueError, TypeError, OSError, MemoryError, RuntimeError) as exc:
        _close_progress_bars()
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"slicer: error: {message}", file=sys.stderr)
        return _EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
