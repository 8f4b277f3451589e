"""When the browser test may skip: only for a non-root user outside CI without Chromium."""
from __future__ import annotations

import pytest

from test_mlflow_ui import INSTALL, browser_or_skip


def none(_name):
    return None


def test_present_browser_is_used():
    assert browser_or_skip(lambda n: "/usr/bin/chromium" if n == "chromium" else None, env={}, euid=1000) \
        == "/usr/bin/chromium"
    assert browser_or_skip(lambda n: "/snap/bin/chromium-browser" if n == "chromium-browser" else None,
                           env={}, euid=1000) == "/snap/bin/chromium-browser"


@pytest.mark.parametrize("env,euid", [({"CI": "true"}, 1000), ({}, 0), ({"CI": "1"}, 0)])
def test_missing_browser_fails_where_it_can_be_installed(env, euid):
    with pytest.raises(pytest.fail.Exception, match="chromium is not installed"):
        browser_or_skip(none, env=env, euid=euid)


def test_missing_browser_skips_for_a_plain_user_and_names_the_fix():
    with pytest.raises(pytest.skip.Exception) as info:
        browser_or_skip(none, env={}, euid=1000)
    assert "not root" in str(info.value) and INSTALL in str(info.value)
