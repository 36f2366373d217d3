"""Offline copies of the scripts and styles DVC's plots page and Great Expectations' Data Docs
load from CDNs, so both render on a machine without internet access.

`make install` fetches each pinned npm package once from the npm registry (its sha512 checked)
and keeps only the files the pages use, under the virtual environment's share/ferops/web/. Pages
then point at local copies: the Data Docs get the files beside them (`localise_pages`), and
`dvc plots show` uses an HTML template with Vega inlined (`write_plots_template`; install
names it in .dvc/config.local, the machine's own DVC config). Without the copies both fall
back to the CDNs, as the tools ship.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

REGISTRY = "https://registry.npmjs.org"


@dataclass(frozen=True)
class Package:
    """One npm package version and the files of it that pages load (paths inside package/)."""

    name: str
    version: str
    integrity: str  # the registry's dist.integrity: sha512-<base64>
    files: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def tarball(self) -> str:
        return f"{REGISTRY}/{self.name}/-/{self.name.split('/')[-1]}-{self.version}.tgz"


FONT_AWESOME_FONTS = tuple(
    f"webfonts/fa-{face}.woff2"
    for face in ("brands-400", "regular-400", "solid-900", "v4compatibility")
)

PACKAGES = (
    Package(
        "vega",
        "5.33.0",
        "sha512-jNAGa7TxLojOpMMMrKMXXBos4K6AaLJbCgGDOw1YEkLRjUkh12pcf65J2lMSdEHjcEK47XXjKiOUVZ8L+MniBA==",
        ("build/vega.min.js",),
    ),
    Package(
        "vega-lite",
        "5.23.0",
        "sha512-l4J6+AWE3DIjvovEoHl2LdtCUkfm4zs8Xxx7INwZEAv+XVb6kR6vIN1gt3t2gN2gs/y4DYTs/RPoTeYAuEg6mA==",
        ("build/vega-lite.min.js",),
    ),
    Package(
        "vega-embed",
        "6.29.0",
        "sha512-PmlshTLtLFLgWtF/b23T1OwX53AugJ9RZ3qPE2c01VFAbgt3/GSNI/etzA/GzdrkceXFma+FDHNXUppKuM0U6Q==",
        ("build/vega-embed.min.js",),
    ),
    Package(
        "bootstrap",
        "4.3.1",
        "sha512-rXqOmH1VilAt2DyPzluTi2blhk17bO7ef+zLLPlWvG494pDxcM234pJ8wTc/6R40UWizAIIMgxjvxZg5kmsbag==",
        ("dist/css/bootstrap.min.css", "dist/js/bootstrap.min.js"),
    ),
    Package(
        "jquery",
        "3.7.1",
        "sha512-m4avr8yL8kmFN8psrbFFFmB/If14iN5o9nw/NgnnM+kybDJpRsAynV2BsfpTYrTRysYUdADVD7CkUUizgkpLfg==",
        ("dist/jquery.min.js",),
    ),
    Package(
        "popper.js",
        "1.12.9",
        "sha512-s0EEi9xiSCdqz9lV4IiVH5yIZnDX/U1t0tCjB+0jXx9jW8lrR7kOpVupiUg175ogqVoudpDXHF1p6dKATCHMeg==",
        ("dist/umd/popper.min.js",),
    ),
    Package(
        "bootstrap-table",
        "1.19.1",
        "sha512-WvV+l1AI/C+zThaKmfHmi/IuayVNB0qdFyEhFx1jyZhO0oLtNJNANkCR3rvJf6Dkh72dsLElxpE/bzK9seEQLA==",
        (
            "dist/bootstrap-table.min.css",
            "dist/bootstrap-table.min.js",
            "dist/extensions/filter-control/bootstrap-table-filter-control.min.js",
        ),
    ),
    Package(
        "bootstrap-table",
        "1.19.0",
        "sha512-L+USHm3X9FKocx/6yngGu12yF6r6s1Ntuc+hoIK2a2QQJjHw5kcySLiE2HY/9sEaSGAOfPbfQOtBH3uKkcpqEA==",
        (
            "dist/extensions/filter-control/bootstrap-table-filter-control.css",
            "dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
        ),
    ),
    Package(
        "bootstrap-datepicker",
        "1.9.0",
        "sha512-9rYYbaVOheGYxjOr/+bJCmRPihfy+LkLSg4fIFMT9Od8WwWB/MB50w0JO1eBgKUMbb7PFHQD5uAfI3ArAxZRXA==",
        ("dist/css/bootstrap-datepicker.min.css", "dist/js/bootstrap-datepicker.min.js"),
    ),
    Package(
        "@fortawesome/fontawesome-free",
        "6.6.0",
        "sha512-60G28ke/sXdtS9KZCpZSHHkCbdsOGEhIUGlwq6yhY74UpTiToIh8np7A8yphhM4BWsvNFtIvLpi4co+h9Mr9Ow==",
        ("css/all.min.css", *FONT_AWESOME_FONTS),
    ),
    Package(
        "@forevolve/bootstrap-dark",
        "1.1.0",
        "sha512-A3ucpEpxPoTVO490lZZCfjPXxv832l7mm1IxX3bXyxvgwnPGXDLyh7dWrphXKO8YBAu3EswbBEu3VSW8NRMW3A==",
        ("dist/css/bootstrap-prefers-dark.css",),
    ),
)

#: CDN addresses whose path is not `<package>@<version>/<file>` (jsDelivr's and unpkg's are).
CDN_ALIASES = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/": "bootstrap@4.3.1/dist/css/",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/": "bootstrap@4.3.1/dist/js/",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery@3.7.1/dist/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/": "popper.js@1.12.9/dist/umd/",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/": (
        "bootstrap-datepicker@1.9.0/dist/"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/": (
        "@fortawesome/fontawesome-free@6.6.0/"
    ),
}
#: The packages DVC's plots page needs (PACKAGES lists them in the order they load).
VEGA = ("vega", "vega-lite", "vega-embed")
#: Version ranges pages ask for (`vega@5`), and the pinned package served for each.
RANGES = {f"{p.name}@{p.version.split('.')[0]}": p for p in PACKAGES if p.name in VEGA}
#: Every kept file, `package@version/file`, and the package it belongs to.
KEPT = {f"{p.key}/{f}": p for p in PACKAGES for f in p.files}
_NPM_CDNS = ("https://cdn.jsdelivr.net/npm/", "https://unpkg.com/")
_LOADED = re.compile(r'(?P<attr>src|href)="(?P<url>https://[^"]+)"')
VENDOR_DIR = "_vendor"


def default_dir() -> Path:
    """Where install puts the copies: inside the environment, so they come and go with it."""
    return Path(sys.prefix) / "share" / "ferops" / "web"


def fetch(dest: Path, *, timeout: float = 60.0) -> int:
    """Download every package not yet under `dest`, check its sha512, keep the files pages
    use; return how many were downloaded."""
    dest.mkdir(parents=True, exist_ok=True)
    fetched = 0
    for package in PACKAGES:
        target = dest / package.key
        if all((target / f).is_file() for f in package.files):
            continue
        with urllib.request.urlopen(package.tarball, timeout=timeout) as response:
            blob = response.read()
        algorithm, _, expected = package.integrity.partition("-")
        actual = base64.b64encode(hashlib.new(algorithm, blob).digest()).decode()
        if actual != expected:
            raise RuntimeError(f"{package.tarball}: {algorithm} {actual}, expected {expected}")
        staged = Path(tempfile.mkdtemp(prefix=".fetching.", dir=dest))
        try:
            with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as archive:
                for name in package.files:
                    member = archive.extractfile(f"package/{name}")
                    if member is None:
                        raise RuntimeError(f"{package.tarball} has no file {name}")
                    path = staged / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(member.read())
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(target, ignore_errors=True)
            shutil.move(staged, target)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        log.debug("fetched %s", package.key)
        fetched += 1
    return fetched


def local_file(url: str) -> str | None:
    """`package@version/file` for a CDN address of a vendored file; None for anything else."""
    relative = None
    for prefix in _NPM_CDNS:
        if url.startswith(prefix):
            relative = url.removeprefix(prefix)
    for prefix, replacement in CDN_ALIASES.items():
        if url.startswith(prefix):
            relative = replacement + url.removeprefix(prefix)
    if relative is None:
        return None
    if relative in RANGES:  # a bare package: its main build file
        return f"{RANGES[relative].key}/{RANGES[relative].files[0]}"
    return relative if relative in KEPT else None


def localise_pages(site: Path, assets: Path | None = None) -> list[str]:
    """Point every HTML page under `site` at copies in `site/_vendor/` instead of CDNs.

    Returns the CDN addresses left as they were (none when the copies are installed)."""
    assets = assets or default_dir()
    left: set[str] = set()
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")

        def swap(match: re.Match[str], page: Path = page) -> str:
            url = match["url"]
            relative = local_file(url)
            if relative is None:
                return match[0]
            source = assets / relative
            if not source.is_file():
                left.add(url)
                return match[0]
            # The package's kept files go together: a stylesheet finds its fonts beside it.
            key = KEPT[relative].key
            if not (site / VENDOR_DIR / key).is_dir():
                shutil.copytree(assets / key, site / VENDOR_DIR / key)
            copy = site / VENDOR_DIR / relative
            return f'{match["attr"]}="{os.path.relpath(copy, page.parent)}"'

        localised = _LOADED.sub(swap, text)
        if localised != text:
            page.write_text(localised, encoding="utf-8")
    return sorted(left)


PLOTS_PAGE = """<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>ferops: DVC plots</title>
  {libraries}
  <style>body {{ font-family: sans-serif; }} table {{ border-spacing: 15px; }}</style>
