"""Every ``pyramid_notebook.*`` setting refuses what cannot work, naming itself, and takes what can.

Fast: parsing settings starts no notebook.
"""
import math
import sys
from pathlib import Path

import pytest
from pyramid.exceptions import ConfigurationError

from pyramid_notebook.settings import PREFIX, parse_settings
from pyramid_notebook.uwsgi import serve_websocket

#: A regular file, and paths that need it to be a folder; made by the ``paths`` fixture.
A_FILE = "{file}"
BELOW_A_FILE = "{file}/notebooks"
#: An existing folder that nobody, root included, can create files in.
UNWRITABLE_FOLDER = "/proc/self"
NOT_EXECUTABLE = "{file}"
A_FOLDER = "{folder}"

#: Setting name -> values that cannot work.
BAD_VALUES = {
    "notebook_folder": [
        "",
        "   ",
        A_FILE,
        BELOW_A_FILE,
        UNWRITABLE_FOLDER,
        "/proc/no-such-place/notebooks",
        "/tmp/a\x00b",
    ],
    "kill_timeout": ["", "abc", "nan", "inf", "0", "-5", "1.5", "1e3"],
    "idle_timeout": ["abc", "nan", "inf", "-inf", "1e400", "-1"],
    "min_port": ["abc", "nan", "0", "-1", "80", "1023", "65536", "100000"],
    "port_range": ["abc", "nan", "inf", "0", "-1", "40000"],
    "start_timeout": ["abc", "nan", "inf", "0", "-1", "0.5"],
    "websocket_proxy": [
        "no_such_module.serve",
        "pyramid_notebook.uwsgi.no_such_view",
        "pyramid_notebook.settings.PREFIX",
        "not a dotted name!",
        ".relative.name",
    ],
    "alternative_domain": [
        "ws.example.com",
        "//ws.example.com",
        "ftp://ws.example.com",
        "https://",
        "https://ws.example.com/notebook",
        "https://ws.example.com?x=1",
        "https://ws.example.com#top",
        "https://user:secret@ws.example.com",
        "https://ws.example.com:99999",
        "https://ws example.com",
    ],
    "python": ["/no/such/python", NOT_EXECUTABLE, A_FOLDER, "no-such-python-on-the-path"],
    "notebook_args": [
        '--ServerApp.iopub_data_rate_limit="1e10',
        "--port=9999",
        "--ip=0.0.0.0",
        "--ServerApp.port 9999",
        "--ServerApp.base_url=/other/",
        "--IdentityProvider.token=guessable",
        "--port-retries=50",
    ],
    "max_user_requests": ["", "abc", "nan", "inf", "0", "-1", "1.5"],
    "upstream_timeout": ["", "abc", "nan", "inf", "-inf", "1e400", "1e10", "86401", "0", "-1"],
}

