from tests.browser.test_main_path import chromium  # noqa: F401  (the fixture, for every module)
