"""``frpo`` command line: a thin shell over ``frpo.book``.

    frpo book run   --profile P [--only NN ...] [--dry-run] [--force] [--jobs N]
    frpo book build --profile P [--allow-missing]
    frpo book check --profile P

Errors in input (unknown profile, parameter typo, failing notebook, damaged or unwritable files)
print one message and exit 1. Ctrl-C exits 130 and SIGTERM 143, both after recording the
invocation as interrupted and stopping the notebooks' kernels; finished work is kept.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="frpo", description=__doc__.splitlines()[0])
    top = parser.add_subparsers(dest="group", required=True)
    book = top.add_parser("book", help="execute notebooks and build the Jupyter Book")
    cmds = book.add_subparsers(dest="command", required=True)

    run = cmds.add_parser("run", help="execute a profile's notebooks with papermill")
    run.add_argument("--profile", default="toy", help="profiles/<P>.yaml (default: toy)")
    run.add_argument("--only", nargs="+", metavar="NN", help="notebooks to run (NN or full name)")
    run.add_argument("--dry-run", action="store_true", help="validate and print, execute nothing")
    run.add_argument("--force", action="store_true", help="re-execute even when up to date")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="notebooks executed at once when their dependencies allow (default 1; the toy "
        "notebooks use one CPU thread each, so N = the number of cores is a good choice)",
    )

    build = cmds.add_parser("build", help="assemble and build the book of a profile")
    build.add_argument("--profile", default="toy")
    build.add_argument(
        "--allow-missing", action="store_true", help="build even if some notebooks never ran"
    )
    build.add_argument("--no-check", action="store_true", help="skip the HTML checks")

    check = cmds.add_parser("check", help="check a built book's links, images and chapters")
    check.add_argument("--profile", default="toy")
    return parser


def _terminate(signum, frame):
    from frpo.book.execute import Terminated

    raise Terminated()


def _run(args) -> int:
    from frpo.book import run_profile

    runs = run_profile(
        args.profile,
        only=args.only,
        dry_run=args.dry_run,
        force=args.force,
        progress=not args.quiet,
        jobs=args.jobs,
    )
    if args.dry_run:
        todo = sum(bool(r.reason) for r in runs)
        print(f"{args.profile}: {len(runs)} notebooks valid, {todo} would execute")
    else:
        done = sum(r.status == "executed" for r in runs)
        print(f"{args.profile}: {done} executed, {len(runs) - done} reused")
    return 0


def _build_and_check(args) -> int:
    from frpo.book import build_book, check_profile

    if args.command == "build":
        html = build_book(args.profile, allow_missing=args.allow_missing)
        print(f"book built: {html / 'intro.html'}")
        if args.no_check:
            return 0
    problems = check_profile(args.profile)
    for line in problems:
        print(f"check: {line}", file=sys.stderr)
    if problems:
        return 1
    print(f"{args.profile}: book checks passed")
    return 0


def main(argv: list[str] | None = None) -> int:
    from frpo import numerics

    numerics.pin()  # before torch is imported here or in a notebook kernel (frpo.numerics)
    args = _parser().parse_args(argv)
    from frpo.book.execute import NotebookFailed, Terminated

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None  # like Ctrl-C
    try:
        return _run(args) if args.command == "run" else _build_and_check(args)
    except (ValueError, NotebookFailed, RuntimeError) as err:
        print(f"frpo: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"frpo: error: {err} (check the folder's permissions, or set FRPO_RUNS to a "
              "writable folder)", file=sys.stderr)  # fmt: skip
        return 1
    except Terminated:
        print("frpo: terminated (SIGTERM); finished notebooks and stage runs are kept",
              file=sys.stderr)  # fmt: skip
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("frpo: interrupted; finished notebooks and stage runs are kept", file=sys.stderr)
        return 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
