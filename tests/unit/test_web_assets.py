"""Pages that load scripts and styles from CDNs are pointed at local copies, so they render
offline; what has no copy is left as it was."""

from __future__ import annotations

import re

from ferops.install.web_assets import (
    PACKAGES,
    VENDOR_DIR,
    local_file,
    localise_pages,
    write_plots_template,
)


def installed_copies(root):
    """An asset folder laid out as `make install` leaves it, with placeholder contents."""
    for package in PACKAGES:
        for name in package.files:
            path = root / package.key / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"/* {package.key}/{name} */")
    return root


def test_every_cdn_address_the_tools_use_maps_to_a_pinned_file():
    assert local_file("https://cdn.jsdelivr.net/npm/vega@5") == "vega@5.33.0/build/vega.min.js"
    assert (
        local_file("https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css")
        == "bootstrap@4.3.1/dist/css/bootstrap.min.css"
    )
    assert (
        local_file("https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css")
        == "@fortawesome/fontawesome-free@6.6.0/css/all.min.css"
    )
    assert local_file("https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js")
    # Not a file we keep: a page, an unpinned version, another host.
    assert local_file("https://greatexpectations.io") is None
    assert local_file("https://cdn.jsdelivr.net/npm/vega@4") is None
    assert local_file("https://example.com/npm/vega@5") is None


def test_pages_load_local_copies_with_paths_relative_to_each_page(tmp_path):
    assets = installed_copies(tmp_path / "assets")
    site = tmp_path / "site"
    (site / "validations" / "run").mkdir(parents=True)
    head = (
        '<link href="https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css">'
        '<script src="https://cdn.jsdelivr.net/npm/vega-embed@6"></script>'
        '<a href="https://greatexpectations.io">GX</a>'
    )
    (site / "index.html").write_text(head)
    (site / "validations" / "run" / "page.html").write_text(head)
    assert localise_pages(site, assets) == []
    deep = (site / "validations" / "run" / "page.html").read_text()
    assert '<script src="../../_vendor/vega-embed@6.29.0/build/vega-embed.min.js">' in deep
    assert 'href="https://greatexpectations.io"' in deep  # a link, not a loaded file
    index = (site / "index.html").read_text()
    assert not re.search(r'src="https://|href="https://cdn', index)
    vendored = site / VENDOR_DIR / "@fortawesome/fontawesome-free@6.6.0"
    assert (vendored / "css/all.min.css").is_file()
    assert (vendored / "webfonts/fa-solid-900.woff2").is_file()  # the CSS's ../webfonts/


def test_without_copies_pages_keep_their_cdn_links_and_say_which(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    page = '<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>'
    (site / "index.html").write_text(page)
    assert localise_pages(site, tmp_path / "nothing") == [
        "https://code.jquery.com/jquery-3.7.1.min.js"
    ]
    assert (site / "index.html").read_text() == page


def test_the_plots_template_inlines_vega_or_falls_back_to_dvcs_scripts(tmp_path):
    template = tmp_path / "dvc-plots.html"
    assert write_plots_template(template, installed_copies(tmp_path / "assets"))
    text = template.read_text()
    assert "{plot_divs}" in text and "{scripts}" not in text
    assert "/* vega-embed@6.29.0/build/vega-embed.min.js */" in text
    assert not write_plots_template(template, tmp_path / "nothing")
    assert "{scripts}" in template.read_text()
