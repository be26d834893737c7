"""The `sinklab` command: each subcommand lives next to what it runs and is imported only when used."""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import sys
from typing import Any

from sinklab.errors import SinklabError

# subcommand -> (package whose `command` module has add_arguments(parser) and run(args) -> int, or, where
# one package has several commands, add_<name>_arguments and run_<name>; one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "measure": ("sinklab.measure", "the paper's sink metric for a Hugging Face or sinklab model"),
    "ablate": ("sinklab.ablate", "does the model need its sink? loss and Sink_1 under ablations"),
    "train": ("sinklab.train", "pre-train a small LM and track the sink as it emerges"),
    "demo": ("sinklab.experiments", "softmax vs sigmoid attention, trained side by side, with a report"),
    "reproduce": ("sinklab.experiments", "the paper's experiments as preset sweeps"),
    "report": ("sinklab.experiments", "the claim table and plots of a reproduce directory"),
    "compare": ("sinklab.measure", "several measurements side by side: model against model, T against T"),
    "trajectory": ("sinklab.trajectory", "when the sink emerged: the metric of every checkpoint of a series"),
    "list": ("sinklab", "registries (kernels, masks, positions, ...), presets and suites"),
}


def command(name: str) -> tuple[Any, Any]:
    """(add_arguments, run) of subcommand `name`, from `<package>/command.py`."""
    module = importlib.import_module(f"{COMMANDS[name][0]}.command")
    add = getattr(module, f"add_{name}_arguments", None) or module.add_arguments
    return add, getattr(module, f"run_{name}", None) or module.run


class _Parser(argparse.ArgumentParser):
    """argparse with "did you mean" for a misspelt flag or command, and the subcommand's own usage (not the
    top-level one) for a flag the subcommand does not know."""

    chosen: argparse.ArgumentParser | None = None  # the subcommand's parser, on the top-level parser

    def error(self, message: str) -> Any:
        import difflib

        target = self.chosen or self
        hints: list[str] = []
        if message.startswith("unrecognized arguments:"):
            options = [o for o in target._option_string_actions if o.startswith("--")]
            for token in message.split(":", 1)[1].split():
                if token.startswith("--"):
                    flag = token.split("=", 1)[0]
                    close = difflib.get_close_matches(flag, options, n=2, cutoff=0.6)
                    if close:
                        hints.append(f"{flag}: did you mean {' or '.join(close)}?")
        elif "invalid choice:" in message:
            word = message.split("invalid choice:", 1)[1].split("'")[1] if "'" in message else ""
            close = difflib.get_close_matches(word, list(COMMANDS), n=2, cutoff=0.6) if word else []
            if close and self.chosen is None and target is self:
                hints.append(f"did you mean {' or '.join(close)}?")
        target.print_usage(sys.stderr)
        self.exit(2, f"{target.prog}: error: {message}" + "".join(f"\n  {h}" for h in hints) + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sinklab", description=__doc__)
    from sinklab import __version__

    parser.add_argument("--version", action="version", version=f"sinklab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((a for a in sys.argv[1:] if a in COMMANDS), None)
    for name, (_, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        # Only the chosen subcommand imports its module (and with it torch).
        if name == chosen:
            command(name)[0](sp)
            parser.chosen = sp
    return parser


# OS errors about a path the user gave: the message names the file.
_FILE_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


def _explain(err: BaseException) -> str | None:
    """The message for an error the user can act on; None for a bug (which keeps its traceback)."""
    if isinstance(err, (SinklabError, ValueError, *_FILE_ERRORS)):
        return str(err)
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        where = f" writing {err.filename}" if err.filename else ""
        return f"no space left on the device{where}; free some space and run the same command again"
    return None


def main(argv: list[str] | None = None) -> int:
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    parser = build_parser()
    args = parser.parse_args()
    try:
        return int(command(args.command)[1](args) or 0)
    except KeyboardInterrupt:
        print(
            f"\nsinklab {args.command}: interrupted; finished work is kept, run the same command again "
            "to continue",
            file=sys.stderr,
        )
        return 130
    except BrokenPipeError:  # `sinklab ... | head`: the reader left; say nothing more
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the interpreter's final flush is silent
        return 0
    except Exception as err:
        message = _explain(err)
        if message is None:
            raise
        print(f"sinklab {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
