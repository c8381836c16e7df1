"""`download`, `unzip`: fetching the inputs (download/)."""

from __future__ import annotations

from .registry import command


def _download_arguments(p):
    p.add_argument("url", help="http://, https:// or file:// URL")
    p.add_argument("--out", required=True, help="destination file (written as OUT.part until verified)")
    p.add_argument("--sha256", help="published sha256; without it the --lock file pins it on first use")
    p.add_argument("--size", type=int, help="expected size in bytes")
    p.add_argument("--lock", help="JSON checksum lock file (e.g. resources/checksums.lock)")
    p.add_argument("--name", help="entry name in the lock file (default: the file name of --out)")
    p.add_argument("--retries", type=int, default=5, help="retries without progress before giving up")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a retry")


@command("download", "download a file, resumable (HTTP Range) and verified (size, sha256)", _download_arguments,
         config=False)
def _download(args, config):
    from ..download.fetch import download

    download(args.url, args.out, sha256=args.sha256, size=args.size, lock=args.lock, name=args.name,
             retries=args.retries, timeout_s=args.timeout)


def _unzip_arguments(p):
    p.add_argument("zip")
    p.add_argument("--out", required=True, help="folder to create with the zip's content")
    p.add_argument("--manifest", required=True, help="manifest JSON listing the extracted files")


@command("unzip", "extract a zip safely (no absolute/.. paths, no symlinks; CRC-checked)", _unzip_arguments,
         config=False)
def _unzip(args, config):
    from ..download.archive import safe_extract_zip

    safe_extract_zip(args.zip, args.out, args.manifest)
