"""The mixed-engine lab: the 3-node lab of scripts/multilab.sh with ENGINES set (scripts/test.sh
runs this folder with ENGINES="28 20.10 28"), made whole before each module as the 3-node lab
is, with the same overlay service under test."""

from tests.multilab.conftest import lab_whole, web

__all__ = ["lab_whole", "web"]
