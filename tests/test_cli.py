"""The command line entry points exist and answer."""

from __future__ import annotations

import subprocess
import sys

from agent import __version__


def test_python_m_agent_version():
    out = subprocess.run([sys.executable, "-m", "agent", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == f"hb-medic {__version__}"


def test_no_command_prints_help_and_exits_2():
    out = subprocess.run([sys.executable, "-m", "agent"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "usage: hb-medic" in out.stdout