</head>
<body>
  {{plot_divs}}
</body>
</html>
"""


def write_plots_template(path: Path, assets: Path | None = None) -> bool:
    """DVC's page template with Vega, Vega-Lite and Vega-Embed inlined; True when inlined.

    Without the copies the template keeps DVC's `{scripts}` (the CDN tags), so
    `dvc plots show` works either way."""
    assets = assets or default_dir()
    sources = [assets / p.key / p.files[0] for p in RANGES.values()]
    inlined = all(s.is_file() for s in sources)
    if inlined:
        # "</script" cannot occur inside an inline script; the minified builds hold none,
        # but escaping keeps that true whatever they hold.
        scripts = [s.read_text(encoding="utf-8").replace("</script", "<\\/script") for s in sources]
        libraries = "\n".join(f"<script>{script}</script>" for script in scripts)
    else:
        libraries = "{scripts}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PLOTS_PAGE.format(libraries=libraries), encoding="utf-8")
    return inlined


def main() -> None:
    """`python -m ferops.install.web_assets`: fetch the copies and write the plots template."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    dest = default_dir()
    try:
        fetched = fetch(dest)
    except (OSError, RuntimeError) as exc:  # offline install: pages keep their CDN links
        log.warning("web assets not fetched (%s): plots and Data Docs will need internet", exc)
        fetched = 0
    inlined = write_plots_template(dest / "dvc-plots.html")
    log.info(
        "offline web assets in %s (%d packages fetched now); DVC plots page: %s",
        dest,
        fetched,
        "offline" if inlined else "CDN scripts",
    )


if __name__ == "__main__":
    main()