#: Setting name -> values that work, with what they become; None: only check they are accepted.
GOOD_VALUES = {
    "kill_timeout": [("1", 1), (" 3600 ", 3600), (7200, 7200)],
    "idle_timeout": [("0", 0), ("2.5", 2.5), ("86400", 86400)],
    "min_port": [("1024", 1024), ("64536", 64536)],
    "port_range": [("1", 1), ("25536", 25536)],
    "start_timeout": [("1", 1), ("10.5", 10.5)],
    "websocket_proxy": [
        ("", None),
        ("pyramid_notebook.uwsgi.serve_websocket", serve_websocket),
        ("pyramid_notebook.uwsgi:serve_websocket", serve_websocket),
    ],
    "alternative_domain": [
        ("", None),
        ("https://ws.example.com", "https://ws.example.com"),
        ("https://WS.Example.com/", "https://ws.example.com"),
        ("https://ws.example.com:443", "https://ws.example.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
    "python": [(sys.executable, sys.executable), ("sh", None)],
    "notebook_args": [
        ("", ()),
        ("--ServerApp.iopub_data_rate_limit=1e10\n--MappingKernelManager.cull_idle_timeout=600", None),
        ("--KernelSpecManager.whitelist='a b'", ("--KernelSpecManager.whitelist=a b",)),
    ],
    "max_user_requests": [("1", 1), ("64", 64)],
    "upstream_timeout": [("0.5", 0.5), ("30", 30), ("86400", 86400)],
}

DEFAULTS = {
    "kill_timeout": 3600,
    "idle_timeout": 1800,
    "min_port": 28000,
    "port_range": 1000,
    "start_timeout": 60,
    "websocket_proxy": None,
    "alternative_domain": None,
    "notebook_args": (),
    "max_user_requests": 4,
    "upstream_timeout": 30,
}


@pytest.fixture
def paths(tmp_path) -> dict:
    """A regular (not executable) file and a folder, for the path-shaped bad values."""
    regular_file = tmp_path / "regular-file"
    regular_file.write_text("not a folder, not a program\n")
    return {"file": str(regular_file), "folder": str(tmp_path)}


def base_settings(tmp_path: Path) -> dict:
    return {PREFIX + "notebook_folder": str(tmp_path / "notebooks")}


@pytest.mark.parametrize(
    ("name", "value"), [(name, value) for name, values in BAD_VALUES.items() for value in values], ids=repr
)
def test_bad_value_is_refused_naming_the_setting(name, value, tmp_path, paths):
    settings = base_settings(tmp_path)
    settings[PREFIX + name] = value.format(**paths) if "{" in value else value
    with pytest.raises(ConfigurationError) as refused:
        parse_settings(settings)
    assert PREFIX + name in str(refused.value)


def test_ports_past_65535_are_refused_naming_both_settings(tmp_path):
    settings = base_settings(tmp_path)
    settings.update({PREFIX + "min_port": "65000", PREFIX + "port_range": "537"})
    with pytest.raises(ConfigurationError) as refused:
        parse_settings(settings)
    assert PREFIX + "min_port" in str(refused.value)
    assert PREFIX + "port_range" in str(refused.value)
    settings[PREFIX + "port_range"] = "536"
    assert parse_settings(settings).port_range == 536
    settings.update({PREFIX + "min_port": "65535", PREFIX + "port_range": "1"})
    assert parse_settings(settings).min_port == 65535


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [(name, value, expected) for name, values in GOOD_VALUES.items() for value, expected in values],
    ids=repr,
)
def test_good_value_is_accepted(name, value, expected, tmp_path):
    settings = base_settings(tmp_path)
    settings[PREFIX + name] = value
    parsed = getattr(parse_settings(settings), name)
    if expected is not None or value == "":
        assert parsed == expected


def test_defaults(tmp_path):
    parsed = parse_settings(base_settings(tmp_path))
    for name, default in DEFAULTS.items():
        assert getattr(parsed, name) == default, name
    assert math.isfinite(parsed.upstream_timeout)
    assert Path(parsed.python).is_absolute()


def test_notebook_folder_is_made_writable_and_left_clean(tmp_path):
    settings = {PREFIX + "notebook_folder": str(tmp_path / "deep" / "notebooks")}
    folder = parse_settings(settings).notebook_folder
    assert folder == tmp_path / "deep" / "notebooks"
    assert folder.is_dir()
    assert list(folder.iterdir()) == []


def test_relative_python_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(Path(sys.executable).parent)
    settings = base_settings(tmp_path)
    settings[PREFIX + "python"] = "./" + Path(sys.executable).name
    assert parse_settings(settings).python == str(Path(sys.executable).parent / Path(sys.executable).name)


def test_site_refuses_to_start_with_a_bad_setting(settings):
    from tests.support import site

    settings[PREFIX + "upstream_timeout"] = "nan"
    with pytest.raises(ConfigurationError, match="pyramid_notebook.upstream_timeout"):
        site.main({}, **settings)


def test_ports_among_the_ephemeral_ones_are_warned_about(tmp_path, caplog, monkeypatch):
    from pyramid_notebook import settings as settings_module

    ranges = tmp_path / "ip_local_port_range"
    ranges.write_text("32768\t60999\n")
    monkeypatch.setattr(settings_module, "EPHEMERAL_PORTS_FILE", ranges)
    folder = str(tmp_path / "notebooks")
    parse_settings({PREFIX + "notebook_folder": folder, PREFIX + "min_port": "28000"})
    assert "ephemeral" not in caplog.text
    parse_settings({PREFIX + "notebook_folder": folder, PREFIX + "min_port": "40000"})
    assert "pyramid_notebook.min_port..pyramid_notebook.port_range (40000-40999) overlaps" in caplog.text
