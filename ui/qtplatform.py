"""Will a Qt window open here? Asked before Qt is started, because Qt cannot be asked after.

When no platform plugin loads, Qt prints its own message and aborts the process: nothing in
Python can catch it, and its message names ``libxcb-cursor0`` even when other libraries are
missing (tested on Debian 12 under Xvfb). So the map window checks first, the way the dynamic
loader will: ``ldd`` on PySide6's xcb plugin lists the shared libraries it cannot find. Debian
names a library's package after its soname (``libxcb-icccm.so.4`` → ``libxcb-icccm4``), so the
message can say what to install.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ELSEWHERE = "or run without the map (--no-ui), or open it on another machine: python -m ui --engine HOST:PORT"
NON_WINDOW_PLATFORMS = ("offscreen", "minimal", "vnc", "eglfs", "linuxfb")


def plugin_dir() -> Path:
    """PySide6's platform plugin folder (``.../PySide6/Qt/plugins/platforms``)."""
    import PySide6

    return Path(PySide6.__file__).resolve().parent / "Qt" / "plugins" / "platforms"


def missing_libraries(plugin: Path) -> list[str]:
    """Sonames ``plugin`` links against that the dynamic loader cannot find (Linux only)."""
    ldd = shutil.which("ldd")
    if ldd is None or not plugin.is_file():
        return []
    out = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=10).stdout
    return sorted(set(re.findall(r"^\s*(\S+) => not found", out, flags=re.MULTILINE)))


def debian_package(soname: str) -> str:
    """Debian's package for a soname (policy 8.1): ``libfoo.so.N`` → ``libfooN``, or ``libfoo-N``
    when the name ends in a digit (``libxkbcommon-x11.so.0`` → ``libxkbcommon-x11-0``)."""
    m = re.fullmatch(r"(.+)\.so\.(\d+)(?:\..*)?", soname)
    if m is None:
        return soname
    name, major = m.group(1).lower(), m.group(2)
    return f"{name}-{major}" if name[-1].isdigit() else f"{name}{major}"


def _x_display_reachable(display: str) -> bool:
    """A local display (``:N``) has its socket; remote ones (``host:N``) are assumed reachable."""
    m = re.fullmatch(r":(\d+)(?:\.\d+)?", display)
    return m is None or Path(f"/tmp/.X11-unix/X{m.group(1)}").exists()


def problem(
    env: Mapping[str, str] | None = None,
    platform: str = sys.platform,
    plugins: Path | None = None,
) -> str | None:
    """One line saying why no Qt window can open here and what to do, or ``None`` if one can.

    ``env`` defaults to ``os.environ``; ``plugins`` to PySide6's platform plugin folder.
    """
    env = os.environ if env is None else env
    chosen = env.get("QT_QPA_PLATFORM", "").split(":")[0].strip()
    if chosen in NON_WINDOW_PLATFORMS or platform in ("darwin", "win32"):
        return None
    if not platform.startswith("linux"):
        return None  # nothing known to check: let Qt try
    wayland = bool(env.get("WAYLAND_DISPLAY"))
    display = env.get("DISPLAY", "")
    if chosen == "wayland" or (wayland and not display):
        return None  # Qt's wayland plugin; its client libraries come with any Wayland desktop
    if not display:
        return f"Sillage UI: no display (DISPLAY is not set); {ELSEWHERE}"
    if not _x_display_reachable(display):
        return f"Sillage UI: no X server answers on DISPLAY={display}; {ELSEWHERE}"
    folder = plugin_dir() if plugins is None else plugins
    missing = missing_libraries(folder / "libqxcb.so")
    if not missing:
        return None
    packages = " ".join(debian_package(s) for s in missing)
    line = (
        f"Sillage UI: Qt's X11 (xcb) plugin cannot load: missing {', '.join(missing)}. "
        f"Install them (Debian/Ubuntu: sudo apt-get install {packages}; `make setup` does it as root)"
    )
    if wayland:
        line += ", or on this Wayland desktop set QT_QPA_PLATFORM=wayland"
    return f"{line}, {ELSEWHERE}"
