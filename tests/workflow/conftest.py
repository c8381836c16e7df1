"""Every test here runs Snakemake on the whole DAG or a part of it: all are `slow`."""

import pytest


def pytest_collection_modifyitems(config, items):
    here = __file__.rsplit("/", 1)[0]
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def pipeline_folder(request):
    """The pipeline folder the explorer and chat tests look at: the micro pipeline's, or
    the one VISDIAL_LG_PIPELINE names (`make screenshots`: `make demo`'s `demo/`)."""
    import os
    from pathlib import Path

    given = os.environ.get("VISDIAL_LG_PIPELINE")
    return Path(given).resolve() if given else request.getfixturevalue("micro_pipeline")


@pytest.fixture(scope="session")
def screenshot_dir():
    """Where the tests save the README's pictures (VISDIAL_LG_SCREENSHOTS), or None."""
    import os
    from pathlib import Path

    given = os.environ.get("VISDIAL_LG_SCREENSHOTS")
    if not given:
        return None
    Path(given).mkdir(parents=True, exist_ok=True)
    return Path(given)
