"""The map window says in one line why Qt cannot open a window, before Qt aborts the process.

The missing-library case uses a real plugin-shaped shared library, built here with gcc and
linked against a library that is then removed, so ``ldd`` really reports it missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ui.qtplatform import debian_package, missing_libraries, problem


@pytest.fixture(scope="module")
def broken_plugins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is needed to build a plugin with a missing dependency")
    root = tmp_path_factory.mktemp("qpa")
    dep = root / "libxcb-ghost.so.4"
    src = root / "ghost.c"
    src.write_text("int ghost(void) { return 4; }\n")
    subprocess.run([gcc, "-shared", "-fPIC", "-o", str(dep), str(src),
                    "-Wl,-soname,libxcb-ghost.so.4"], check=True)  # fmt: skip
    (root / "libxcb-ghost.so").symlink_to(dep.name)
    plugin_src = root / "plugin.c"
    plugin_src.write_text("int ghost(void);\nint plugin(void) { return ghost(); }\n")
    plugins = root / "platforms"
    plugins.mkdir()
    subprocess.run([gcc, "-shared", "-fPIC", "-o", str(plugins / "libqxcb.so"), str(plugin_src),
                    f"-L{root}", "-lxcb-ghost"], check=True)  # fmt: skip
    dep.unlink()
    (root / "libxcb-ghost.so").unlink()
    return plugins


def test_debian_package_names_follow_the_soname() -> None:
    assert debian_package("libxcb-icccm.so.4") == "libxcb-icccm4"
    assert debian_package("libxcb-render-util.so.0") == "libxcb-render-util0"
    assert debian_package("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"
    assert debian_package("libEGL.so.1") == "libegl1"


def test_missing_library_is_named_with_its_package(broken_plugins: Path) -> None:
    assert missing_libraries(broken_plugins / "libqxcb.so") == ["libxcb-ghost.so.4"]
    line = problem({"DISPLAY": "somehost:0"}, platform="linux", plugins=broken_plugins)
    assert line is not None
    assert "missing libxcb-ghost.so.4" in line
    assert "sudo apt-get install libxcb-ghost4" in line
    assert "--no-ui" in line and "python -m ui --engine HOST:PORT" in line
    assert "wayland" not in line.lower()
    on_wayland = problem(
        {"DISPLAY": "somehost:0", "WAYLAND_DISPLAY": "wayland-0"},
        platform="linux",
        plugins=broken_plugins,
    )
    assert on_wayland is not None and "QT_QPA_PLATFORM=wayland" in on_wayland


def test_installed_plugin_has_no_problem() -> None:
    from ui.qtplatform import plugin_dir

    # `make setup` installs the xcb libraries: nothing may be missing on this machine.
    assert missing_libraries(plugin_dir() / "libqxcb.so") == []


def test_no_display_and_dead_display_are_explained() -> None:
    no_display = problem({}, platform="linux")
    assert no_display is not None and "DISPLAY is not set" in no_display
    dead = problem({"DISPLAY": ":987"}, platform="linux")
    assert dead is not None and "no X server answers on DISPLAY=:987" in dead
    assert problem({"QT_QPA_PLATFORM": "offscreen"}, platform="linux") is None
    assert problem({"WAYLAND_DISPLAY": "wayland-0"}, platform="linux") is None
    assert problem({}, platform="darwin") is None


def test_ui_exits_with_the_line_instead_of_aborting() -> None:
    import os
    import sys

    env = dict(os.environ, DISPLAY=":987")
    env.pop("QT_QPA_PLATFORM", None)
    env.pop("WAYLAND_DISPLAY", None)
    done = subprocess.run([sys.executable, "-m", "ui", "--listen", "0"], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "no X server answers on DISPLAY=:987" in done.stderr
    assert "could not connect to display" not in done.stderr  # Qt never got to abort
