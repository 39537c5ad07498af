"""Fetch the dashboard's third-party browser files at pinned versions and vendor them.

    python scripts/vendor_assets.py          # fetch, verify, write (idempotent)
    python scripts/vendor_assets.py --check  # only verify the vendored files (offline)

Each package's tarball comes from the npm registry through `npm pack` (so the registry
and proxy of the local npm configuration apply); its sha512 is checked against the
integrity pinned below (what the registry published for that version) before anything
is written, and the listed files and license texts are copied into
``src/meterline/dashboard/static/vendor/<folder>/``. Each written file's sha256 is
pinned too, so ``--check`` (run by the test suite) proves that the committed files are
exactly the pinned releases' files.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

VENDOR = Path(__file__).resolve().parents[1] / "src/meterline/dashboard/static/vendor"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # the registry's dist.integrity of this version
    folder: str  # under static/vendor/
    files: dict[str, str]  # path in the tarball -> sha256 of its content


PACKAGES = [
    Package(
        "htmx.org",
        "2.0.11",  # 2.0.x on purpose: htmx 4 is another API
        "sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA==",
        "htmx",
        {
            "dist/htmx.min.js": "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717",
            "LICENSE": "d3d2456f76414f2456104660ebd65aff1c04cd7966b942bdabd63f3cdb316a38",
        },
    ),
    Package(
        "uplot",
        "1.6.32",
        "sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==",
        "uplot",
        {
            "dist/uPlot.iife.min.js": (
                "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f"
            ),
            "dist/uPlot.min.css": (
                "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04"
            ),
            "LICENSE": "8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd",
        },
    ),
    Package(
        "swagger-ui-dist",
        "5.35.0",
        "sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==",
        "swagger-ui",
        {
            "swagger-ui-bundle.js": (
                "e6a898692f2d768e807c3ba4626068a69a2c5dd960dd6c76f3e4d3a3de180af2"
            ),
            "swagger-ui.css": "5ed08757e53da3e026d6cbecc61fe5d43585c9560b302d534ad56692519a273d",
            "favicon-32x32.png": (
                "3ed612f41e050ca5e7000cad6f1cbe7e7da39f65fca99c02e99e6591056e5837"
            ),
            "LICENSE": "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30",
            "NOTICE": "0d20d1adef18aee3f40dd258172155521ce702ac445cb5f7b7d60ed32dad2fb2",
            "swagger-ui-bundle.js.LICENSE.txt": (
                "37eb6e7e59aed57b2c1acf076574b818ea07b74265717e0bd67b59e0baf9abbb"
            ),
        },
    ),
]


def target(package: Package, member: str) -> Path:
    return VENDOR / package.folder / Path(member).name


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tarball(package: Package, folder: Path) -> bytes:
    subprocess.run(
        ["npm", "pack", f"{package.name}@{package.version}", "--pack-destination", str(folder)],
        check=True,
        capture_output=True,
    )
    (found,) = folder.glob(f"*-{package.version}.tgz")
    data = found.read_bytes()
    algorithm, _, expected = package.integrity.partition("-")
    digest = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if digest != expected:
        raise SystemExit(f"{package.name}@{package.version}: integrity mismatch ({digest})")
    return data


def fetch(package: Package) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        _tarball(package, path)
        with tarfile.open(next(path.glob("*.tgz"))) as archive:
            for member, expected in package.files.items():
                extracted = archive.extractfile(f"package/{member}")
                if extracted is None:
                    raise SystemExit(f"{package.name}: {member} is not a file")
                data = extracted.read()
                if sha256(data) != expected:
                    raise SystemExit(f"{package.name}: {member} has sha256 {sha256(data)}")
                out = target(package, member)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(data)
    print(f"vendored {package.name}@{package.version} into {VENDOR / package.folder}")


def problems() -> list[str]:
    """Vendored files that are missing or differ from the pinned releases'."""
    found = []
    for package in PACKAGES:
        for member, expected in package.files.items():
            out = target(package, member)
            if not out.is_file():
                found.append(f"{out} is missing")
            elif sha256(out.read_bytes()) != expected:
                found.append(f"{out} differs from {package.name}@{package.version}'s {member}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only verify the vendored files")
    if parser.parse_args().check:
        wrong = problems()
        for line in wrong:
            print(line, file=sys.stderr)
        raise SystemExit(1 if wrong else 0)
    for package in PACKAGES:
        fetch(package)


if __name__ == "__main__":
    main()
