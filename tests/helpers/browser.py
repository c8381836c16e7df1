"""A real headless browser for the page tests: Debian's `chromium` driven by its
`chromedriver` through Selenium. Skipped where they are not installed, unless
VISDIAL_LG_REQUIRE_BROWSER is set (.ci/run installs them and sets it)."""

from __future__ import annotations

import contextlib
import io
import os
import shutil

import numpy as np
import pytest

BROWSER, DRIVER = "chromium", "chromedriver"


@contextlib.contextmanager
def headless_chromium(width: int = 1400, height: int = 1000):
    """A Selenium driver of headless Chromium whose console is logged (`browser_errors`)."""
    binary, driver_path = shutil.which(BROWSER), shutil.which(DRIVER)
    if not (binary and driver_path):
        message = f"{BROWSER} and {DRIVER} are needed (apt-get install chromium chromium-driver)"
        if os.environ.get("VISDIAL_LG_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def browser_errors(driver) -> list[str]:
    """The console's errors since the last call: uncaught exceptions, failed loads."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def screenshot_pixels(element) -> np.ndarray:
    """An element's screenshot as an RGB array [H, W, 3]."""
    from PIL import Image

    with Image.open(io.BytesIO(element.screenshot_as_png)) as png:
        return np.asarray(png.convert("RGB")).astype(int)


def colour_pixels(pixels: np.ndarray, hex_colour: str, tolerance: int = 12) -> int:
    """How many pixels are within `tolerance` of `hex_colour` in every channel."""
    rgb = np.array([int(hex_colour[i: i + 2], 16) for i in (1, 3, 5)])
    return int(np.all(np.abs(pixels - rgb) <= tolerance, axis=-1).sum())
