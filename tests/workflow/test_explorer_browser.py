"""The dialog explorer in a real browser: headless Chromium opens the explorer the DAG built
(`pipeline_folder`: the micro pipeline, the demo dataset at a handful of dialogs) from disk,
with no server. Any JavaScript error fails the test.

`make screenshots` runs the same checks on `make demo`'s explorer and saves the page's
screenshot for the README (VISDIAL_LG_PIPELINE, VISDIAL_LG_SCREENSHOTS: conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers.browser import browser_errors, colour_pixels, headless_chromium, screenshot_pixels
from visdial_lg.report.figures import RANK_COLOURS

RUNS = {"ltmi": "v1.0-ltmi-gen", "lg": "v1.0-lg_attn_kl-gen"}  # the figure runs of the main version
BACKGROUND = "#eeeeee"  # the panels' background (explorer.css) where no image is drawn


@pytest.fixture(scope="module")
def explorer(pipeline_folder) -> Path:
    folder = pipeline_folder / "results/explorer"
    assert (folder / "index.html").is_file(), f"no explorer in {folder}"
    return folder


@pytest.fixture(scope="module")
def page(explorer):
    with headless_chromium() as driver:
        driver.get((explorer / "index.html").as_uri())
        assert browser_errors(driver) == []
        yield driver
        assert browser_errors(driver) == []  # nothing went wrong while the tests used it


def _rects(driver) -> list[list[str]]:
    """[view, rank, region] of every drawn box."""
    return driver.execute_script(
        "return [...document.querySelectorAll('figure rect.region')].map(r => "
        "[r.closest('figure').dataset.view, r.dataset.rank, r.dataset.region])")


def _panel(driver, view: str = "lg_prior"):
    return driver.find_element("css selector", f'figure[data-view="{view}"] svg')


def _set_boxes_visible(driver, visible: bool) -> None:
    driver.execute_script("document.querySelectorAll('g.region-box').forEach(g => g.style.display = arguments[0])",
                          "" if visible else "none")


def test_the_image_and_its_boxes_render(page, screenshot_dir):
    views = [f.get_attribute("data-view") for f in page.find_elements("css selector", "#views figure")]
    assert views == ["ltmi", "lg_prior", "lg_posterior"]
    for view in views:
        with_boxes = screenshot_pixels(_panel(page, view))
        _set_boxes_visible(page, False)
        without = screenshot_pixels(_panel(page, view))
        _set_boxes_visible(page, True)
        # the image is drawn: the panel is not its empty background, and not one flat colour
        assert colour_pixels(without, BACKGROUND, tolerance=2) < 0.05 * without[..., 0].size
        assert without.std() > 5
        # the boxes are drawn in the rank colours, on top of the image
        first = colour_pixels(with_boxes, RANK_COLOURS[0]) - colour_pixels(without, RANK_COLOURS[0])
        assert first > 20, f"{view}: the first region's box colour is missing"
        drawn = len([r for r in _rects(page) if r[0] == view])
        for rank in range(1, min(drawn, len(RANK_COLOURS))):
            extra = colour_pixels(with_boxes, RANK_COLOURS[rank]) - colour_pixels(without, RANK_COLOURS[rank])
            assert extra > 10, f"{view}: the box colour of rank {rank + 1} is missing"
    if screenshot_dir:
        page.save_screenshot(str(screenshot_dir / "explorer.png"))


def test_switching_rounds_changes_the_boxes(page):
    page.find_element("css selector", 'li.round-item[data-dialog="0"][data-round="0"] button').click()
    before, image_before = _rects(page), screenshot_pixels(_panel(page))
    data_regions = page.execute_script("return window.EXPLORER_DATA.dialogs[0].rounds.map(r => r.regions)")
    other = next((r for r, regions in enumerate(data_regions) if regions != data_regions[0]), None)
    assert other is not None, "every round of the first dialog has the same top regions"
    page.find_element("css selector", f'li.round-item[data-dialog="0"][data-round="{other}"] button').click()
    after = _rects(page)
    assert after != before
    assert page.find_element("css selector", "#round h2").text.endswith(f"round {other + 1} of {len(data_regions)}")
    assert page.find_element("css selector", "li.round-item.selected").get_attribute("data-round") == str(other)
    if [r for r in after if r[0] == "lg_prior"] != [r for r in before if r[0] == "lg_prior"]:
        assert not np.array_equal(screenshot_pixels(_panel(page)), image_before)
    assert page.current_url.endswith(f"#dialog=0&round={other + 1}")


def _listed(page) -> set[tuple[int, int]]:
    return {(int(li.get_attribute("data-image-id")), int(li.get_attribute("data-round")))
            for li in page.find_elements("css selector", "li.round-item")}


def test_the_disagreement_filter_lists_the_rounds_the_ranks_files_give(page, explorer):
    every = _listed(page)
    shown_images = {image_id for image_id, _ in every}
    pipeline = explorer.parents[1]  # <pipeline folder>/results/explorer
    first = {}
    for name, run in RUNS.items():
        with np.load(pipeline / "results/runs" / run / "val_prior.ranks.npz") as ranks:
            first[name] = dict(zip(ranks["image_id"].tolist(), ranks["gen"].argmin(-1)))
    expected = {(image_id, r) for image_id in shown_images
                for r in np.flatnonzero(first["ltmi"][image_id] != first["lg"][image_id]).tolist()}
    filter_box = page.find_element("id", "filter-models")
    filter_box.click()
    try:
        assert _listed(page) == expected
        count = len(expected)
        assert page.find_element("id", "match-count").text == f"{count} round{'' if count == 1 else 's'} shown"
    finally:
        filter_box.click()
    assert _listed(page) == every


def test_the_grounding_filter_lists_the_rounds_whose_prior_and_posterior_differ(page):
    flags = page.execute_script(
        "return window.EXPLORER_DATA.dialogs.flatMap(d => d.rounds.map((r, i) => "
        "[d.image_id, i, r.regions.lg_prior[0][0] !== r.regions.lg_posterior[0][0]]))")
    box = page.find_element("id", "filter-grounding")
    box.click()
    try:
        assert _listed(page) == {(image_id, r) for image_id, r, differs in flags if differs}
    finally:
        box.click()


def test_arrow_keys_step_through_the_rounds(page):
    from selenium.webdriver.common.keys import Keys

    page.find_element("css selector", 'li.round-item[data-dialog="0"][data-round="0"] button').click()
    page.find_element("tag name", "body").send_keys(Keys.ARROW_DOWN)
    assert page.find_element("css selector", "li.round-item.selected").get_attribute("data-round") == "1"
    assert page.find_element("id", "history").text.count("Q:") == 2  # round 1 with its answer, then round 2
