"""The package imports, carries its version, and ships its typing marker."""

import importlib.resources

import tailguard


def test_version_matches_the_crate() -> None:
    assert tailguard.__version__ == "0.1.0"


def test_ships_py_typed() -> None:
    assert importlib.resources.files("tailguard").joinpath("py.typed").is_file()
